"""The cache of hot hostnames' certificates: its bounds, its versions, the change
notifications from Postgres, and GetCertificate served through it by the api."""

from __future__ import annotations

import datetime
import math
import queue
import time
import uuid

import psycopg
import pytest

from conftest import unique_hostname
from service.api.guard import SerializedResponse, check_response
from service.callers import Caller
from service.certificate_cache import CachedCertificate, CertificateCache
from service.certificates import certificate_warnings, warnings_change_at
from service.errors import NotFound, PermissionDenied
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.store.certificate_changes import RECONNECT_DELAY_SECONDS, CertificateChangeListener
from service.store.records import CertificateRecord
from service.validation.hostname import normalize_hostname

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def _serving(hostname: str, response: bytes = b"response",
             fresh_until: float = math.inf) -> CachedCertificate:
    return CachedCertificate(hostname=hostname, app_id="app-1", domain_id=uuid.uuid4(),
                             certificate_id=uuid.uuid4(), private_key_sealed=b"sealed",
                             response=response, fresh_until=fresh_until)


def _listening_cache(**limits) -> CertificateCache:
    cache = CertificateCache(**limits)
    cache.set_listening(True)
    return cache


def test_cache_returns_stored_entry() -> None:
    cache = _listening_cache()
    serving = _serving("a.example.com")

    cache.put(serving, cache.version())

    assert cache.get("a.example.com") is serving


def test_cache_skips_put_after_invalidation() -> None:
    cache = _listening_cache()
    version = cache.version()

    cache.invalidate("other.example.com")
    cache.put(_serving("a.example.com"), version)

    assert cache.get("a.example.com") is None


def test_cache_invalidate_forgets_hostname() -> None:
    cache = _listening_cache()
    cache.put(_serving("a.example.com"), cache.version())
    cache.put(_serving("b.example.com"), cache.version())

    cache.invalidate("a.example.com")

    assert cache.get("a.example.com") is None
    assert cache.get("b.example.com") is not None


def test_cache_serves_nothing_until_listening() -> None:
    cache = CertificateCache()

    cache.put(_serving("a.example.com"), cache.version())

    assert cache.get("a.example.com") is None
    assert len(cache) == 0


def test_cache_cleared_when_listening_stops() -> None:
    cache = _listening_cache()
    cache.put(_serving("a.example.com"), cache.version())

    cache.set_listening(False)
    cache.set_listening(True)

    assert cache.get("a.example.com") is None


def test_cache_evicts_least_recently_used() -> None:
    cache = _listening_cache(max_entries=2)
    for name in ("a", "b"):
        cache.put(_serving(f"{name}.example.com"), cache.version())
    cache.get("a.example.com")

    cache.put(_serving("c.example.com"), cache.version())

    assert cache.get("b.example.com") is None
    assert cache.get("a.example.com") is not None
    assert cache.get("c.example.com") is not None


def test_cache_bounded_by_bytes() -> None:
    cache = _listening_cache(max_bytes=40_000)

    for index in range(20):
        cache.put(_serving(f"h{index}.example.com", response=b"x" * 10_000), cache.version())

    assert cache.size_bytes <= 40_000
    assert len(cache) == 3
    assert cache.get("h19.example.com") is not None


def test_cache_entry_expires_after_max_age() -> None:
    cache = _listening_cache(max_age_seconds=0.01)
    cache.put(_serving("a.example.com"), cache.version())

    time.sleep(0.02)

    assert cache.get("a.example.com") is None


def test_cache_entry_expires_when_warnings_change() -> None:
    cache = _listening_cache()
    cache.put(_serving("a.example.com", fresh_until=time.monotonic() + 0.01), cache.version())

    time.sleep(0.02)

    assert cache.get("a.example.com") is None
    assert len(cache) == 0


