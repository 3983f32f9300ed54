"""The log scan that ends every test run finds what it looks for.

Planted secrets go into *.txt files: the scan at the end of the run reads every
*.log file under the run's temporary folder, and these must not trip it.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import leak_scan


def _key_der() -> bytes:
    return ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def test_finds_watched_secret(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "api.txt"
    log.parent.mkdir()
    log.write_text("INFO call with token s3cr3t-token-0123456789abcdef\n")

    leaks = leak_scan.find_leaks([log], {"a test token": "s3cr3t-token-0123456789abcdef"})

    assert leaks == [f"{log}: a test token"]


def test_finds_pem_private_key(tmp_path: Path) -> None:
    log = tmp_path / "worker.txt"
    log.write_text("DEBUG -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIAbcdefghijklmnop\n")

    assert leak_scan.find_leaks([log], {}) == [f"{log}: a PEM private key block"]


def test_block_type_in_words_passes(tmp_path: Path) -> None:
    log = tmp_path / "api.txt"
    log.write_text("INFO the private key (block 1, BEGIN ENCRYPTED PRIVATE KEY) is encrypted\n"
                   "INFO paste the text starting with '-----BEGIN PRIVATE KEY-----'\n")

    assert leak_scan.find_leaks([log], {}) == []


def test_finds_key_without_pem_header(tmp_path: Path) -> None:
    key_der = _key_der()
    secrets = leak_scan.secret_parts("key", key_der)
    pem_body = serialization.load_der_private_key(key_der, None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode().splitlines()[1:-1]
    log = tmp_path / "api.txt"
    log.write_text("DEBUG key body:\n" + "\n".join(pem_body) + "\n")

    leaks = leak_scan.find_leaks([log], secrets)

    assert leaks == [f"{log}: key (PEM body)"]


def test_clean_log_passes(tmp_path: Path) -> None:
    log = tmp_path / "api.txt"
    log.write_text("INFO added domain hostname=shop.example.com app_id=app-1\n")

    assert leak_scan.find_leaks([log], {"a token": "s3cr3t-token-0123456789abcdef"}) == []


def test_pebble_logs_left_out(tmp_path: Path) -> None:
    for relative in ("logs0/api.log", "pebble0/pebble.log", "logs0/nested/worker.log"):
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")

    files = [path.relative_to(tmp_path).as_posix() for path in leak_scan.log_files(tmp_path)]

    assert files == ["logs0/api.log", "logs0/nested/worker.log"]
