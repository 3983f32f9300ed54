"""The ACME transport against a small local CA stand-in: badNonce retries and the
Retry-After of a rateLimited error (Pebble never sends rateLimited)."""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import os
import threading

import josepy
import pytest
from acme import messages
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import REGISTRY

from worker import acme_errors
from worker.acme_client import BAD_NONCE_TRIES, AcmeNetwork
from worker.retry_policy import RetryPolicy


class StandInCA:
    """Responds to HEAD /nonce with a nonce, and to POSTs with the problems queued in
    `answers`, then with 200."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict, dict[str, str]]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:  # noqa: N802 (http.server's method name)
                self.send_response(200)
                self.send_header("Replay-Nonce", _nonce())
                self.end_headers()

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, body, headers = owner.answers.pop(0) if owner.answers else (
                    200, {"status": "pending"}, {})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if status == 200
                                 else "application/problem+json")
                self.send_header("Replay-Nonce", _nonce())
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def _nonce() -> str:
    return base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")


def _bad_nonce() -> tuple[int, dict, dict[str, str]]:
    return 400, {"type": "urn:ietf:params:acme:error:badNonce", "detail": "stale nonce"}, {}


@pytest.fixture
def ca():
    stand_in = StandInCA()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


@pytest.fixture
def network() -> AcmeNetwork:
    return AcmeNetwork(key=josepy.JWKEC(key=ec.generate_private_key(ec.SECP256R1())),
                       alg=josepy.ES256, verify_ssl=False, timeout=10)


def _retries() -> float:
    return REGISTRY.get_sample_value("certsvc_acme_bad_nonce_retries_total") or 0.0


def test_bad_nonces_retried(ca, network) -> None:
    ca.answers = [_bad_nonce(), _bad_nonce(), _bad_nonce()]
    before = _retries()

    response = network.post(f"{ca.url}/order", None, new_nonce_url=f"{ca.url}/nonce")

    assert response.status_code == 200
    assert _retries() - before == 3


def test_bad_nonces_bounded(ca, network) -> None:
    ca.answers = [_bad_nonce() for _ in range(BAD_NONCE_TRIES + 2)]

    with pytest.raises(messages.Error) as raised:
        network.post(f"{ca.url}/order", None, new_nonce_url=f"{ca.url}/nonce")

    assert raised.value.code == "badNonce"
    assert len(ca.answers) == 2
    assert acme_errors.from_exception(raised.value, "shop.example.com").retryable


def test_rate_limited_retry_after_read(ca, network) -> None:
    ca.answers = [(429, {"type": "urn:ietf:params:acme:error:rateLimited",
                         "detail": "too many new orders recently"}, {"Retry-After": "120"})]
    policy = RetryPolicy(first_delay_seconds=1, max_delay_seconds=4, max_attempts=8,
                         max_retry_after_seconds=3600)

    with pytest.raises(messages.Error) as raised:
        network.post(f"{ca.url}/order", None, new_nonce_url=f"{ca.url}/nonce")
    now = datetime.datetime.now(datetime.timezone.utc)
    retry_after = network.retry_after_for(raised.value)
    error = acme_errors.from_exception(raised.value, "shop.example.com", retry_after)
    retry_at = policy.next_attempt_at(1, error, now)

    assert raised.value.code == "rateLimited"
    assert now + datetime.timedelta(seconds=115) <= retry_after
    assert retry_after <= now + datetime.timedelta(seconds=121)
    assert error.retryable
    assert error.retry_after == retry_after
    assert "rate limit" in str(error)
    assert retry_at >= now + datetime.timedelta(seconds=115)


def test_retry_after_only_for_its_error(ca, network) -> None:
    ca.answers = [(503, {"type": "urn:ietf:params:acme:error:serverInternal", "detail": "busy"},
                   {"Retry-After": "30"})]
    with pytest.raises(messages.Error) as raised:
        network.post(f"{ca.url}/order", None, new_nonce_url=f"{ca.url}/nonce")

    other = messages.Error(typ="urn:ietf:params:acme:error:serverInternal", detail="other")

    assert network.retry_after_for(raised.value) is not None
    assert network.retry_after_for(other) is None
