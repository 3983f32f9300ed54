"""The limit for a Python issuer: a minimal loop over certbot's acme library.

No database, no queue, no self-check: order, publish the key authorization in a dict
that an in-process HTTP server serves, answer the challenge, poll the
authorization at once and then every 50 ms, finalize with a CSR for a fresh ECDSA
P-256 key, poll the order the same way, download the chain. Threads each run the same loop on their share of the hostnames with a client
of their own, on one ACME account.
"""

from __future__ import annotations

import dataclasses
import http.server
import logging
import threading
import time
from collections.abc import Sequence

import josepy
import requests
from acme import challenges, messages
from acme import client as acme_client
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.harness import Deadline

logger = logging.getLogger(__name__)

POLL_INTERVAL_SECONDS = 0.05
NETWORK_TIMEOUT_SECONDS = 30
USER_AGENT = "certsvc-bench-bare-acme"


class ChallengeServer(http.server.ThreadingHTTPServer):
    """An HTTP server that serves /.well-known/acme-challenge/<token> from a dict."""

    daemon_threads = True

    def __init__(self, port: int) -> None:
        self.key_authorizations: dict[str, str] = {}
        super().__init__(("127.0.0.1", port), _ChallengeHandler)


class _ChallengeHandler(http.server.BaseHTTPRequestHandler):
    server: ChallengeServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        token = self.path.rpartition("/")[2]
        body = self.server.key_authorizations.get(token)
        payload = body.encode() if body is not None else b"not found\n"
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        return


@dataclasses.dataclass
class IssuerRun:
    """Measurements of one issuer's run: certificates, wall time, latencies and CPU time."""

    issued: int
    failed: int
    elapsed_seconds: float
    latencies_seconds: list[float]
    cpu_seconds: float
    """CPU time spent by the issuer's own processes during the run (the CA's excluded)."""

    @property
    def per_minute(self) -> float | None:
        return self.issued / self.elapsed_seconds * 60 if self.elapsed_seconds > 0 else None

    @property
    def cpu_seconds_per_certificate(self) -> float | None:
        return self.cpu_seconds / self.issued if self.issued else None


def _csr_pem(hostname: str) -> bytes:
    private_key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(private_key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


class BareIssuer:
    """An ACME client of one thread on a shared account."""

    def __init__(self, directory_url: str, ca_bundle: str, account_key: josepy.JWK,
                 account: messages.RegistrationResource | None) -> None:
        self.network = acme_client.ClientNetwork(
            account_key, account=account, alg=josepy.ES256, verify_ssl=ca_bundle,
            user_agent=USER_AGENT, timeout=NETWORK_TIMEOUT_SECONDS)
        directory = acme_client.ClientV2.get_directory(directory_url, self.network)
        self.client = acme_client.ClientV2(directory, self.network)

    def register(self) -> messages.RegistrationResource:
        registration = messages.NewRegistration.from_data(terms_of_service_agreed=True)
        return self.client.new_account(registration)

    def _post_as_get(self, url: str) -> requests.Response:
        return self.network.post(url, None, new_nonce_url=self.client.directory["newNonce"])

    def issue(self, hostname: str, server: ChallengeServer) -> str:
        """Obtain a certificate for hostname and return its PEM chain."""
        order = self.client.new_order(_csr_pem(hostname))
        tokens = []
        for authorization in order.authorizations:
            challenge = next(c for c in authorization.body.challenges
                             if isinstance(c.chall, challenges.HTTP01))
            response, key_authorization = challenge.response_and_validation(self.network.key)
            token = challenge.chall.encode("token")
            server.key_authorizations[token] = key_authorization
            tokens.append(token)
            self.client.answer_challenge(challenge, response)
        for authorization in order.authorizations:
            authorization, _ = self.client.poll(authorization)
            while authorization.body.status == messages.STATUS_PENDING:
                time.sleep(POLL_INTERVAL_SECONDS)
                authorization, _ = self.client.poll(authorization)
            if authorization.body.status != messages.STATUS_VALID:
                raise RuntimeError(f"authorization of {hostname} is {authorization.body.status}")
        order = self.client.begin_finalization(order)
        body = order.body
        while body.status != messages.STATUS_VALID or body.certificate is None:
            if body.status == messages.STATUS_INVALID:
                raise RuntimeError(f"order of {hostname} became invalid: {body.error}")
            if body is not order.body:
                time.sleep(POLL_INTERVAL_SECONDS)
            body = messages.Order.from_json(self._post_as_get(order.uri).json())
        chain_pem = self._post_as_get(body.certificate).text
        for token in tokens:
            server.key_authorizations.pop(token, None)
        return chain_pem


def run_loop(directory_url: str, ca_bundle: str, http_port: int, hostnames: Sequence[str],
             threads: int, time_limit_seconds: float) -> IssuerRun:
    """Issue one certificate per hostname with threads clients; stop at the time limit."""
    server = ChallengeServer(http_port)
    server_thread = threading.Thread(target=server.serve_forever, name="challenge-server",
                                     daemon=True)
    server_thread.start()
    try:
        account_key = josepy.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
        account = BareIssuer(directory_url, ca_bundle, account_key, None).register()
        # Each thread's directory fetch happens here, before the clock starts.
        issuers = [BareIssuer(directory_url, ca_bundle, account_key, account)
                   for _ in range(threads)]
        return _run_threads(issuers, server, hostnames, Deadline(time_limit_seconds))
    finally:
        server.shutdown()
        server.server_close()


def _run_threads(issuers: list[BareIssuer], server: ChallengeServer, hostnames: Sequence[str],
                 deadline: Deadline) -> IssuerRun:
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def work(issuer: BareIssuer, share: Sequence[str]) -> None:
        for hostname in share:
            if deadline.expired():
                return
            started = time.monotonic()
            try:
                issuer.issue(hostname, server)
            except Exception as error:  # counted and logged; the loop goes on
                logger.warning("bare acme loop failed hostname=%s: %s", hostname, error)
                with lock:
                    failures.append(hostname)
                continue
            with lock:
                latencies.append(time.monotonic() - started)

    shares = [hostnames[index::len(issuers)] for index in range(len(issuers))]
    workers = [threading.Thread(target=work, args=(issuer, share), name=f"bare-{index}")
               for index, (issuer, share) in enumerate(zip(issuers, shares))]
    cpu_before = time.process_time()
    started = time.monotonic()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.monotonic() - started
    return IssuerRun(issued=len(latencies), failed=len(failures), elapsed_seconds=elapsed,
                      latencies_seconds=latencies,
                      cpu_seconds=time.process_time() - cpu_before)
