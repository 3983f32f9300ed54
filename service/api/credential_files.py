"""The api's credential files, re-read while it runs: the callers file and the TLS files.

Operators rotate the api's TLS certificate and edit the callers file without a
restart. A thread compares the files' metadata every RELOAD_INTERVAL_SECONDS. A
changed file is read and validated before it replaces the one in use, so a file that
is half written or invalid leaves the previous credentials in force, with an error
in the log.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.api.auth import Authenticator
from service.api.principals import load_callers
from service.config import ConfigError, Settings

logger = logging.getLogger(__name__)

RELOAD_INTERVAL_SECONDS = 2.0

# A file's version: its modification and change times, size, inode and device. A file
# replaced by rename or by a symlink swap, as Kubernetes does for mounted secrets, gets a
# new inode, and chmod or chown changes only the change time.
FileVersion = tuple[int, int, int, int, int] | None


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """The contents of CERTSVC_TLS_CERT, CERTSVC_TLS_KEY and CERTSVC_TLS_CLIENT_CA."""

    certificate_chain: bytes
    private_key: bytes
    client_ca: bytes | None

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.private_key, self.certificate_chain)], root_certificates=self.client_ca)


def read_tls_files(settings: Settings) -> TlsFiles | None:
    """Read and check the TLS files, or return None when the api speaks plaintext.

    Raises ConfigError when the settings are incomplete or a file cannot be read or
    parsed. It also raises it for a key that is not RSA or EC or does not belong to the
    first certificate, for a chain out of order, and for a first certificate outside
    its validity period.
    """
    if settings.tls_cert is None and settings.tls_key is None:
        if settings.tls_client_ca is not None:
            raise ConfigError("CERTSVC_TLS_CLIENT_CA needs CERTSVC_TLS_CERT and CERTSVC_TLS_KEY: "
                              "mutual TLS runs on top of the api's own TLS certificate")
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise ConfigError("set both CERTSVC_TLS_CERT and CERTSVC_TLS_KEY, or neither")
    chain = _read("CERTSVC_TLS_CERT", settings.tls_cert)
    key = _read("CERTSVC_TLS_KEY", settings.tls_key)
    client_ca = (_read("CERTSVC_TLS_CLIENT_CA", settings.tls_client_ca)
                 if settings.tls_client_ca else None)

    certificates = _parse_certificates("CERTSVC_TLS_CERT", settings.tls_cert, chain)
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"CERTSVC_TLS_KEY ({settings.tls_key}) is not an unencrypted PEM "
                          f"private key: {error}") from None
    # grpc's TLS stack rejects other key types (DSA, for one) when the server starts.
    if not isinstance(private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ConfigError(f"CERTSVC_TLS_KEY ({settings.tls_key}) is a "
                          f"{type(private_key).__name__}; use an RSA or ECDSA key")
    if _public_key_der(private_key.public_key()) != _public_key_der(certificates[0].public_key()):
        raise ConfigError(f"CERTSVC_TLS_KEY ({settings.tls_key}) does not belong to the first "
                          f"certificate in CERTSVC_TLS_CERT ({settings.tls_cert}); install the "
                          "key and certificate of one pair")
    _check_chain(settings.tls_cert, certificates)
    if client_ca is not None:
        _parse_certificates("CERTSVC_TLS_CLIENT_CA", settings.tls_client_ca, client_ca)
    return TlsFiles(chain, key, client_ca)


def _read(variable: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{variable} ({path}) cannot be read: {error.strerror}") from None


def _check_chain(path: Path, certificates: list[x509.Certificate]) -> None:
    """Raise ConfigError when the chain is out of order or its first certificate is not
    valid now."""
    for position, (certificate, issuer) in enumerate(zip(certificates, certificates[1:]),
                                                     start=1):
        if certificate.issuer != issuer.subject:
            raise ConfigError(
                f"CERTSVC_TLS_CERT ({path}): certificate {position + 1} "
                f"({issuer.subject.rfc4514_string()}) did not issue certificate {position} "
                f"({certificate.subject.rfc4514_string()}); put the api's certificate first, "
                "then each issuer in turn")
    leaf = certificates[0]
    now = datetime.datetime.now(datetime.timezone.utc)
    if now > leaf.not_valid_after_utc:
        raise ConfigError(f"CERTSVC_TLS_CERT ({path}) expired at "
                          f"{leaf.not_valid_after_utc.isoformat()}; install a current one")
    if now < leaf.not_valid_before_utc:
        raise ConfigError(f"CERTSVC_TLS_CERT ({path}) is valid only from "
                          f"{leaf.not_valid_before_utc.isoformat()}; check the clock or the "
                          "certificate")


def _public_key_der(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _parse_certificates(variable: str, path: Path, data: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as error:
        raise ConfigError(f"{variable} ({path}) does not contain PEM certificates: "
                          f"{error}") from None


def file_versions(paths: Sequence[Path | None]) -> tuple[FileVersion, ...]:
    """Return the version of each file, None for a missing one or for no path."""
    versions: list[FileVersion] = []
    for path in paths:
        try:
            status = os.stat(path) if path is not None else None
        except OSError:
            status = None
        versions.append(None if status is None else
                        (status.st_mtime_ns, status.st_ctime_ns, status.st_size, status.st_ino,
                         status.st_dev))
    return tuple(versions)


class CredentialFiles:
    """Watches the callers file and the TLS files, and swaps in what changed and is valid.

    The callers file replaces the authenticator's registry. The TLS files go to the
    server through grpc's certificate configuration fetcher, which the server calls
    before each new connection's handshake, so connections already open keep the
    certificate they started with.
    """

    def __init__(self, settings: Settings, authenticator: Authenticator,
                 tls: TlsFiles | None) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.tls = tls
        self._tls_paths = (settings.tls_cert, settings.tls_key, settings.tls_client_ca)
        self._callers_version = file_versions([settings.api_tokens_file])
        self._tls_version = file_versions(self._tls_paths)
        self._pending_tls: grpc.ServerCertificateConfiguration | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def server_credentials(self) -> grpc.ServerCredentials | None:
        """Return credentials whose certificate follows the TLS files, or None for plaintext."""
        if self.tls is None:
            return None
        # With a client CA every connection must present a certificate that it signed.
        return grpc.dynamic_ssl_server_credentials(
            self.tls.configuration(), self._next_tls_configuration,
            require_client_authentication=self.tls.client_ca is not None)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="credential-files", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()

    def check(self) -> None:
        """Reload each watched file that changed since the last check."""
        if self.settings.api_tokens_file is not None:
            version = file_versions([self.settings.api_tokens_file])
            if version != self._callers_version:
                self._callers_version = version
                self._reload_callers(self.settings.api_tokens_file)
        if self.tls is not None:
            version = file_versions(self._tls_paths)
            if version != self._tls_version:
                self._tls_version = version
                self._reload_tls()

    def _run(self) -> None:
        while not self._stopping.wait(RELOAD_INTERVAL_SECONDS):
            try:
                self.check()
            except Exception:
                logger.exception("checking the credential files failed; checking again in "
                                 "%.0f s", RELOAD_INTERVAL_SECONDS)

    def _reload_callers(self, path: Path) -> None:
        try:
            registry = load_callers(path)
        except ConfigError as error:
            logger.error("kept the previous callers: the changed callers file cannot be used "
                         "path=%s: %s", path, error)
            return
        if not self.authenticator.admits_anyone(self.settings, registry):
            logger.error("kept the previous callers: the changed callers file lets no caller "
                         "authenticate path=%s; list a principal with token_sha256 or, with "
                         "mutual TLS, client_certificate_names", path)
            return
        self.authenticator.registry = registry
        logger.info("reloaded callers path=%s token_principals=%d certificate_principals=%d",
                    path, len(set(registry.by_token_sha256.values())),
                    len(set(registry.by_certificate_name.values())))

    def _reload_tls(self) -> None:
        try:
            tls = read_tls_files(self.settings)
        except ConfigError as error:
            logger.error("kept the previous TLS certificate: the changed TLS files cannot be "
                         "used: %s", error)
            return
        if tls is None or tls == self.tls:
            return
        self.tls = tls
        self._pending_tls = tls.configuration()
        leaf = x509.load_pem_x509_certificate(tls.certificate_chain)
        logger.info("reloaded TLS certificate path=%s subject=%s not_after=%s; new connections "
                    "use it", self.settings.tls_cert, leaf.subject.rfc4514_string(),
                    leaf.not_valid_after_utc.isoformat())

    def _next_tls_configuration(self) -> grpc.ServerCertificateConfiguration | None:
        # grpc calls this before every handshake: None keeps the configuration in use.
        pending, self._pending_tls = self._pending_tls, None
        return pending
