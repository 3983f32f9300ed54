"""The api's credential files, re-read while it runs: the callers file and the TLS files.

Operators rotate the api's TLS certificate and edit the callers file without a
restart. A thread compares the files' metadata every RELOAD_INTERVAL_SECONDS. A
changed file is read and validated before it replaces the one in use, so a file that
does not parse or fails a check leaves the previous credentials in force, with an
error in the log. Such a file is read again at every check until it passes, so a
certificate that becomes valid later, or a file whose permissions are fixed, is
picked up without another change.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc

from service.api.auth import Authenticator
from service.api.principals import load_callers
from service.api.tls_files import TlsFiles, read_tls_files
from service.config import ConfigError, Settings

logger = logging.getLogger(__name__)

RELOAD_INTERVAL_SECONDS = 2.0
# How long stop() waits for a check that hangs on a file read, for example on a stalled
# network file system. The thread is a daemon, so it does not keep the process alive.
STOP_TIMEOUT_SECONDS = 5.0

# A file's version: its modification and change times, size, inode and device. A file
# replaced by rename or by a symlink swap, as Kubernetes does for mounted secrets, gets a
# new inode, and chmod or chown changes only the change time.
FileVersion = tuple[int, int, int, int, int] | None


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


class _WatchedFiles:
    """The versions of a group of files: the one applied, and the one that last failed."""

    def __init__(self, paths: Sequence[Path | None]) -> None:
        self.paths = paths
        self.applied = file_versions(paths)
        self.failed: tuple[FileVersion, ...] | None = None


class CredentialFiles:
    """Watches the callers file and the TLS files, and swaps in what changed and is valid.

    The callers file replaces the authenticator's registry. The TLS files go to the
    server through grpc's certificate configuration fetcher, which the server calls
    before each new connection's handshake, so connections already open keep the
    certificate they started with.
    """

    def __init__(self, settings: Settings, authenticator: Authenticator,
                 tls: TlsFiles | None, callers: _WatchedFiles, tls_watch: _WatchedFiles) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.tls = tls
        self._callers = callers
        self._tls_watch = tls_watch
        self._pending_tls: grpc.ServerCertificateConfiguration | None = None
        self._pending_lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def load(cls, settings: Settings) -> CredentialFiles:
        """Read the callers and TLS files, raising ConfigError when they cannot be used."""
        # The versions come first: a file replaced while it is read is then read again.
        callers = _WatchedFiles([settings.api_tokens_file])
        tls_watch = _WatchedFiles([settings.tls_cert, settings.tls_key, settings.tls_client_ca])
        authenticator = Authenticator(settings)
        authenticator.check_usable(settings)
        return cls(settings, authenticator, read_tls_files(settings), callers, tls_watch)

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
            self._thread.join(timeout=STOP_TIMEOUT_SECONDS)

    def check(self) -> None:
        """Reload each watched file that changed since it was last applied."""
        if self.settings.api_tokens_file is not None:
            self._check(self._callers, self._reload_callers)
        if self.tls is not None:
            self._check(self._tls_watch, self._reload_tls)

    def _check(self, watched: _WatchedFiles, reload: Callable[[], None]) -> None:
        version = file_versions(watched.paths)
        if version == watched.applied:
            return
        try:
            reload()
        except ConfigError as error:
            # Logged once per version of the files, though it is retried at every check.
            if version != watched.failed:
                logger.error("%s", error)
            watched.failed = version
            return
        watched.applied = version
        watched.failed = None

    def _run(self) -> None:
        while not self._stopping.wait(RELOAD_INTERVAL_SECONDS):
            try:
                self.check()
            except Exception:
                logger.exception("checking the credential files failed; checking again in "
                                 "%.0f s", RELOAD_INTERVAL_SECONDS)

    def _reload_callers(self) -> None:
        path = self.settings.api_tokens_file
        try:
            registry = load_callers(path)
        except ConfigError as error:
            raise ConfigError(f"kept the previous callers: the changed callers file cannot be "
                              f"used path={path}: {error}") from None
        if not self.authenticator.admits_anyone(self.settings, registry):
            raise ConfigError(f"kept the previous callers: the changed callers file lets no "
                              f"caller authenticate path={path}; list a principal with "
                              "token_sha256 or, with mutual TLS, client_certificate_names")
        self.authenticator.registry = registry
        for warning in registry.warnings:
            logger.warning("%s", warning)
        logger.info("reloaded callers path=%s token_principals=%d certificate_principals=%d",
                    path, len(set(registry.by_token_sha256.values())),
                    len(set(registry.by_certificate_name.values())))

    def _reload_tls(self) -> None:
        try:
            tls = read_tls_files(self.settings)
        except ConfigError as error:
            raise ConfigError(f"kept the previous TLS certificate: the changed TLS files cannot "
                              f"be used: {error}") from None
        if tls is None or tls == self.tls:
            return
        with self._pending_lock:
            self.tls = tls
            self._pending_tls = tls.configuration()
        leaf = tls.leaf()
        logger.info("reloaded TLS certificate path=%s subject=%s not_after=%s; grpc uses it "
                    "from the next handshake", self.settings.tls_cert,
                    leaf.subject.rfc4514_string(), leaf.not_valid_after_utc.isoformat())

    def _next_tls_configuration(self) -> grpc.ServerCertificateConfiguration | None:
        # grpc calls this before every handshake: None keeps the configuration in use.
        with self._pending_lock:
            pending, self._pending_tls = self._pending_tls, None
        return pending