def _record(source: str, not_after: datetime.datetime) -> CertificateRecord:
    return CertificateRecord(
        id=uuid.uuid4(), domain_id=uuid.uuid4(), source=source, hostnames=["a.example.com"],
        chain_pem="chain", private_key_sealed=b"sealed", key_type="ECDSA-P256",
        not_before=NOW - datetime.timedelta(days=60), not_after=not_after, issuer="CN=test",
        serial_number="01", sha256_fingerprint="AA", warnings=[], issuance_id=None,
        created_at=NOW)


@pytest.mark.parametrize(("source", "days_left", "changes_in_days"), [
    ("LETS_ENCRYPT", 10.0, None),
    ("CUSTOM", 90.0, 60.0),
    ("CUSTOM", 30.0, 0.0),
    ("CUSTOM", 12.25, 0.25),
    ("CUSTOM", 0.5, 0.5),
    ("CUSTOM", -1.0, None),
])
def test_warnings_change_at(source: str, days_left: float,
                            changes_in_days: float | None) -> None:
    record = _record(source, NOW + datetime.timedelta(days=days_left))

    change_at = warnings_change_at(record, NOW)

    if changes_in_days is None:
        assert change_at is None
    else:
        assert change_at == NOW + datetime.timedelta(days=changes_in_days)


def test_warnings_constant_until_change_at() -> None:
    record = _record("CUSTOM", NOW + datetime.timedelta(days=12, hours=6))
    change_at = warnings_change_at(record, NOW)
    before = change_at - datetime.timedelta(seconds=1)
    after = change_at + datetime.timedelta(seconds=1)

    assert certificate_warnings(record, before) == certificate_warnings(record, NOW)
    assert certificate_warnings(record, after) != certificate_warnings(record, NOW)


def _declared(app_id: str, carries_private_key: bool) -> SerializedResponse:
    return SerializedResponse(b"", pb.Certificate, app_id=app_id,
                              carries_private_key=carries_private_key)


def test_guard_withholds_other_app_response() -> None:
    caller = Caller(name="app-b", app_ids=frozenset({"app-b"}), may_read_private_keys=True)

    with pytest.raises(NotFound):
        check_response(caller, _declared("app-a", carries_private_key=False))
    check_response(caller, _declared("app-b", carries_private_key=True))


def test_guard_withholds_serialized_key_without_permission() -> None:
    caller = Caller(name="app-a", app_ids=frozenset({"app-a"}), may_read_private_keys=False)

    with pytest.raises(PermissionDenied):
        check_response(caller, _declared("app-a", carries_private_key=True))
    check_response(caller, _declared("app-a", carries_private_key=False))


@pytest.mark.parametrize("typed", ["Shop.Example.com.", "faß.de", "*.Example.com",
                                   "xn--fa-hia.de", "BÜCHER.example"])
def test_normal_form_normalizes_to_itself(typed: str) -> None:
    # The cache looks a hostname up before normalizing it; that is only right when
    # every normal form is its own normal form.
    normal = normalize_hostname(typed).ascii

    assert normalize_hostname(normal).ascii == normal


# --- change notifications from Postgres -------------------------------------------------


@pytest.fixture
def changes(database_url: str):
    """A listener on the test database; yields a queue of the hostnames it reports."""
    reported: queue.Queue[str] = queue.Queue()
    listening: queue.Queue[bool] = queue.Queue()
    listener = CertificateChangeListener(database_url, reported.put, listening.put)
    listener.start()
    assert listening.get(timeout=10) is True
    yield reported
    listener.stop()


def test_listener_backoff_restarts_after_reconnect(database_url: str) -> None:
    """Each interruption of a connection that worked is retried after the first delay,
    however many interruptions came before it."""
    listening: queue.Queue[bool] = queue.Queue()
    listener = CertificateChangeListener(database_url, lambda payload: None, listening.put)
    listener.start()
    gaps = []
    try:
        assert listening.get(timeout=10) is True
        for _ in range(3):
            with psycopg.connect(database_url, autocommit=True) as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'certsvc-certificate-changes' "
                    "AND datname = current_database()")
            assert listening.get(timeout=10) is False
            interrupted = time.monotonic()
            assert listening.get(timeout=40) is True
            gaps.append(time.monotonic() - interrupted)
    finally:
        listener.stop()

    assert max(gaps) < 2 * RECONNECT_DELAY_SECONDS + 0.5, gaps


