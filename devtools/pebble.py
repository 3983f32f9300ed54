"""A local Pebble CA and pebble-challtestsrv on loopback, for the demo and the tests.

Pebble (Let's Encrypt's test CA, Debian package `pebble`) validates HTTP-01 for real:
it resolves each name through pebble-challtestsrv, which answers 127.0.0.1 for every
name unless configured otherwise, and fetches the token from the responder on http_port.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devtools.challtestsrv import ChallTestSrv
from devtools.ports import free_port, port_is_free  # noqa: F401 (imported from here)

STARTUP_TIMEOUT_SECONDS = 30.0




class LocalPebble:
    """Pebble and pebble-challtestsrv processes with their own TLS material in workdir."""

    def __init__(self, workdir: Path, *, acme_port: int, management_port: int, http_port: int,
                 dns_port: int, challtestsrv_management_port: int,
                 nonce_reject_percent: int | None = None,
                 authz_reuse_percent: int | None = None,
                 va_sleep_seconds: int | None = None) -> None:
        self.workdir = workdir
        self.acme_port = acme_port
        self.management_port = management_port
        self.http_port = http_port
        self.dns_port = dns_port
        self.challtestsrv_management_port = challtestsrv_management_port
        self.nonce_reject_percent = nonce_reject_percent
        self.authz_reuse_percent = authz_reuse_percent
        # Each validation request waits a random 0 to va_sleep_seconds - 1 seconds, as
        # the CA's own queue would; None validates at once.
        self.va_sleep_seconds = va_sleep_seconds
        self.processes: list[subprocess.Popen] = []
        self.ca_bundle = workdir / "pebble-https-ca.pem"
        # Every name resolves to 127.0.0.1 unless a test adds records for it.
        self.dns = ChallTestSrv(workdir, default_ipv4="127.0.0.1", dns_port=dns_port,
                                management_port=challtestsrv_management_port)

    @classmethod
    def on_free_ports(cls, workdir: Path, **options: int | None) -> LocalPebble:
        return cls(workdir, acme_port=free_port(), management_port=free_port(),
                   http_port=free_port(), dns_port=free_port(),
                   challtestsrv_management_port=free_port(), **options)

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.acme_port}/dir"

    @property
    def dns_server(self) -> str:
        return f"127.0.0.1:{self.dns_port}"

    def certsvc_environment(self) -> dict[str, str]:
        """Return the CERTSVC_* variables that point certsvc at this CA: its directory, its
        HTTPS root, its resolver, and the responder on the port Pebble validates."""
        return {
            "CERTSVC_ACME_DIRECTORY_URL": self.directory_url,
            "CERTSVC_ACME_CA_BUNDLE": str(self.ca_bundle),
            "CERTSVC_RESPONDER_ADDRESS": f"127.0.0.1:{self.http_port}",
            "CERTSVC_CHALLENGE_PORT": str(self.http_port),
            "CERTSVC_DNS_SERVER": self.dns_server,
        }

    def start(self) -> None:
        """Start both processes and wait until Pebble serves its directory."""
        missing = [name for name in ("pebble", "pebble-challtestsrv") if shutil.which(name) is None]
        if missing:
            raise RuntimeError(
                f"{', '.join(missing)} not found; install Debian's pebble package "
                "(apt-get install -y pebble)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        certificate, key = write_https_material(self.workdir, self.ca_bundle)
        config = self.workdir / "pebble-config.json"
        config.write_text(json.dumps({"pebble": {
            "listenAddress": f"127.0.0.1:{self.acme_port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(certificate),
            "privateKey": str(key),
            "httpPort": self.http_port,
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }}))
        self.dns.start()
        self._spawn("pebble", ["pebble", "-config", str(config), "-dnsserver", self.dns_server],
                    self._pebble_environment())
        self._wait_for_directory()

    def stop(self) -> None:
        self.dns.stop()
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()

    def restart_pebble(self) -> None:
        """Restart only Pebble, which loses every account and order and gets new roots."""
        pebble = next(p for p in self.processes if p.args[0] == "pebble")
        pebble.send_signal(signal.SIGTERM)
        pebble.wait(timeout=10)
        self.processes.remove(pebble)
        self._spawn("pebble", pebble.args, self._pebble_environment())
        self._wait_for_directory()

    def _pebble_environment(self) -> dict[str, str]:
        environment = {}
        if self.va_sleep_seconds is None:
            environment["PEBBLE_VA_NOSLEEP"] = "1"
        else:
            environment["PEBBLE_VA_SLEEPTIME"] = str(self.va_sleep_seconds)
        if self.nonce_reject_percent is not None:
            environment["PEBBLE_WFE_NONCEREJECT"] = str(self.nonce_reject_percent)
        if self.authz_reuse_percent is not None:
            environment["PEBBLE_AUTHZREUSE"] = str(self.authz_reuse_percent)
        return environment

    def root_certificates_pem(self) -> str:
        """Return the PEM of Pebble's current issuing root (it changes on every start)."""
        return self._management_get("/roots/0")

    def intermediate_certificates_pem(self) -> str:
        return self._management_get("/intermediates/0")

    def add_a_record(self, hostname: str, addresses: list[str]) -> None:
        self.dns.add_a_record(hostname, addresses)

    def add_aaaa_record(self, hostname: str, addresses: list[str]) -> None:
        self.dns.add_aaaa_record(hostname, addresses)

    def add_caa_record(self, hostname: str, policies: list[dict[str, str]]) -> None:
        """Add CAA records, e.g. [{"tag": "issue", "value": "letsencrypt.org"}]."""
        self.dns.add_caa_record(hostname, policies)

    def clear_records(self, hostname: str) -> None:
        """Remove a name's A, AAAA and CAA records."""
        self.dns.clear_records(hostname)

    def _spawn(self, name: str, arguments: list[str], environment: dict[str, str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")
        process = subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **environment}, cwd=self.workdir)
        log.close()
        self.processes.append(process)

    def _wait_for_directory(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            try:
                with urllib.request.urlopen(self.directory_url, context=context, timeout=2):
                    return
            except OSError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Pebble did not serve {self.directory_url} within "
                        f"{STARTUP_TIMEOUT_SECONDS:g} s ({error}); see "
                        f"{self.workdir / 'pebble.log'}") from error
                if any(p.poll() is not None for p in self.processes):
                    raise RuntimeError(
                        f"Pebble or pebble-challtestsrv exited; see the logs in {self.workdir}")
                time.sleep(0.1)

    def _management_get(self, path: str) -> str:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        url = f"https://127.0.0.1:{self.management_port}{path}"
        with urllib.request.urlopen(url, context=context, timeout=5) as response:
            return response.read().decode()



def write_https_material(workdir: Path, ca_path: Path,
                         names: tuple[str, ...] = ("localhost",)) -> tuple[Path, Path]:
    """Write a throwaway CA and a certificate for 127.0.0.1 and names signed by it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certsvc local Pebble HTTPS CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([
            *(x509.DNSName(name) for name in names),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certificate_path = workdir / "pebble-https-cert.pem"
    key_path = workdir / "pebble-https-key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return certificate_path, key_path
