"""The credential file watcher in process: what a check applies, keeps and logs."""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path

import pytest

import leak_scan
from conftest import replace_file
from devtools.credentials import new_token, write_callers_file
from pki_factory import DAY, Pki, now
from service.api.credential_files import CredentialFiles
from service.api.principals import load_callers, token_sha256
from service.config import Settings


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    token = new_token()
    leak_scan.watch("token of the credential file tests", token)
    pki = Pki.create("credential files")
    leaf = pki.leaf(["localhost"])
    paths = {"callers": tmp_path / "callers.toml", "cert": tmp_path / "tls.pem",
             "key": tmp_path / "tls-key.pem"}
    write_callers_file(paths["callers"], [{"name": "one", "apps": "*", "tokens": [token]}])
    replace_file(paths["cert"], pki.chain_pem(leaf).encode())
    replace_file(paths["key"], leaf.key_pem().encode())
    return paths


def _load(files: dict[str, Path]) -> CredentialFiles:
    return CredentialFiles.load(Settings.from_env({
        "CERTSVC_API_TOKENS_FILE": str(files["callers"]), "CERTSVC_TLS_CERT": str(files["cert"]),
        "CERTSVC_TLS_KEY": str(files["key"])}))


def test_certificate_applied_once_valid(files: dict[str, Path], caplog) -> None:
    caplog.set_level(logging.INFO, logger="service.api.credential_files")
    watcher = _load(files)
    initial = watcher.tls
    pki = Pki.create("credential files later")
    # X.509 times have whole seconds, so the certificate becomes valid within 2 to 3 s.
    later = pki.leaf(["localhost"], not_before=now() + datetime.timedelta(seconds=2),
                     not_after=now() + DAY)
    replace_file(files["cert"], pki.chain_pem(later).encode())
    replace_file(files["key"], later.key_pem().encode())

    watcher.check()
    after_failure = watcher.tls
    watcher.check()
    deadline = time.monotonic() + 10
    while watcher.tls == initial and time.monotonic() < deadline:
        time.sleep(0.5)
        watcher.check()
    handed_over = watcher._next_tls_configuration()

    failures = [record for record in caplog.records
                if "kept the previous TLS certificate" in record.getMessage()]
    assert after_failure == initial
    assert len(failures) == 1
    assert "is valid only from" in failures[0].getMessage()
    assert watcher.tls != initial
    assert watcher.tls.leaf().serial_number == later.certificate.serial_number
    assert handed_over is not None
    assert watcher._next_tls_configuration() is None


def test_callers_applied_after_failed_version(files: dict[str, Path]) -> None:
    watcher = _load(files)
    token = new_token()
    leak_scan.watch("second token of the credential file tests", token)
    replace_file(files["callers"], b"[[principal]\n")

    watcher.check()
    after_invalid = watcher.authenticator.registry
    write_callers_file(files["callers"], [{"name": "two", "apps": "*", "tokens": [token]}])
    watcher.check()

    assert token_sha256(token) not in after_invalid.by_token_sha256
    assert token_sha256(token) in watcher.authenticator.registry.by_token_sha256


def test_principal_without_credentials_disabled(tmp_path: Path) -> None:
    token = new_token()
    leak_scan.watch("token of the disabled principal test", token)
    path = tmp_path / "callers.toml"
    write_callers_file(path, [{"name": "kept", "apps": "*", "tokens": [token]},
                              {"name": "revoked", "apps": "*"}])

    registry = load_callers(path)

    assert {caller.name for caller in registry.by_token_sha256.values()} == {"kept"}
    assert len(registry.warnings) == 1
    assert "principal 2 (revoked)" in registry.warnings[0]
    assert "nobody can call as it" in registry.warnings[0]


def test_failing_callers_file_logged_once(files: dict[str, Path], caplog) -> None:
    watcher = _load(files)
    caplog.set_level(logging.INFO)
    write_callers_file(files["callers"], [{"name": "revoked", "apps": "*"}])

    for _ in range(3):
        watcher.check()

    messages = [record.getMessage() for record in caplog.records]
    assert sum("kept the previous callers" in message for message in messages) == 1
    assert not any("nobody can call as it" in message for message in messages)
