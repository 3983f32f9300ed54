"""Outcomes on the shared test stack: a permanent CA error, concurrent requests, renewing an
ACTIVE domain."""

from __future__ import annotations

import concurrent.futures
import http.server
import re
import threading

import psycopg
import pytest
import redis

from conftest import unique_hostname, wait_for_issuance
from devtools import stack
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.redis_keys import SELF_CHECK_TOKEN, RedisKeys
from service.store import locks

pytestmark = [pytest.mark.pebble, pytest.mark.usefixtures("issuance_stack")]

# A key authorization as Pebble quotes it: token, dot, 43-character thumbprint.
KEY_AUTHORIZATION = re.compile(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{43}")


class _WrongKeyAuthorizationSite(http.server.ThreadingHTTPServer):
    """Passes the self-check (it serves the body certsvc stored for the host) but returns
    a wrong body for every ACME challenge token."""

    def __init__(self, address: tuple[str, int], redis_client: redis.Redis,
                 keys: RedisKeys) -> None:
        super().__init__(address, _WrongKeyAuthorizationHandler)
        self.redis = redis_client
        self.keys = keys


class _WrongKeyAuthorizationHandler(http.server.BaseHTTPRequestHandler):
    server: _WrongKeyAuthorizationSite

    def do_GET(self) -> None:  # noqa: N802 (http.server's method name)
        host = (self.headers.get("Host") or "").split(":")[0]
        if self.path.endswith(f"/{SELF_CHECK_TOKEN}"):
            body = self.server.redis.get(self.server.keys.self_check_body(host)) or b""
        else:
            body = b"not-the-key-authorization"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def wrong_answer_site(pebble, redis_prefix):
    """A web server on 127.0.0.2, at Pebble's validation port, as described above."""
    client = redis.Redis.from_url(stack.REDIS_URL)
    server = _WrongKeyAuthorizationSite(("127.0.0.2", pebble.http_port), client,
                                        RedisKeys(redis_prefix))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.2"
    server.shutdown()
    server.server_close()
    client.close()


def test_permanent_error_fails_once(stub, pebble, database_url, wrong_answer_site) -> None:
    hostname = unique_hostname("wrong")
    pebble.add_a_record(hostname, [wrong_answer_site])
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-outcomes"))

    issuance = wait_for_issuance(
        stub, stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname)).id)

    domain = stub.GetDomain(pb.GetDomainRequest(hostname=hostname))
    events = [event.type for event in
              stub.ListDomainEvents(pb.ListDomainEventsRequest(hostname=hostname)).events]
    with psycopg.connect(database_url) as connection:
        failed_validations = connection.execute(
            "SELECT count(*) FROM acme_ledger WHERE hostname = %s AND kind = 'failed_validation'",
            (hostname,)).fetchone()[0]
    assert issuance.state == pb.Issuance.FAILED
    assert issuance.attempt == 1
    assert "unauthorized" in issuance.error
    assert "retrying cannot fix" in issuance.error
    assert KEY_AUTHORIZATION.search(issuance.error) is None
    assert "ISSUANCE_RETRY_SCHEDULED" not in events
    assert events[0] == "ISSUANCE_FAILED"
    assert domain.status == pb.Domain.FAILED
    assert domain.last_error == issuance.error
    assert failed_validations == 1


def test_twenty_concurrent_requests_one_order(stub, database_url) -> None:
    hostname = unique_hostname("crowd")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-outcomes"))

    # Holding the domain's lock keeps the worker off the issuance until every call has
    # landed; a call after it succeeded would rightly start a renewal.
    with psycopg.connect(database_url, autocommit=True) as holder:
        domain_id = holder.execute("SELECT id FROM domains WHERE hostname = %s",
                                   (hostname,)).fetchone()[0]
        assert locks.try_lock_domain(holder, domain_id)
        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            issuances = list(pool.map(
                lambda _: stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname)),
                range(20)))
        locks.unlock_domain(holder, domain_id)
    final = wait_for_issuance(stub, issuances[0].id)

    with psycopg.connect(database_url) as connection:
        orders = connection.execute(
            "SELECT count(*) FROM acme_ledger WHERE hostname = %s AND kind = 'order'",
            (hostname,)).fetchone()[0]
        issuance_rows = connection.execute(
            "SELECT count(*) FROM issuances WHERE hostname = %s", (hostname,)).fetchone()[0]
        certificates = connection.execute(
            "SELECT count(*) FROM certificates c JOIN domains d ON d.id = c.domain_id "
            "WHERE d.hostname = %s", (hostname,)).fetchone()[0]
    assert {issuance.id for issuance in issuances} == {final.id}
    assert final.state == pb.Issuance.SUCCEEDED
    assert orders == 1
    assert issuance_rows == 1
    assert certificates == 1


def test_request_on_active_domain_renews(stub) -> None:
    hostname = unique_hostname("again")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-outcomes"))
    first = wait_for_issuance(
        stub, stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname)).id)
    old_certificate = stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname))

    renewal = stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))
    during = stub.GetDomain(pb.GetDomainRequest(hostname=hostname))
    final = wait_for_issuance(stub, renewal.id)

    new_certificate = stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname))
    messages = [event.message for event in
                stub.ListDomainEvents(pb.ListDomainEventsRequest(hostname=hostname)).events
                if event.type == "ISSUANCE_QUEUED"]
    assert first.state == pb.Issuance.SUCCEEDED
    assert renewal.id != first.id
    assert renewal.state in (pb.Issuance.QUEUED, pb.Issuance.ORDERING, pb.Issuance.VALIDATING,
                             pb.Issuance.FINALIZING, pb.Issuance.SUCCEEDED)
    assert during.status == pb.Domain.ACTIVE
    assert final.state == pb.Issuance.SUCCEEDED
    assert new_certificate.id == final.certificate_id
    assert new_certificate.id != old_certificate.id
    assert messages[0].startswith("renewal requested")
