"""The renewal sweep's batches, run in this process against real Postgres, Redis and RQ.

Domains and certificates are inserted as rows, so no certificate is issued. The sweep
reads the directory of the test run's Pebble, which has no renewalInfo.
"""

from __future__ import annotations

import datetime
import logging
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis
from prometheus_client import REGISTRY

from devtools import stack
from devtools.pebble import LocalPebble
from service import issuance as issuance_service
from service import queueing
from service.backends import Backends
from service.config import Settings
from service.errors import Unavailable
from service.store.migrate import migrate
from worker import recovery, renewal
from worker.recovery import recover_lost_issuances
from worker.renewal import renew_due_certificates
from worker.scheduler import SchedulerContext

pytestmark = pytest.mark.pebble


class SimulatedCrash(BaseException):
    """A stand-in for the death of the scheduler process, which no handler in certsvc catches."""


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    name = stack.unique_name("renewal_batches")
    url = stack.create_database(name)
    migrate(url)
    yield url
    stack.drop_database(name)


@pytest.fixture
def make_context(database_url: str, pebble: LocalPebble) -> Iterator:
    """Return a factory of scheduler contexts on empty tables and a Redis prefix of their own."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("TRUNCATE domains, certificates, issuances, events CASCADE")
    opened: list[tuple[Backends, str]] = []

    def make(**variables: str) -> SchedulerContext:
        prefix = f"certsvc-renewal-batches-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        settings = Settings.from_env({
            "CERTSVC_DATABASE_URL": database_url, "CERTSVC_REDIS_URL": stack.REDIS_URL,
            "CERTSVC_REDIS_PREFIX": prefix, "CERTSVC_DEV_INSECURE": "1",
            **pebble.certsvc_environment(), **variables})
        backends = Backends.connect(settings)
        opened.append((backends, prefix))
        return SchedulerContext(settings, backends, "test-scheduler")

    yield make
    for backends, prefix in opened:
        backends.close()
        stack.delete_redis_namespace(stack.REDIS_URL, prefix)


def _add_domain(context: SchedulerContext, *, renew_in: datetime.timedelta,
                source: str = "LETS_ENCRYPT", wildcard: bool = False) -> uuid.UUID:
    """Insert an ACTIVE domain whose certificate falls due renew_in from now; return its id."""
    label = uuid.uuid4().hex[:12]
    hostname = f"*.{label}.example.com" if wildcard else f"{label}.example.com"
    with context.backends.database.transaction() as connection:
        domain_id = connection.execute(
            "INSERT INTO domains (hostname, unicode_hostname, app_id, wildcard, status) "
            "VALUES (%s, %s, 'app-1', %s, 'ACTIVE') RETURNING id",
            (hostname, hostname, wildcard)).fetchone()[0]
        certificate_id = connection.execute(
            """
            INSERT INTO certificates (domain_id, source, hostnames, chain_pem,
                private_key_sealed, key_type, not_before, not_after, renew_after, issuer,
                serial_number, sha256_fingerprint)
            VALUES (%s, %s, ARRAY[%s], 'stand-in chain', '\\x00', 'ECDSA-P256',
                    now() - interval '60 days', now() + interval '30 days', now() + %s,
                    'CN=test', %s, 'AA')
            RETURNING id
            """, (domain_id, source, hostname, renew_in, label)).fetchone()[0]
        connection.execute("UPDATE domains SET certificate_id = %s WHERE id = %s",
                           (certificate_id, domain_id))
    return domain_id


def _add_issuance(context: SchedulerContext, domain_id: uuid.UUID, state: str,
                  age: datetime.timedelta) -> None:
    with context.backends.database.transaction() as connection:
        connection.execute(
            "INSERT INTO issuances (domain_id, hostname, state, updated_at) "
            "SELECT id, hostname, %s, now() - %s FROM domains WHERE id = %s",
            (state, age, domain_id))


def _queued_issuances(context: SchedulerContext) -> dict[uuid.UUID, tuple[uuid.UUID, str]]:
    """Return domain id -> (issuance id, job id) of every QUEUED issuance."""
    with context.backends.database.transaction() as connection:
        rows = connection.execute(
            "SELECT domain_id, id, job_id FROM issuances WHERE state = 'QUEUED'").fetchall()
    return {domain_id: (issuance_id, job_id) for domain_id, issuance_id, job_id in rows}


def _count_calls(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[int]:
    """Replace module.name with a wrapper that appends 1 to the returned list per call."""
    calls: list[int] = []
    original = getattr(module, name)

    def counted(*arguments, **options):
        calls.append(1)
        return original(*arguments, **options)

    monkeypatch.setattr(module, name, counted)
    return calls


def _renewals_queued() -> float:
    return REGISTRY.get_sample_value("certsvc_renewals_queued_total") or 0.0


def test_sweep_renews_every_batch(make_context, monkeypatch) -> None:
    context = make_context()
    monkeypatch.setattr(renewal, "RENEWAL_BATCH_SIZE", 3)
    batches = _count_calls(monkeypatch, issuance_service, "create_issuances")
    due = {_add_domain(context, renew_in=datetime.timedelta(minutes=-minutes))
           for minutes in range(1, 9)}
    not_due = _add_domain(context, renew_in=datetime.timedelta(days=1))
    metric_before = _renewals_queued()

    queued = renew_due_certificates(context)

    issuances = _queued_issuances(context)
    queue = context.backends.issuance_queue()
    with context.backends.database.transaction() as connection:
        events = connection.execute(
            "SELECT issuance_id, message FROM events WHERE type = 'ISSUANCE_QUEUED'").fetchall()
        statuses = {row[0] for row in connection.execute("SELECT status FROM domains")}
    assert queued == 8
    assert len(batches) == 3
    assert set(issuances) == due
    assert not_due not in issuances
    assert set(queue.get_job_ids()) == {job_id for _, job_id in issuances.values()}
    for issuance_id, job_id in issuances.values():
        assert queue.fetch_job(job_id).args == (str(issuance_id),)
    assert {issuance_id for issuance_id, _ in events} == {
        issuance_id for issuance_id, _ in issuances.values()}
    assert all(message.startswith("renewal started: ") for _, message in events)
    assert statuses == {"ACTIVE"}
    assert _renewals_queued() - metric_before == 8
    assert renew_due_certificates(context) == 0


def test_sweep_skips_ineligible_domains(make_context) -> None:
    context = make_context()
    overdue = datetime.timedelta(minutes=-5)
    wildcard = _add_domain(context, renew_in=overdue, wildcard=True)
    uploaded = _add_domain(context, renew_in=overdue, source="CUSTOM")
    in_flight = _add_domain(context, renew_in=overdue)
    _add_issuance(context, in_flight, "VALIDATING", datetime.timedelta(minutes=1))
    failed_recently = _add_domain(context, renew_in=overdue)
    _add_issuance(context, failed_recently, "FAILED", datetime.timedelta(hours=1))
    failed_long_ago = _add_domain(context, renew_in=overdue)
    _add_issuance(context, failed_long_ago, "FAILED", datetime.timedelta(hours=7))
    renewed_before = _add_domain(context, renew_in=overdue)
    _add_issuance(context, renewed_before, "SUCCEEDED", datetime.timedelta(minutes=1))

    queued = renew_due_certificates(context)

    renewing = set(_queued_issuances(context))
    assert queued == 2
    assert renewing == {failed_long_ago, renewed_before}
    assert wildcard not in renewing
    assert uploaded not in renewing
    assert in_flight not in renewing
    assert failed_recently not in renewing


def test_sweep_stops_at_max_per_run(make_context) -> None:
    context = make_context(CERTSVC_RENEWAL_MAX_PER_RUN="5")
    by_lateness = [_add_domain(context, renew_in=datetime.timedelta(minutes=-minutes))
                   for minutes in range(8, 0, -1)]

    first_run = renew_due_certificates(context)
    renewing_after_first = set(_queued_issuances(context))
    second_run = renew_due_certificates(context)
    third_run = renew_due_certificates(context)

    assert first_run == 5
    assert renewing_after_first == set(by_lateness[:5])
    assert second_run == 3
    assert set(_queued_issuances(context)) == set(by_lateness)
    assert third_run == 0


def test_crash_before_enqueue_recovered(make_context, monkeypatch) -> None:
    context = make_context()
    monkeypatch.setattr(renewal, "RENEWAL_BATCH_SIZE", 2)
    due = {_add_domain(context, renew_in=datetime.timedelta(minutes=-1)) for _ in range(3)}

    def crash(queue, jobs) -> None:
        raise SimulatedCrash()

    monkeypatch.setattr(queueing, "enqueue_issuances", crash)
    with pytest.raises(SimulatedCrash):
        renew_due_certificates(context)
    monkeypatch.undo()

    written = _queued_issuances(context)
    queue = context.backends.issuance_queue()
    jobs_after_crash = queue.get_job_ids()
    # The recovery leaves rows changed in the last RECENT_CHANGE_GRACE alone.
    with context.backends.database.transaction() as connection:
        connection.execute("UPDATE issuances SET updated_at = now() - interval '1 minute'")
    recovered = recover_lost_issuances(context)
    requeued = _queued_issuances(context)

    assert written
    assert set(written) <= due
    assert jobs_after_crash == []
    assert recovered == len(written)
    assert set(requeued) == set(written)
    assert set(queue.get_job_ids()) == {job_id for _, job_id in requeued.values()}
    assert renew_due_certificates(context) == len(due) - len(written)


def test_lost_jobs_behind_queued_ones_recovered(make_context, monkeypatch) -> None:
    """Renewals whose jobs were lost are queued again even when more than one page of
    older issuances with healthy jobs comes before them."""
    context = make_context()
    for _ in range(5):
        _add_domain(context, renew_in=datetime.timedelta(minutes=-1))
    assert renew_due_certificates(context) == 5
    with context.backends.database.transaction() as connection:
        connection.execute("UPDATE issuances SET updated_at = now() - interval '2 minutes'")
    lost = {_add_domain(context, renew_in=datetime.timedelta(minutes=-1)) for _ in range(2)}
    monkeypatch.setattr(queueing, "enqueue_issuances", lambda queue, jobs: None)
    assert renew_due_certificates(context) == 2
    monkeypatch.undo()
    with context.backends.database.transaction() as connection:
        connection.execute("UPDATE issuances SET updated_at = now() - interval '1 minute' "
                           "WHERE domain_id = ANY(%s)", (list(lost),))
    monkeypatch.setattr(recovery, "BATCH_SIZE", 2)

    recovered = recover_lost_issuances(context)

    queued_jobs = set(context.backends.issuance_queue().get_job_ids())
    assert recovered == 2
    assert {job_id for domain_id, (_, job_id) in _queued_issuances(context).items()
            if domain_id in lost} <= queued_jobs
    assert len(queued_jobs) == 7


def test_redis_error_leaves_rows_for_recovery(make_context, monkeypatch) -> None:
    context = make_context()
    due = {_add_domain(context, renew_in=datetime.timedelta(minutes=-1)) for _ in range(2)}

    def refuse(queue, jobs) -> None:
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(queueing, "enqueue_issuances", refuse)
    with pytest.raises(Unavailable):
        renew_due_certificates(context)

    assert set(_queued_issuances(context)) == due
    assert context.backends.issuance_queue().get_job_ids() == []


def test_failing_sweep_counts_batch_in_flight(make_context, monkeypatch, caplog) -> None:
    context = make_context()
    monkeypatch.setattr(renewal, "RENEWAL_BATCH_SIZE", 2)
    for _ in range(3):
        _add_domain(context, renew_in=datetime.timedelta(minutes=-1))
    original = issuance_service.create_issuances
    calls: list[int] = []

    def fail_second_batch(*arguments, **options):
        calls.append(1)
        if len(calls) == 2:
            raise SimulatedCrash()
        return original(*arguments, **options)

    monkeypatch.setattr(issuance_service, "create_issuances", fail_second_batch)
    metric_before = _renewals_queued()
    caplog.set_level(logging.INFO, logger=renewal.__name__)

    with pytest.raises(SimulatedCrash):
        renew_due_certificates(context)

    written = _queued_issuances(context)
    logged = {record.getMessage().split("issuance_id=")[1].split()[0]
              for record in caplog.records if record.getMessage().startswith("queued renewal")}
    assert len(written) == 2
    assert set(context.backends.issuance_queue().get_job_ids()) == {
        job_id for _, job_id in written.values()}
    assert _renewals_queued() - metric_before == 2
    assert logged == {str(issuance_id) for issuance_id, _ in written.values()}


def test_removed_domain_gets_no_issuance(make_context) -> None:
    context = make_context()
    kept = _add_domain(context, renew_in=datetime.timedelta(minutes=-1))
    removed = uuid.uuid4()
    queue = context.backends.issuance_queue()

    created = issuance_service.create_issuances(
        context.backends, queue, [(kept, _serving_certificate(context, kept), "renewal started"),
                                  (removed, uuid.uuid4(), "renewal started")])

    assert [issuance.domain_id for issuance in created] == [kept]
    assert created[0].job_id.startswith(f"{queue.name}-{created[0].id}-")


def test_renewed_since_due_gets_no_issuance(make_context) -> None:
    """A domain whose certificate was replaced after the sweep found the old one due
    gets no renewal from that stale row."""
    context = make_context()
    renewed = _add_domain(context, renew_in=datetime.timedelta(minutes=-1))
    due_certificate = _serving_certificate(context, renewed)
    with context.backends.database.transaction() as connection:
        connection.execute(
            """
            INSERT INTO certificates (domain_id, source, hostnames, chain_pem,
                private_key_sealed, key_type, not_before, not_after, renew_after, issuer,
                serial_number, sha256_fingerprint)
            SELECT domain_id, source, hostnames, chain_pem, private_key_sealed, key_type,
                   now(), now() + interval '90 days', now() + interval '60 days', issuer,
                   serial_number || '-renewed', sha256_fingerprint
            FROM certificates WHERE id = %s
            """, (due_certificate,))
        connection.execute(
            "UPDATE domains SET certificate_id = (SELECT id FROM certificates "
            "WHERE domain_id = %s ORDER BY not_before DESC LIMIT 1) WHERE id = %s",
            (renewed, renewed))
    queue = context.backends.issuance_queue()

    created = issuance_service.create_issuances(
        context.backends, queue, [(renewed, due_certificate, "renewal started")])

    assert created == []
    assert _serving_certificate(context, renewed) != due_certificate


def _serving_certificate(context: SchedulerContext, domain_id: uuid.UUID) -> uuid.UUID:
    with context.backends.database.transaction() as connection:
        return connection.execute("SELECT certificate_id FROM domains WHERE id = %s",
                                  (domain_id,)).fetchone()[0]
