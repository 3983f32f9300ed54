"""The checks the api applies to its TLS files at start-up and before a reload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa

from pki_factory import DAY, Issued, Pki, issue, now
from service.api.credential_files import file_versions, read_tls_files
from service.config import ConfigError, Settings


def _settings(tmp_path: Path, chain_pem: str, key_pem: str) -> Settings:
    certificate_file, key_file = tmp_path / "tls.pem", tmp_path / "tls-key.pem"
    certificate_file.write_text(chain_pem)
    key_file.write_text(key_pem)
    return Settings.from_env({"CERTSVC_TLS_CERT": str(certificate_file),
                              "CERTSVC_TLS_KEY": str(key_file)})


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.create("tls files")


def test_valid_chain_accepted(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.leaf(["localhost"])

    tls = read_tls_files(_settings(tmp_path, pki.chain_pem(leaf), leaf.key_pem()))

    assert tls is not None
    assert tls.certificate_chain.decode() == pki.chain_pem(leaf)
    assert tls.client_ca is None


@pytest.mark.parametrize(("validity", "message"), [
    ({"not_before": now() - 10 * DAY, "not_after": now() - DAY}, "expired at"),
    ({"not_before": now() + DAY, "not_after": now() + 10 * DAY}, "is valid only from"),
], ids=["expired", "not-yet-valid"])
def test_certificate_outside_validity_rejected(tmp_path: Path, pki: Pki, validity: dict,
                                               message: str) -> None:
    leaf = pki.leaf(["localhost"], **validity)

    with pytest.raises(ConfigError) as raised:
        read_tls_files(_settings(tmp_path, pki.chain_pem(leaf), leaf.key_pem()))

    assert message in str(raised.value)
    assert "CERTSVC_TLS_CERT" in str(raised.value)


def test_chain_out_of_order_rejected(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.leaf(["localhost"])
    reordered = leaf.pem() + pki.root.pem() + pki.intermediate.pem()

    with pytest.raises(ConfigError) as raised:
        read_tls_files(_settings(tmp_path, reordered, leaf.key_pem()))

    assert "did not issue certificate 1" in str(raised.value)


def test_mismatched_key_rejected(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.leaf(["localhost"])
    other = pki.leaf(["localhost"])

    with pytest.raises(ConfigError) as raised:
        read_tls_files(_settings(tmp_path, pki.chain_pem(leaf), other.key_pem()))

    assert "does not belong to the first certificate" in str(raised.value)


def test_dsa_key_rejected(tmp_path: Path) -> None:
    key = dsa.generate_private_key(key_size=2048)
    certificate = issue(subject_cn="localhost", signer=None, key=key, ca=False,
                        names=["localhost"], key_usage=None)

    with pytest.raises(ConfigError) as raised:
        read_tls_files(_settings(tmp_path, certificate.pem(), Issued(certificate.certificate,
                                                                     key).key_pem()))

    assert "use an RSA or ECDSA key" in str(raised.value)


def test_plaintext_without_files() -> None:
    assert read_tls_files(Settings.from_env({})) is None


def test_file_version_follows_chmod(tmp_path: Path) -> None:
    path = tmp_path / "callers.toml"
    path.write_text("# no principals\n")
    before = file_versions([path, None])

    os.chmod(path, 0o400)
    after = file_versions([path, None])

    assert before[1] is None
    assert before[0] is not None
    assert after[0] != before[0]
