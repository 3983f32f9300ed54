"""A pebble-challtestsrv process used only as a DNS server whose answers a test sets.

Without a default address a name without records gets an empty answer, so a test can
also play a domain with no A record; LocalPebble's has 127.0.0.1 as the default.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from pathlib import Path

from devtools.ports import free_port, wait_for_listener

STARTUP_TIMEOUT_SECONDS = 30.0


class ChallTestSrv:
    """pebble-challtestsrv's mock DNS server and its management API on free loopback ports."""

    def __init__(self, workdir: Path, *, default_ipv4: str = "", dns_port: int | None = None,
                 management_port: int | None = None) -> None:
        self.workdir = workdir
        self.default_ipv4 = default_ipv4
        self.dns_port = dns_port or free_port()
        self.management_port = management_port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def dns_server(self) -> str:
        """The value for CERTSVC_DNS_SERVER."""
        return f"127.0.0.1:{self.dns_port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "challtestsrv-dns.log", "ab") as log:
            self.process = subprocess.Popen([
                "pebble-challtestsrv", "-defaultIPv4", self.default_ipv4, "-defaultIPv6", "",
                "-dns01", self.dns_server,
                "-management", f"127.0.0.1:{self.management_port}",
                "-http01", "", "-https01", "", "-tlsalpn01", "",
            ], stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        wait_for_listener(self.management_port, STARTUP_TIMEOUT_SECONDS)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def add_a_record(self, hostname: str, addresses: list[str]) -> None:
        self._post("/add-a", {"host": hostname, "addresses": addresses})

    def add_aaaa_record(self, hostname: str, addresses: list[str]) -> None:
        self._post("/add-aaaa", {"host": hostname, "addresses": addresses})

    def add_caa_record(self, hostname: str, policies: list[dict[str, str]]) -> None:
        """Add CAA records, e.g. [{"tag": "issue", "value": "letsencrypt.org"}]."""
        self._post("/add-caa", {"host": hostname, "policies": policies})

    def clear_records(self, hostname: str) -> None:
        for path in ("/clear-a", "/clear-aaaa", "/clear-caa"):
            self._post(path, {"host": hostname})

    def _post(self, path: str, body: dict) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.management_port}{path}",
                                         data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