def _insert_domain_with_certificate(connection: psycopg.Connection,
                                    hostname: str) -> tuple[uuid.UUID, uuid.UUID]:
    domain_id = connection.execute(
        "INSERT INTO domains (hostname, unicode_hostname, app_id) VALUES (%s, %s, 'app-1') "
        "RETURNING id", (hostname, hostname)).fetchone()[0]
    certificate_id = _insert_certificate(connection, domain_id, hostname)
    connection.execute("UPDATE domains SET certificate_id = %s WHERE id = %s",
                       (certificate_id, domain_id))
    return domain_id, certificate_id


def _insert_certificate(connection: psycopg.Connection, domain_id: uuid.UUID,
                        hostname: str) -> uuid.UUID:
    return connection.execute(
        """
        INSERT INTO certificates (domain_id, source, hostnames, chain_pem, private_key_sealed,
            key_type, not_before, not_after, issuer, serial_number, sha256_fingerprint)
        VALUES (%s, 'CUSTOM', ARRAY[%s], %s, '\\x00', 'ECDSA-P256', now(),
                now() + interval '90 days', 'CN=test', %s, 'AA')
        RETURNING id
        """,
        (domain_id, hostname, f"chain of {uuid.uuid4()}", uuid.uuid4().hex),
    ).fetchone()[0]


def _drain(reported: queue.Queue[str], timeout: float = 5.0) -> set[str]:
    found = {reported.get(timeout=timeout)}
    deadline = time.monotonic() + 0.2
    while time.monotonic() < deadline:
        try:
            found.add(reported.get(timeout=0.05))
        except queue.Empty:
            pass
    return found


def test_notified_when_active_certificate_changes(database_url: str, changes) -> None:
    hostname = unique_hostname("notify")
    with psycopg.connect(database_url, autocommit=True) as connection:
        domain_id, _ = _insert_domain_with_certificate(connection, hostname)
        assert hostname in _drain(changes)

        replacement = _insert_certificate(connection, domain_id, hostname)
        connection.execute("UPDATE domains SET certificate_id = %s WHERE id = %s",
                           (replacement, domain_id))

        assert _drain(changes) == {hostname}


def test_notified_when_certificate_row_changes(database_url: str, changes) -> None:
    hostname = unique_hostname("reseal")
    with psycopg.connect(database_url, autocommit=True) as connection:
        _, certificate_id = _insert_domain_with_certificate(connection, hostname)
        _drain(changes)

        connection.execute("UPDATE certificates SET private_key_sealed = '\\x01' WHERE id = %s",
                           (certificate_id,))

        assert _drain(changes) == {hostname}


def test_notified_when_domain_removed(database_url: str, changes) -> None:
    hostname = unique_hostname("removed")
    with psycopg.connect(database_url, autocommit=True) as connection:
        domain_id, _ = _insert_domain_with_certificate(connection, hostname)
        _drain(changes)

        connection.execute("UPDATE domains SET certificate_id = NULL WHERE id = %s", (domain_id,))
        connection.execute("DELETE FROM domains WHERE id = %s", (domain_id,))

        assert _drain(changes) == {hostname}


def test_status_update_not_notified(database_url: str, changes) -> None:
    hostname = unique_hostname("status")
    with psycopg.connect(database_url, autocommit=True) as connection:
        domain_id, _ = _insert_domain_with_certificate(connection, hostname)
        _drain(changes)

        connection.execute("UPDATE domains SET status = 'ISSUING', last_error = 'x' "
                           "WHERE id = %s", (domain_id,))

        with pytest.raises(queue.Empty):
            changes.get(timeout=0.5)


