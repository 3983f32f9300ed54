"""ACME Renewal Information (RFC 9773): the renewal sweep follows the CA's suggested window.

Debian's Pebble 2.4 has no renewalInfo resource. So a small server of the test's own
serves the directory (Pebble's, plus renewalInfo) and the renewal windows, and every
other ACME request goes to Pebble itself.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import ssl
import threading
import urllib.request
import uuid

import pytest
from cryptography import x509

from devtools.pebble import LocalPebble
from service.backends import Backends
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from stacks import isolated_stack
from worker.renewal import renew_due_certificates
from worker.scheduler import SchedulerContext

pytestmark = pytest.mark.pebble

RETRY_AFTER_SECONDS = 3600


class RenewalInfoServer:
    """Serves /dir (Pebble's directory with renewalInfo added) and /renewal-info/<cert id>."""

    def __init__(self) -> None:
        self.pebble: LocalPebble | None = None
        self.windows: dict[str, tuple[datetime.datetime, datetime.datetime]] = {}
        self.requested: list[str] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's method name)
                if self.path == "/dir":
                    owner._send(self, 200, owner._directory())
                elif self.path.startswith("/renewal-info/"):
                    certificate_id = self.path.removeprefix("/renewal-info/")
                    owner.requested.append(certificate_id)
                    window = owner.windows.get(certificate_id)
                    if window is None:
                        owner._send(self, 404, {"type": "urn:ietf:params:acme:error:malformed",
                                                "detail": "unknown certificate"})
                    else:
                        owner._send(self, 200, {"suggestedWindow": {
                            "start": window[0].isoformat().replace("+00:00", "Z"),
                            "end": window[1].isoformat().replace("+00:00", "Z")}},
                            retry_after=RETRY_AFTER_SECONDS)
                else:
                    owner._send(self, 404, {"detail": "not found"})

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def directory_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/dir"

    def _directory(self) -> dict:
        assert self.pebble is not None
        context = ssl.create_default_context(cafile=str(self.pebble.ca_bundle))
        with urllib.request.urlopen(self.pebble.directory_url, context=context,
                                    timeout=10) as response:
            directory = json.load(response)
        directory["renewalInfo"] = self.directory_url.removesuffix("/dir") + "/renewal-info"
        return directory

    @staticmethod
    def _send(handler: http.server.BaseHTTPRequestHandler, status: int, body: dict,
              retry_after: int | None = None) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json" if status == 200
                            else "application/problem+json")
        handler.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            handler.send_header("Retry-After", str(retry_after))
        handler.end_headers()
        handler.wfile.write(data)


def renewal_info_id(chain_pem: str) -> str:
    """Return the RFC 9773 certificate identifier: AKI key id and serial, base64url, dotted."""
    leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
    key_id = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    serial = leaf.serial_number
    serial_der = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)

    def encode(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return f"{encode(key_id)}.{encode(serial_der)}"


def test_sweep_follows_renewal_window(tmp_path) -> None:
    ari = RenewalInfoServer()
    ari.thread.start()
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    names = {label: f"ari-{label}-{uuid.uuid4().hex[:8]}.example.com"
             for label in ("now", "later", "unknown")}
    try:
        with isolated_stack(tmp_path, workers=1, scheduler=False,
                            extra_env={"CERTSVC_ACME_DIRECTORY_URL": ari.directory_url}
                            ) as deployment:
            ari.pebble = deployment.pebble
            ids = deployment.add_and_request(list(names.values()))
            assert set(deployment.wait_until_final(ids).values()) == {"SUCCEEDED"}
            certificates = {label: deployment.stub.GetCertificate(
                pb.GetCertificateRequest(hostname=name)) for label, name in names.items()}
            cert_ids = {label: renewal_info_id(c.chain_pem) for label, c in certificates.items()}
            ari.windows[cert_ids["now"]] = (now - datetime.timedelta(hours=2),
                                            now - datetime.timedelta(hours=1))
            later_window = (now + datetime.timedelta(days=30), now + datetime.timedelta(days=31))
            ari.windows[cert_ids["later"]] = later_window
            renew_before = dict(deployment.query(
                "SELECT id::text, renew_after FROM certificates"))

            settings = deployment.settings()
            backends = Backends.connect(settings)
            try:
                queued = renew_due_certificates(SchedulerContext(settings, backends, "test"))
            finally:
                backends.close()

            renewing = [row[0] for row in deployment.query(
                "SELECT hostname FROM issuances WHERE state <> 'SUCCEEDED'")]
            rows = {row[0]: row[1:] for row in deployment.query(
                "SELECT id::text, renew_after, renewal_info_next_check_at FROM certificates")}
    finally:
        ari.server.shutdown()
        ari.server.server_close()

    assert queued == 1
    assert renewing == [names["now"]]
    assert sorted(set(ari.requested)) == sorted(cert_ids.values())
    later_renew_after, later_next_check = rows[certificates["later"].id]
    assert later_window[0] <= later_renew_after <= later_window[1]
    assert now + datetime.timedelta(minutes=50) <= later_next_check
    assert later_next_check <= now + datetime.timedelta(minutes=70)
    now_renew_after, _ = rows[certificates["now"].id]
    assert now_renew_after <= now
    # A failed fetch keeps the lifetime rule and is retried later, within a day.
    unknown_renew_after, unknown_next_check = rows[certificates["unknown"].id]
    assert unknown_renew_after == renew_before[certificates["unknown"].id]
    assert now < unknown_next_check <= now + datetime.timedelta(days=1, minutes=1)
