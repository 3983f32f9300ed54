"""GetCertificate's batched reads: calls that wait together share one Postgres query,
each gets exactly its own rows, and a failed query reaches every waiting call."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

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


class QuerySpy:
    """Records the hostnames of each query the lookup runs.

    Before running the first query, waits until hold(its hostnames) returns False. Each
    query sleeps delay seconds, then raises error if one is set.
    """

    def __init__(self) -> None:
        self.hostnames: list[list[str]] = []
        self.hold: Callable[[list[str]], bool] = lambda hostnames: False
        self.delay = 0.0
        self.error: Exception | None = None


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> QuerySpy:
    spy = QuerySpy()
    real = serving_lookup.find_serving_candidates

    def recording(connection: psycopg.Connection, hostnames: list[str]):
        if not spy.hostnames:
            deadline = time.monotonic() + 10
            while spy.hold(hostnames) and time.monotonic() < deadline:
                time.sleep(0.005)
        spy.hostnames.append(list(hostnames))
        time.sleep(spy.delay)
        if spy.error is not None:
            raise spy.error
        return real(connection, hostnames)

    monkeypatch.setattr(serving_lookup, "find_serving_candidates", recording)
    return spy


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
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a call is still waiting"
    return results


def test_concurrent_calls_share_one_query(database: Database, database_url: str,
                                         spy: QuerySpy) -> None:
    hostnames = [unique_hostname("batch") for _ in range(CALLS)]
    # unique_hostname gives names under one parent, so all calls share this wildcard.
    wildcard = "*." + hostnames[0].partition(".")[2]
    app_of = {hostname: f"app-{index}" for index, hostname in enumerate(hostnames)}
    with psycopg.connect(database_url) as connection:
        _insert_domain(connection, wildcard, "app-wildcard")
        for hostname, app_id in app_of.items():
            _insert_domain(connection, hostname, app_id)
    lookup = ServingLookup(database, readers=1)
    # The first query waits until every call is in it or queued behind it.
    spy.hold = lambda names: lookup._queue.qsize() + len(names) - 1 < CALLS
    lookup.start()
    try:
        results = _call_together(lookup, [(hostname, wildcard) for hostname in hostnames])
    finally:
        lookup.stop()
        connection = psycopg.connect(database_url, autocommit=True)
        connection.execute("DELETE FROM domains WHERE hostname = %s", (wildcard,))
        connection.close()

    for hostname, rows in zip(hostnames, results):
        assert [(row.hostname, row.app_id) for row in rows] == [
            (hostname, app_of[hostname]), (wildcard, "app-wildcard")]
    assert len(spy.hostnames) <= 2
    queried = [name for names in spy.hostnames for name in names if name != wildcard]
    assert sorted(queried) == sorted(hostnames)


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
        with psycopg.connect(database_url) as connection:
            connection.execute("DELETE FROM domains WHERE hostname = %s", (wildcard,))

    assert [row.hostname for row in rows] == [hostname, wildcard]
    assert all(row.certificate is None for row in rows)
    assert missing == []


def test_failed_query_reaches_every_waiting_call(database: Database, spy: QuerySpy) -> None:
    calls = 8
    lookup = ServingLookup(database, readers=1)
    spy.hold = lambda names: lookup._queue.qsize() + len(names) < calls
    # The pool turns a lost connection into Unavailable, as when Postgres restarts.
    spy.error = psycopg.OperationalError("server closed the connection unexpectedly")
    lookup.start()
    try:
        results = _call_together(lookup, [(unique_hostname("down"),) for _ in range(calls)])
    finally:
        lookup.stop()

    assert all(isinstance(result, Unavailable) for result in results), results
    # At most two queries failed for the eight calls, yet each call raised its own error.
    assert len(spy.hostnames) <= 2
    assert len({id(result) for result in results}) == calls
    assert all(isinstance(result.__cause__, Unavailable) for result in results)


def test_unexpected_error_names_hostname(database: Database,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(connection: psycopg.Connection, hostnames: list[str]):
        raise KeyError("column")

    monkeypatch.setattr(serving_lookup, "find_serving_candidates", broken)
    hostname = unique_hostname("broken")
    lookup = ServingLookup(database)
    lookup.start()
    try:
        with pytest.raises(RuntimeError, match=f"certificate of {hostname}") as raised:
            lookup.candidates((hostname,))
    finally:
        lookup.stop()

    assert isinstance(raised.value.__cause__, KeyError)


def test_timed_out_calls_skipped(database: Database, spy: QuerySpy) -> None:
    calls = 6
    lookup = ServingLookup(database, readers=1, wait_seconds=0.2)
    # The first query runs until every call has timed out.
    spy.delay = 0.6
    lookup.start()
    try:
        results = _call_together(lookup, [(unique_hostname("slow"),) for _ in range(calls)])
        time.sleep(1.0)
    finally:
        lookup.stop()

    assert all(isinstance(result, Unavailable) for result in results), results
    assert all("did not finish within" in str(result) for result in results)
    # The calls queued behind the first query had timed out when it ended, so none ran.
    assert len(spy.hostnames) == 1


def test_stop_serves_queued_calls(database: Database, spy: QuerySpy) -> None:
    calls = 6
    lookup = ServingLookup(database, readers=1)
    spy.delay = 0.2
    lookup.start()
    stopper = threading.Timer(0.05, lookup.stop)
    stopper.start()
    try:
        results = _call_together(lookup, [(unique_hostname("queued"),) for _ in range(calls)])
    finally:
        stopper.join()

    served = [result for result in results if result == []]
    rejected = [result for result in results if isinstance(result, Unavailable)]
    assert len(served) + len(rejected) == calls, results
    assert served
    assert all("shutting down" in str(result) for result in rejected)


def test_stopped_lookup_rejects_calls(database: Database) -> None:
    lookup = ServingLookup(database)
    lookup.start()
    lookup.stop()

    with pytest.raises(Unavailable, match="shutting down"):
        lookup.candidates((unique_hostname("late"),))


def test_stalled_read_fails_at_statement_timeout(database_url: str) -> None:
    database = Database(database_url, max_size=1, name="serving-lookup-timeout-test",
                        statement_timeout_seconds=0.3)
    database.open()
    lookup = ServingLookup(database, readers=1)
    lookup.start()
    locker = psycopg.connect(database_url)
    try:
        # Another transaction holds domains locked, as a long migration would.
        locker.execute("LOCK TABLE domains IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        with pytest.raises(Unavailable) as raised:
            lookup.candidates((unique_hostname("stalled"),))
        waited = time.monotonic() - started
    finally:
        locker.rollback()
        locker.close()
        lookup.stop()
        database.close()

    assert waited < 2
    assert "database is unavailable" in str(raised.value)