def test_rolled_back_change_not_notified(database_url: str, changes) -> None:
    hostname = unique_hostname("rollback")
    with psycopg.connect(database_url, autocommit=True) as connection:
        domain_id, _ = _insert_domain_with_certificate(connection, hostname)
        _drain(changes)

        with pytest.raises(RuntimeError), connection.transaction():
            connection.execute("UPDATE domains SET certificate_id = NULL WHERE id = %s",
                               (domain_id,))
            raise RuntimeError("roll back")

        with pytest.raises(queue.Empty):
            changes.get(timeout=0.5)


# --- GetCertificate through the api's cache -------------------------------------------


def _wait_for_certificate_id(stub, hostname: str, expected: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        current = stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname)).id
        if current == expected or time.monotonic() > deadline:
            return current
        time.sleep(0.01)


def test_get_certificate_follows_change_by_another_writer(stub, database_url: str) -> None:
    hostname = unique_hostname("cached")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))
    with psycopg.connect(database_url, autocommit=True) as connection:
        domain_id = connection.execute("SELECT id FROM domains WHERE hostname = %s",
                                       (hostname,)).fetchone()[0]
        first = _insert_certificate(connection, domain_id, hostname)
        connection.execute("UPDATE domains SET certificate_id = %s WHERE id = %s",
                           (first, domain_id))
        for _ in range(3):  # the second and third calls are served from the cache
            assert stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname)).id == str(first)

        second = _insert_certificate(connection, domain_id, hostname)
        connection.execute("UPDATE domains SET certificate_id = %s WHERE id = %s",
                           (second, domain_id))

    assert _wait_for_certificate_id(stub, hostname, str(second)) == str(second)


def test_get_certificate_typed_form_uses_same_entry(stub, database_url: str) -> None:
    hostname = unique_hostname("typed")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))
    with psycopg.connect(database_url, autocommit=True) as connection:
        domain_id = connection.execute("SELECT id FROM domains WHERE hostname = %s",
                                       (hostname,)).fetchone()[0]
        certificate_id = _insert_certificate(connection, domain_id, hostname)
        connection.execute("UPDATE domains SET certificate_id = %s WHERE id = %s",
                           (certificate_id, domain_id))

    typed = stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname.upper() + "."))
    normal = stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname))

    assert typed.id == normal.id == str(certificate_id)


def test_get_certificate_not_found_after_remove(stub, database_url: str) -> None:
    import grpc

    hostname = unique_hostname("gone")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))
    with psycopg.connect(database_url, autocommit=True) as connection:
        domain_id = connection.execute("SELECT id FROM domains WHERE hostname = %s",
                                       (hostname,)).fetchone()[0]
        certificate_id = _insert_certificate(connection, domain_id, hostname)
        connection.execute("UPDATE domains SET certificate_id = %s WHERE id = %s",
                           (certificate_id, domain_id))
    stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname))

    stub.RemoveDomain(pb.RemoveDomainRequest(hostname=hostname))

    with pytest.raises(grpc.RpcError) as raised:
        stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_wildcard_served_hostname_follows_own_certificate(stub, database_url: str) -> None:
    parent = unique_hostname("parent")
    hostname = f"shop.{parent}"
    stub.AddDomain(pb.AddDomainRequest(hostname=f"*.{parent}", app_id="app-1"))
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))
    with psycopg.connect(database_url, autocommit=True) as connection:
        ids = dict(connection.execute("SELECT hostname, id FROM domains WHERE hostname IN (%s, %s)",
                                      (f"*.{parent}", hostname)).fetchall())
        wildcard = _insert_certificate(connection, ids[f"*.{parent}"], f"*.{parent}")
        connection.execute("UPDATE domains SET certificate_id = %s WHERE id = %s",
                           (wildcard, ids[f"*.{parent}"]))
        for _ in range(3):
            assert stub.GetCertificate(
                pb.GetCertificateRequest(hostname=hostname)).id == str(wildcard)

        own = _insert_certificate(connection, ids[hostname], hostname)
        connection.execute("UPDATE domains SET certificate_id = %s WHERE id = %s",
                           (own, ids[hostname]))

    assert _wait_for_certificate_id(stub, hostname, str(own)) == str(own)
