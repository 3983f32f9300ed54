"""A domain that fails the self-check spends no order: event, warning, retry on backoff.

The HTTP self-check is plugged into WorkerContext.self_check. This test plugs in one
that fails and runs an attempt in this process against real Postgres and Redis.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import uuid

import pytest
from prometheus_client import REGISTRY

from devtools import stack
from service.backends import Backends
from service.config import Settings
from service.domain_warnings import domain_warnings
from service.issuance import queue_issuance
from service.store import certificates as certificate_rows
from service.store import domains as domain_rows
from service.store.certificates import NewCertificate
from service.store.migrate import migrate
from worker.context import WorkerContext
from worker.issuer import IssuanceRunner
from worker.self_check_step import SelfCheckResult, failure_reason
from worker.selfcheck import CheckResult, Hop

MESSAGE = ("self-check failed for {host}: GET http://{host}/.well-known/acme-challenge/"
           "_g_selfcheck_ returned 404; make sure your proxy passes "
           "/.well-known/acme-challenge/ through")


@pytest.fixture
def backends():
    name = stack.unique_name("selfcheck")
    url = stack.create_database(name)
    migrate(url)
    prefix = f"certsvc-selfcheck-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env({"CERTSVC_DATABASE_URL": url, "CERTSVC_REDIS_URL": stack.REDIS_URL,
                                  "CERTSVC_REDIS_PREFIX": prefix, "CERTSVC_DEV_INSECURE": "1",
                                  "CERTSVC_RETRY_FIRST_DELAY_SECONDS": "30"})
    connected = Backends.connect(settings)
    yield connected
    connected.close()
    stack.delete_redis_namespace(stack.REDIS_URL, prefix)
    stack.drop_database(name)


def _active_domain(backends: Backends, hostname: str):
    """Insert a domain served by a Let's Encrypt certificate that is due for renewal."""
    now = datetime.datetime.now(datetime.timezone.utc)
    with backends.database.transaction() as connection:
        domain, _ = domain_rows.insert_domain(connection, hostname=hostname,
                                              unicode_hostname=hostname, app_id="app-1",
                                              wildcard=False)
        certificate = certificate_rows.insert_certificate(connection, NewCertificate(
            id=uuid.uuid4(), domain_id=domain.id, source="LETS_ENCRYPT", hostnames=[hostname],
            chain_pem="", private_key_sealed=b"\x00", key_type="ECDSA-P256",
            not_before=now - datetime.timedelta(days=60), not_after=now + datetime.timedelta(days=30),
            issuer="CN=test", serial_number="01", sha256_fingerprint="00", warnings=[],
            renew_after=now - datetime.timedelta(days=1)))
        domain_rows.update_domain(connection, domain.id, status="ACTIVE",
                                  certificate_id=certificate.id)
    return domain, certificate.id


def _failures(reason: str) -> float:
    return REGISTRY.get_sample_value("certsvc_self_check_failures_total", {"reason": reason}) or 0.0


