"""Plays an HTTP-01 self-check scenario for real on loopback.

A scenario has the shape a validator sees (the tests write their own):

    {"dns": {host: {"A": [...], "AAAA": [...]}},
     "unreachable": {address: "timeout"},
     "responses": {url: {"status": 302, "headers": {...}, "body": "...", "tls": "self-signed"}}}

Addresses are mapped to loopback: each IPv4 address to its own 127.0.x.y, every IPv6
address to ::1 (the only IPv6 loopback address, so a scenario has at most one). DNS
answers go to pebble-challtestsrv through its management API. URLs without a port
get the test's challenge ports in place of 80 and 443, in the responses' keys and
in their Location headers. Each mapped address gets small HTTP (and, where needed,
self-signed HTTPS) servers on those ports; an address marked unreachable gets a
listener that accepts connections and never answers, which stands in for a network
timeout on loopback. A body equal to SELF_CHECK_BODY is replaced by the body the
service expects.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import itertools
import socket
import ssl
import threading
import time
import urllib.parse
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devtools.challtestsrv import ChallTestSrv

SELF_CHECK_BODY = "<the self-check body>"
PATH = "/.well-known/acme-challenge/_g_selfcheck_"

# Every world takes fresh 127.0.x.y addresses, so no test meets another's servers.
_ipv4_numbers = itertools.count(1)


def _next_loopback_ipv4() -> str:
    number = next(_ipv4_numbers)
    return f"127.0.{10 + number // 250}.{1 + number % 250}"


class World:
    """Servers and DNS answers of one scenario; call close() when the test ends."""

    def __init__(self, dns: ChallTestSrv, http_port: int, https_port: int, tls_files: tuple[Path, Path]
                 ) -> None:
        self.dns = dns
        self.http_port = http_port
        self.https_port = https_port
        self.tls_files = tls_files
        self.address_map: dict[str, str] = {}
        self.servers: list[_Server] = []
        self.hostnames: list[str] = []

    def loopback(self, address: str) -> str:
        """Return the loopback address that stands in for a scenario address."""
        if address not in self.address_map:
            version = ipaddress.ip_address(address).version
            self.address_map[address] = "::1" if version == 6 else _next_loopback_ipv4()
        return self.address_map[address]

    def url(self, url: str) -> str:
        """Put the test ports into a URL without a port, and map an IP host to loopback."""
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        try:
            ipaddress.ip_address(host)
            host = self.loopback(host)
        except ValueError:
            pass
        port = parts.port or (self.https_port if parts.scheme == "https" else self.http_port)
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))

    def play(self, scenario: dict, body: str) -> None:
        """Publish the scenario's DNS answers and start its servers."""
        responses: dict[tuple[str, str, str], dict] = {}
        for url, response in scenario.get("responses", {}).items():
            mapped = urllib.parse.urlsplit(self.url(url))
            target = mapped.path + (f"?{mapped.query}" if mapped.query else "")
            served = dict(response)
            if served.get("body") == SELF_CHECK_BODY:
                served["body"] = body
            headers = dict(served.get("headers", {}))
            if "Location" in headers and "://" in headers["Location"]:
                try:
                    headers["Location"] = self.url(headers["Location"])
                except ValueError:
                    pass  # a malformed Location is served as written
            served["headers"] = headers
            responses[(mapped.scheme, mapped.hostname or "", target)] = served

        unreachable = set(scenario.get("unreachable", {}))
        for host, records in scenario.get("dns", {}).items():
            self.hostnames.append(host)
            ipv4 = [self.loopback(a) for a in records.get("A", [])]
            ipv6 = [self.loopback(a) for a in records.get("AAAA", [])]
            if ipv4:
                self.dns.add_a_record(host, ipv4)
            if ipv6:
                self.dns.add_aaaa_record(host, ipv6)
        for caa_host, policies in scenario.get("caa", {}).items():
            self.hostnames.append(caa_host)
            self.dns.add_caa_record(caa_host, policies)

        for original, address in self.address_map.items():
            for scheme, port in (("http", self.http_port), ("https", self.https_port)):
                if original in unreachable:
                    server: _Server = _SilentServer(address, port)
                else:
                    server = _ScenarioServer(address, port, scheme, responses, self.tls_files)
                server.start()
                self.servers.append(server)

    def close(self) -> None:
        for server in self.servers:
            server.stop()
        for host in self.hostnames:
            self.dns.clear_records(host)


class _Server:
    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class _ScenarioHandler(http.server.BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (the name http.server dispatches to)
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].lower()
        response = self.server.responses.get((self.server.scheme, host, self.path))
        if response is None:
            response = {"status": 404, "body": "no response in this scenario"}
        body = response.get("body", "").encode()
        self.send_response(response["status"])
        for name, value in response.get("headers", {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        drip_seconds = response.get("drip_seconds")
        if drip_seconds:
            # A server that sends its body one byte at a time, as a slow proxy might.
            for index in range(len(body)):
                self.wfile.write(body[index:index + 1])
                self.wfile.flush()
                time.sleep(drip_seconds)
        else:
            self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    responses: dict[tuple[str, str, str], dict]
    scheme: str


class _ScenarioServer(_Server):
    """Answers the scenario's responses for its scheme on one address and port."""

    def __init__(self, address: str, port: int, scheme: str,
                 responses: dict[tuple[str, str, str], dict], tls_files: tuple[Path, Path]) -> None:
        server_class = type("_FamilyHTTPServer", (_HTTPServer,), {
            "address_family": socket.AF_INET6 if ":" in address else socket.AF_INET})
        self.httpd = server_class((address, port), _ScenarioHandler)
        self.httpd.responses = responses
        self.httpd.scheme = scheme
        if scheme == "https":
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls_files)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _SilentServer(_Server):
    """Accepts connections and never answers."""

    def __init__(self, address: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(16)
        self.accepted: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                connection, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(connection)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for connection in self.accepted:
            connection.close()
        self.sock.close()


def write_self_signed(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate and key for the scenarios' HTTPS servers."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-signed scenario server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    certificate_path = directory / "scenario-cert.pem"
    key_path = directory / "scenario-key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return certificate_path, key_path
