"""GetCertificate's batched reads: calls that wait together share one Postgres query,
each gets exactly its own rows, and a failed query reaches every waiting call."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from conftest import unique_hostname
from service import serving_lookup
from service.errors import Unavailable
from service.serving_lookup import ServingLookup
from service.store.database import Database

CALLS = 24


def _insert_domain(connection: psycopg.Connection, hostname: str, app_id: str) -> uuid.UUID:
    return connection.execute(
        "INSERT INTO domains (hostname, unicode_hostname, app_id) VALUES (%s, %s, %s) "
        "RETURNING id", (hostname, hostname, app_id)).fetchone()[0]


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url, max_size=2, name="serving-lookup-test")
    database.open()
    yield database
    database.close()


@pytest.fixture
def queries(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the hostnames of each query the lookup runs, then run it."""
    recorded: list[list[str]] = []
    real = serving_lookup.find_serving_candidates

    def recording(connection: psycopg.Connection, hostnames: list[str]):
        recorded.append(list(hostnames))
        return real(connection, hostnames)

    monkeypatch.setattr(serving_lookup, "find_serving_candidates", recording)
    return recorded


def _call_together(lookup: ServingLookup, hostname_sets: list[tuple[str, ...]]) -> list:
    """Call candidates() from one thread per hostname set, all released at once."""
    results: list = [None] * len(hostname_sets)
    start = threading.Barrier(len(hostname_sets))

    def call(index: int) -> None:
        start.wait()
        try:
            results[index] = lookup.candidates(hostname_sets[index])
        except Exception as error:  # noqa: BLE001 - compared by the test
            results[index] = error

    threads = [threading.Thread(target=call, args=(index,)) for index in range(len(hostname_sets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_concurrent_calls_share_queries(database: Database, database_url: str,
                                        queries: list[list[str]]) -> None:
    hostnames = [unique_hostname("batch") for _ in range(CALLS)]
    with psycopg.connect(database_url) as connection:
        app_of = {hostname: f"app-{index}" for index, hostname in enumerate(hostnames)}
        for hostname, app_id in app_of.items():
            _insert_domain(connection, hostname, app_id)
    # Each call also requests the wildcard one label up, as GetCertificate does.
    requested = [(hostname, "*." + hostname.partition(".")[2]) for hostname in hostnames]
    lookup = ServingLookup(database, readers=1)
    lookup.start()
    try:
        results = _call_together(lookup, requested)
    finally:
        lookup.stop()

    for hostname, rows in zip(hostnames, results):
        assert [(row.hostname, row.app_id) for row in rows] == [(hostname, app_of[hostname])]
    queried = [name for query in queries for name in query if not name.startswith("*.")]
    assert sorted(queried) == sorted(hostnames)
    assert len(queries) < CALLS


def test_lone_call_rows_in_request_order(database: Database, database_url: str) -> None:
    hostname = unique_hostname("pair")
    wildcard = "*." + hostname.partition(".")[2]
    with psycopg.connect(database_url) as connection:
        _insert_domain(connection, wildcard, "app-w")
        _insert_domain(connection, hostname, "app-h")
    lookup = ServingLookup(database)
    lookup.start()
    try:
        rows = lookup.candidates((hostname, wildcard))
        missing = lookup.candidates((unique_hostname("absent"),))
    finally:
        lookup.stop()

    assert [row.hostname for row in rows] == [hostname, wildcard]
    assert all(row.certificate is None for row in rows)
    assert missing == []


def test_failed_query_reaches_every_waiting_call(database: Database) -> None:
    lookup = ServingLookup(database, readers=1)
    lookup.start()
    database.close()
    try:
        results = _call_together(lookup, [(unique_hostname("down"),) for _ in range(8)])
    finally:
        lookup.stop()

    assert all(isinstance(result, Unavailable) for result in results), results
    # Each caller raises an error object of its own.
    assert len({id(result) for result in results}) == len(results)


def test_stopped_lookup_rejects_calls(database: Database) -> None:
    lookup = ServingLookup(database)
    lookup.start()
    lookup.stop()

    with pytest.raises(Unavailable, match="shutting down"):
        lookup.candidates((unique_hostname("late"),))
