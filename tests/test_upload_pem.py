"""Lenient PEM reading and private key loading, on inputs made at test time."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

from pki_factory import Pki
from service.validation.pem import MAX_FIELD_BYTES, read_pem_blocks
from service.validation.private_key import load_private_key
from service.validation.problems import CHAIN_FIELD, KEY_FIELD, PASSPHRASE_FIELD, Rank


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.create("pem")


@pytest.fixture(scope="module")
def leaf(pki: Pki):
    return pki.leaf(["shop.example.com"])


def as_received(data: bytes) -> str:
    """Return what a client that reads a file into a string field sends: UTF-8 with U+FFFD."""
    return data.decode("utf-8", errors="replace")


def _labels(text: str, field: str = CHAIN_FIELD) -> list[str]:
    reading = read_pem_blocks(text, field, "CERTIFICATE")
    assert reading.problems == []
    return [block.label for block in reading.blocks]


# Accepted forms: each transforms the PEM of a leaf and an intermediate.
LENIENT_FORMS: dict[str, Callable[[str], str]] = {
    "crlf": lambda pem: pem.replace("\n", "\r\n"),
    "cr only": lambda pem: pem.replace("\n", "\r"),
    "utf8 bom": lambda pem: "\ufeff" + pem,
    "bom per block": lambda pem: "\ufeff" + pem.replace("-----\n-----", "-----\n\ufeff-----"),
    "indented": lambda pem: "\n".join("    " + line for line in pem.splitlines()),
    "no final newline": lambda pem: pem.rstrip("\n"),
    "bag attributes": lambda pem: "Bag Attributes\n    localKeyID: 01 00 00 00\n"
                                  "subject=/CN=shop.example.com\n" + pem.replace(
                                      "-----END CERTIFICATE-----\n",
                                      "-----END CERTIFICATE-----\nissuer=/CN=Test\n\n"),
    "one line": lambda pem: pem.replace("\n", " "),
    "json escaped": lambda pem: pem.replace("\n", "\\n"),
    "zero width space": lambda pem: pem.replace("\n", "\u200b\n", 3),
}


@pytest.mark.parametrize("form", sorted(LENIENT_FORMS))
def test_lenient_form_reads_blocks(pki: Pki, leaf, form: str) -> None:
    text = LENIENT_FORMS[form](pki.chain_pem(leaf))

    reading = read_pem_blocks(text, CHAIN_FIELD, "CERTIFICATE")

    assert reading.problems == []
    assert [block.der for block in reading.blocks] == [leaf.der(), pki.intermediate.der()]
    assert [block.position for block in reading.blocks] == [1, 2]


def test_empty_field_reads_nothing() -> None:
    reading = read_pem_blocks("  \n", CHAIN_FIELD, "CERTIFICATE")

    assert reading.blocks == []
    assert reading.problems == []


# Rejected forms: each builds the field's text from the leaf and returns the words the
# message must contain.
def _utf16(encoding: str) -> Callable[[Pki, object], str]:
    return lambda pki, leaf: as_received(("\ufeff" + leaf.pem()).encode(encoding))


def _pkcs12(pki: Pki, leaf) -> str:
    return as_received(pkcs12.serialize_key_and_certificates(
        b"shop", leaf.key, leaf.certificate, [pki.intermediate.certificate],
        serialization.BestAvailableEncryption(b"secret")))


def _pkcs7_der(pki: Pki, leaf) -> str:
    return as_received(pkcs7.serialize_certificates([leaf.certificate],
                                                    serialization.Encoding.DER))


NOT_PEM: dict[str, tuple[Callable[[Pki, object], str], list[str]]] = {
    "utf16 little endian": (_utf16("utf-16-le"), ["UTF-16", "iconv"]),
    "utf16 big endian": (_utf16("utf-16-be"), ["UTF-16", "iconv"]),
    "der certificate": (lambda pki, leaf: as_received(leaf.der()),
                        ["binary", "DER-encoded certificate", "openssl x509 -inform DER"]),
    "pkcs12 file": (_pkcs12, ["binary", "PKCS#12", "openssl pkcs12"]),
    "der pkcs7 bundle": (_pkcs7_der, ["binary", "PKCS#7", "openssl pkcs7"]),
    "file name": (lambda pki, leaf: "C:\\certs\\shop.crt", ["file name"]),
    "bare base64": (lambda pki, leaf: "".join(leaf.pem().splitlines()[1:-1]),
                    ["base64", "BEGIN CERTIFICATE"]),
    "plain words": (lambda pki, leaf: "see attachment", ["no PEM block"]),
    "cut off": (lambda pki, leaf: leaf.pem()[:300], ["block 1", "no matching", "cut off"]),
    "damaged base64": (lambda pki, leaf: leaf.pem().replace("M", "*", 2), ["block 1", "base64"]),
}


@pytest.mark.parametrize("form", sorted(NOT_PEM))
def test_not_pem_rejected(pki: Pki, leaf, form: str) -> None:
    build, words = NOT_PEM[form]

    reading = read_pem_blocks(build(pki, leaf), CHAIN_FIELD, "CERTIFICATE")

    assert len(reading.problems) == 1
    problem = reading.problems[0]
    assert problem.field == CHAIN_FIELD
    assert problem.rank == Rank.INPUT
    for word in words:
        assert word in problem.message


def test_oversized_field_states_limit() -> None:
    text = "-----BEGIN CERTIFICATE-----\n" + "A" * MAX_FIELD_BYTES + "\n"

    reading = read_pem_blocks(text, CHAIN_FIELD, "CERTIFICATE")

    assert reading.blocks == []
    assert "256 KiB" in reading.problems[0].message


def test_oversized_key_advice_about_keys() -> None:
    text = "-----BEGIN PRIVATE KEY-----\n" + "A" * MAX_FIELD_BYTES + "\n"

    reading = read_pem_blocks(text, KEY_FIELD, "PRIVATE KEY")

    assert "Paste only the private key (a PEM private key is under 4 KiB)" in (
        reading.problems[0].message)


def test_der_key_named_in_key_field(leaf) -> None:
    der = leaf.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    reading = read_pem_blocks(as_received(der), KEY_FIELD, "PRIVATE KEY")

    assert reading.problems[0].field == KEY_FIELD
    assert "DER-encoded private key" in reading.problems[0].message
    assert "openssl pkey -inform DER" in reading.problems[0].message


# Private keys


def _key(text: str, passphrase: str = ""):
    reading = read_pem_blocks(text, KEY_FIELD, "PRIVATE KEY")
    assert reading.problems == []
    return load_private_key(reading.blocks, passphrase)


def _public(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize(("key_kind", "form"), [
    ("rsa2048", "pkcs8"), ("rsa2048", "pkcs1"), ("p256", "pkcs8"), ("p256", "sec1"),
    ("p384", "sec1"),
])
def test_key_encodings_load(pki: Pki, key_kind: str, form: str) -> None:
    leaf = pki.leaf(["shop.example.com"], key_kind=key_kind)

    loaded, problems = _key(leaf.key_pem(form))

    assert problems == []
    assert _public(loaded.key) == _public(leaf.key)
    assert loaded.warnings == []


def test_ec_parameters_block_ignored(pki: Pki) -> None:
    leaf = pki.leaf(["shop.example.com"], key_kind="p256")
    parameters = "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"

    loaded, problems = _key(parameters + leaf.key_pem("sec1"))

    assert problems == []
    assert _public(loaded.key) == _public(leaf.key)


def test_openssh_key_loads(pki: Pki) -> None:
    leaf = pki.leaf(["shop.example.com"], key_kind="p256")
    text = leaf.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                  serialization.NoEncryption()).decode()

    loaded, problems = _key(text)

    assert problems == []
    assert _public(loaded.key) == _public(leaf.key)


def test_mislabelled_key_loads(leaf) -> None:
    pkcs8 = leaf.key_pem("pkcs8")
    text = pkcs8.replace("BEGIN PRIVATE KEY", "BEGIN RSA PRIVATE KEY").replace(
        "END PRIVATE KEY", "END RSA PRIVATE KEY")

    loaded, problems = _key(text)

    assert problems == []
    assert _public(loaded.key) == _public(leaf.key)


@pytest.mark.parametrize("form", ["pkcs8", "pkcs1"])
def test_encrypted_key_with_passphrase(leaf, form: str) -> None:
    loaded, problems = _key(leaf.key_pem(form, passphrase=b"correct horse"), "correct horse")

    assert problems == []
    assert _public(loaded.key) == _public(leaf.key)
    assert any("decrypted" in warning for warning in loaded.warnings)


@pytest.mark.parametrize("form", ["pkcs8", "pkcs1"])
def test_encrypted_key_without_passphrase(leaf, form: str) -> None:
    loaded, problems = _key(leaf.key_pem(form, passphrase=b"correct horse"))

    assert loaded is None
    assert [problem.field for problem in problems] == [KEY_FIELD]
    assert "encrypted" in problems[0].message
    assert "passphrase" in problems[0].message
    assert "openssl pkey" in problems[0].message


def test_wrong_passphrase_names_passphrase(leaf) -> None:
    loaded, problems = _key(leaf.key_pem("pkcs8", passphrase=b"correct horse"), "battery staple")

    assert loaded is None
    assert [problem.field for problem in problems] == [PASSPHRASE_FIELD]
    assert "does not decrypt" in problems[0].message
    assert "battery staple" not in problems[0].message


def test_passphrase_for_plain_key_ignored(leaf) -> None:
    loaded, problems = _key(leaf.key_pem("pkcs8"), "unneeded")

    assert problems == []
    assert loaded.warnings == ["ignored the passphrase: the private key is not encrypted"]


@pytest.mark.parametrize(("label", "words"), [
    ("CERTIFICATE", ["is a certificate", "certificate_chain_pem"]),
    ("CERTIFICATE REQUEST", ["certificate signing request"]),
    ("PUBLIC KEY", ["public key", "private key"]),
])
def test_wrong_block_in_key_field(leaf, label: str, words: list[str]) -> None:
    body = "\n".join(leaf.pem().splitlines()[1:-1])
    text = f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"

    loaded, problems = _key(text)

    assert loaded is None
    assert [problem.field for problem in problems] == [KEY_FIELD]
    for word in words:
        assert word in problems[0].message


def test_two_keys_rejected(pki: Pki, leaf) -> None:
    other = pki.leaf(["shop.example.com"])

    loaded, problems = _key(leaf.key_pem() + other.key_pem())

    assert loaded is None
    assert "2 private keys" in problems[0].message


def test_damaged_key_hides_content(leaf) -> None:
    lines = leaf.key_pem().splitlines()
    lines[3] = lines[3][::-1]
    text = "\n".join(lines)

    loaded, problems = _key(text)

    assert loaded is None
    assert problems[0].field == KEY_FIELD
    assert "cannot be read" in problems[0].message
    for line in lines[1:-1]:
        assert line not in problems[0].message


def _encrypted_openssh_key() -> str:
    from pki_factory import make_key

    return make_key("p256").private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"fixture-passphrase")).decode()


def test_encrypted_openssh_key_decrypts() -> None:
    blocks = read_pem_blocks(_encrypted_openssh_key(), KEY_FIELD, "PRIVATE KEY").blocks

    loaded, problems = load_private_key(blocks, "fixture-passphrase")

    assert problems == []
    assert loaded is not None


def test_encrypted_openssh_wrong_passphrase() -> None:
    blocks = read_pem_blocks(_encrypted_openssh_key(), KEY_FIELD, "PRIVATE KEY").blocks

    loaded, problems = load_private_key(blocks, "wrong")

    assert loaded is None
    assert [problem.field for problem in problems] == [PASSPHRASE_FIELD]
    assert "ssh-keygen" in problems[0].message
    assert "openssl pkey" not in problems[0].message


def test_passphrase_line_break_removed() -> None:
    from pki_factory import make_key

    key_pem = make_key("p256").private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"fixture-passphrase")).decode()
    blocks = read_pem_blocks(key_pem, KEY_FIELD, "PRIVATE KEY").blocks

    loaded, problems = load_private_key(blocks, "fixture-passphrase\n")

    assert problems == []
    assert loaded is not None
    assert any("line break" in warning for warning in loaded.warnings)


def test_same_key_twice_accepted() -> None:
    from pki_factory import make_key

    key_pem = make_key("p256").private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    blocks = read_pem_blocks(key_pem + key_pem, KEY_FIELD, "PRIVATE KEY").blocks

    loaded, problems = load_private_key(blocks, "")

    assert problems == []
    assert loaded is not None
    assert any("second copy" in warning for warning in loaded.warnings)