def test_failed_self_check_retries_without_order(backends) -> None:
    hostname = f"selfcheck-{uuid.uuid4().hex[:8]}.example.com"
    domain, certificate_id = _active_domain(backends, hostname)
    checked: list[str] = []

    def failing_check(name: str) -> SelfCheckResult:
        checked.append(name)
        return SelfCheckResult(ok=False, reason="status", message=MESSAGE.format(host=name))

    context = WorkerContext(backends.settings, backends=backends, self_check=failing_check)
    issuance, _ = queue_issuance(backends, domain.id, "renewal started")
    before = _failures("status")

    IssuanceRunner(context).run(issuance.id, issuance.job_id)

    with backends.database.transaction() as connection:
        state, attempt, error, next_attempt_at = connection.execute(
            "SELECT state, attempt, error, next_attempt_at FROM issuances WHERE id = %s",
            (issuance.id,)).fetchone()
        events = [row[0] for row in connection.execute(
            "SELECT type FROM events WHERE issuance_id = %s ORDER BY id", (issuance.id,))]
        orders = connection.execute("SELECT count(*) FROM acme_ledger").fetchone()[0]
        after = domain_rows.get_domain(connection, hostname)
    context.close()
    now = datetime.datetime.now(datetime.timezone.utc)
    assert checked == [hostname]
    assert state == "QUEUED"
    assert attempt == 1
    assert error == MESSAGE.format(host=hostname)
    assert now + datetime.timedelta(seconds=20) < next_attempt_at < now + datetime.timedelta(seconds=40)
    assert events == ["ISSUANCE_QUEUED", "ISSUANCE_STARTED", "SELF_CHECK_FAILED",
                      "ISSUANCE_RETRY_SCHEDULED"]
    assert orders == 0
    assert after.status == "ACTIVE"
    assert after.certificate_id == certificate_id
    assert any(MESSAGE.format(host=hostname) in text for text in domain_warnings(after))
    assert _failures("status") - before == 1
    # No ACME session was opened: nothing talked to a CA.
    assert context._acme_session is None


@pytest.mark.parametrize(("hops", "message", "reason"), [
    ([], "self-check failed for a.example: a.example has no A or AAAA record", "dns"),
    ([], "self-check failed for a.example: a CAA record forbids issuance", "caa"),
    ([Hop("http://a.example/x", 0, "192.0.2.1", "connection refused")], "failed", "connection"),
    ([Hop("http://a.example/x", 0, "192.0.2.1", "timed out after 15 s")], "failed", "timeout"),
    ([Hop("http://a.example/x", 301, "192.0.2.1")], "redirect to an IP address", "redirect"),
    ([Hop("http://a.example/x", 404, "192.0.2.1")], "returned 404", "status"),
    ([Hop("http://a.example/x", 200, "192.0.2.1")], "returned another body", "body"),
])
def test_failure_reason_labels(hops: list[Hop], message: str, reason: str) -> None:
    result = CheckResult(ok=False, url="http://a.example/x", final_url="", hops=hops,
                         message=message, warnings=[],
                         checked_at=datetime.datetime.now(datetime.timezone.utc))

    assert failure_reason(result) == reason


def test_last_attempt_fails_issuance(backends) -> None:
    hostname = f"giveup-{uuid.uuid4().hex[:8]}.example.com"
    domain, _ = _active_domain(backends, hostname)
    settings = dataclasses.replace(backends.settings, retry_max_attempts=2)

    def failing_check(name: str) -> SelfCheckResult:
        return SelfCheckResult(ok=False, reason="dns", message=f"{name} has no A record")

    context = WorkerContext(settings, backends=backends, self_check=failing_check)
    issuance, _ = queue_issuance(backends, domain.id, "renewal started")
    runner = IssuanceRunner(context)
    runner.run(issuance.id, issuance.job_id)
    with backends.database.transaction() as connection:
        connection.execute("UPDATE issuances SET next_attempt_at = now() WHERE id = %s",
                           (issuance.id,))
    runner.run(issuance.id)

    with backends.database.transaction() as connection:
        state, attempt, error = connection.execute(
            "SELECT state, attempt, error FROM issuances WHERE id = %s",
            (issuance.id,)).fetchone()
        events = [row[0] for row in connection.execute(
            "SELECT type FROM events WHERE issuance_id = %s ORDER BY id", (issuance.id,))]
        domain_after = domain_rows.get_domain(connection, hostname)
    context.close()
    assert state == "FAILED"
    assert attempt == 2
    assert error.startswith("gave up after 2 attempts")
    assert f"{hostname} has no A record" in error
    assert events[-1] == "ISSUANCE_FAILED"
    assert events.count("ISSUANCE_RETRY_SCHEDULED") == 1
    # The older certificate still serves the domain.
    assert domain_after.status == "ACTIVE"
    assert domain_after.last_error == error
