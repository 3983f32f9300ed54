"""The checks the api applies to its TLS files at start-up and before a reload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from pki_factory import DAY, Issued, Pki, issue, now
from service.api.credential_files import file_versions
from service.api.tls_files import read_tls_files
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

    assert "DSAPrivateKey; use an RSA key" in str(raised.value)


@pytest.mark.parametrize(("key", "message"), [
    (lambda: ec.generate_private_key(ec.SECP256K1()), "an EC key on secp256k1"),
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024),
     "an RSA key of 1024 bits"),
], ids=["secp256k1", "rsa-1024"])
def test_key_grpc_cannot_use_rejected(tmp_path: Path, pki: Pki, key, message: str) -> None:
    leaf = issue(subject_cn="localhost", signer=pki.intermediate, key=key(), ca=False,
                 names=["localhost"])

    with pytest.raises(ConfigError) as raised:
        read_tls_files(_settings(tmp_path, pki.chain_pem(leaf), leaf.key_pem()))

    assert message in str(raised.value)
    assert "P-256 or P-384" in str(raised.value)


def test_truncated_chain_rejected(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.leaf(["localhost"])
    chain = pki.chain_pem(leaf)
    cut = chain[:len(leaf.pem()) + len(pki.intermediate.pem()) // 2]

    with pytest.raises(ConfigError) as raised:
        read_tls_files(_settings(tmp_path, cut, leaf.key_pem()))

    assert "contains an incomplete certificate" in str(raised.value)


def test_private_key_left_out_of_repr(tmp_path: Path, pki: Pki) -> None:
    leaf = pki.leaf(["localhost"])

    tls = read_tls_files(_settings(tmp_path, pki.chain_pem(leaf), leaf.key_pem()))

    assert "PRIVATE KEY" not in repr(tls)


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
