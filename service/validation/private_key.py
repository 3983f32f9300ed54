"""Reading the private key of an upload in any common encoding.

Accepted: PKCS#8 ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY"), SEC1 ("EC PRIVATE
KEY", with or without an "EC PARAMETERS" block), OpenSSH keys, and encrypted forms
of these when the request carries the passphrase. Messages never contain key
material or the passphrase. Pure functions without I/O.
"""

from __future__ import annotations

import dataclasses

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from service.validation.pem import PemBlock
from service.validation.problems import KEY_FIELD, PASSPHRASE_FIELD, Problem, Rank

PRIVATE_KEY_LABELS = frozenset({"PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY",
                                "ENCRYPTED PRIVATE KEY", "DSA PRIVATE KEY",
                                "OPENSSH PRIVATE KEY"})
CERTIFICATE_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"})
PKCS7_LABELS = frozenset({"PKCS7", "PKCS #7 SIGNED DATA", "CMS"})
REQUEST_LABELS = frozenset({"CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"})
PUBLIC_KEY_LABELS = frozenset({"PUBLIC KEY", "RSA PUBLIC KEY"})
# Blocks that key files carry beside the key and that add nothing to it.
IGNORED_KEY_FILE_LABELS = frozenset({"EC PARAMETERS"})

_DECRYPT_HINT = ("or remove the passphrase with `openssl pkey -in encrypted.key -out plain.key` "
                 "(it asks for the passphrase) and upload plain.key")
# OpenSSL cannot read OpenSSH's key format, but ssh-keygen can rewrite it as PKCS#8.
_OPENSSH_DECRYPT_HINT = ("or remove the passphrase with `ssh-keygen -p -N '' -m PKCS8 -f "
                         "encrypted.key` (it asks for the old passphrase and rewrites the file)")


def _decrypt_hint(block: PemBlock) -> str:
    return _OPENSSH_DECRYPT_HINT if block.label == "OPENSSH PRIVATE KEY" else _DECRYPT_HINT


@dataclasses.dataclass(frozen=True)
class LoadedKey:
    key: PrivateKeyTypes
    warnings: list[str]


def load_private_key(blocks: list[PemBlock], passphrase: str) -> tuple[LoadedKey | None,
                                                                         list[Problem]]:
    """Return the one private key of the key field, or the problems that prevent reading it."""
    problems = [problem for block in blocks for problem in _misplaced_block_problems(block)]
    key_blocks = [block for block in blocks if block.label in PRIVATE_KEY_LABELS]
    # The same key pasted twice has one meaning.
    distinct = list({block.der: block for block in key_blocks}.values())
    repeated = len(key_blocks) - len(distinct)
    key_blocks = distinct
    if len(key_blocks) > 1:
        problems.append(Problem(KEY_FIELD, Rank.INPUT, (
            f"{KEY_FIELD} contains {len(key_blocks)} private keys (blocks "
            f"{', '.join(str(block.position) for block in key_blocks)}); paste only the key "
            "of the certificate you upload")))
    if not key_blocks and not problems:
        problems.append(Problem(KEY_FIELD, Rank.INPUT, (
            f"{KEY_FIELD} contains no private key: paste the key file of the certificate, the "
            "text starting with '-----BEGIN PRIVATE KEY-----' (or RSA PRIVATE KEY, "
            "EC PRIVATE KEY)")))
    if problems:
        return None, problems
    loaded, problems = _decode_key(key_blocks[0], passphrase)
    stripped = passphrase.strip("\r\n")
    if loaded is None and stripped != passphrase and stripped:
        # A passphrase copied from a file often brings its line break along.
        retried, _ = _decode_key(key_blocks[0], stripped)
        if retried is not None:
            loaded, problems = LoadedKey(retried.key, [
                *retried.warnings, "removed a line break at the end of the passphrase"]), []
    if loaded is not None and repeated:
        loaded = LoadedKey(loaded.key, [*loaded.warnings,
                                        "removed a second copy of the same private key"])
    return loaded, problems


def _misplaced_block_problems(block: PemBlock) -> list[Problem]:
    label = block.label
    where = f"{KEY_FIELD}: block {block.position} (BEGIN {label})"
    if label in PRIVATE_KEY_LABELS or label in IGNORED_KEY_FILE_LABELS:
        return []
    if label in CERTIFICATE_LABELS or label in PKCS7_LABELS:
        message = (f"{where} is a certificate, not a private key. Paste certificates into "
                   f"certificate_chain_pem and only the private key here")
    elif label in REQUEST_LABELS:
        message = (f"{where} is a certificate signing request, not a private key; the private "
                   "key is the file that was generated together with this request")
    elif label in PUBLIC_KEY_LABELS:
        message = (f"{where} is a public key; the server needs the private key, the file "
                   "starting with '-----BEGIN PRIVATE KEY-----'")
    else:
        message = (f"{where} is not a private key; {KEY_FIELD} takes one key starting with "
                   "'-----BEGIN PRIVATE KEY-----' (or RSA PRIVATE KEY, EC PRIVATE KEY)")
    return [Problem(KEY_FIELD, Rank.INPUT, message)]


def is_encrypted(block: PemBlock) -> bool:
    """Return whether a key block is encrypted: PKCS#8 or the legacy OpenSSL form.

    An encrypted OpenSSH key is only recognised when loading it.
    """
    return block.label == "ENCRYPTED PRIVATE KEY" or "ENCRYPTED" in block.header("Proc-Type")


def _decode_key(block: PemBlock, passphrase: str) -> tuple[LoadedKey | None, list[Problem]]:
    encrypted = is_encrypted(block)
    if encrypted and not passphrase:
        return None, [_encrypted_problem(block)]
    password = passphrase.encode("utf-8") if passphrase else None
    warnings: list[str] = []
    try:
        key = _load(block, password)
    except TypeError:
        if password is None:  # an OpenSSH key that turned out to be encrypted
            return None, [_encrypted_problem(block)]
        # The key is not encrypted, so the passphrase has no meaning and ignoring it
        # loses nothing.
        try:
            key = _load(block, None)
        except ValueError:
            return None, [_damaged_problem(block)]
        warnings.append("ignored the passphrase: the private key is not encrypted")
    except ValueError:
        if encrypted or (password is not None and block.label == "OPENSSH PRIVATE KEY"):
            return None, [Problem(PASSPHRASE_FIELD, Rank.KEY_READ, (
                f"the passphrase does not decrypt the private key (block {block.position}, "
                f"BEGIN {block.label}); check it for typing errors, {_decrypt_hint(block)}"))]
        return None, [_damaged_problem(block)]
    except UnsupportedAlgorithm:
        return None, [Problem(KEY_FIELD, Rank.KEY_READ, (
            f"{KEY_FIELD}: block {block.position} (BEGIN {block.label}) uses a key type or "
            "an encryption algorithm this service cannot read; convert it to an unencrypted "
            "PKCS#8 key with `openssl pkey -in key.pem -out key-pkcs8.pem`"))]
    if encrypted:
        warnings.append("decrypted the private key with the passphrase; it is stored "
                        "encrypted under the service's master key")
    return LoadedKey(key, warnings), []


def _load(block: PemBlock, password: bytes | None) -> PrivateKeyTypes:
    """Load a key block, falling back to the DER when the label does not match the content."""
    if block.label == "OPENSSH PRIVATE KEY":
        return serialization.load_ssh_private_key(block.to_pem(), password)
    try:
        return serialization.load_pem_private_key(block.to_pem(), password)
    except ValueError:
        if is_encrypted(block) and block.label != "ENCRYPTED PRIVATE KEY":
            raise  # legacy encryption lives in the PEM headers, so DER cannot help
        # load_der_private_key recognises PKCS#8, PKCS#1 and SEC1 by content, which
        # rescues keys whose BEGIN line names the wrong format.
        return serialization.load_der_private_key(block.der, password)


def _damaged_problem(block: PemBlock) -> Problem:
    return Problem(KEY_FIELD, Rank.KEY_READ, (
        f"{KEY_FIELD}: block {block.position} (BEGIN {block.label}) cannot be read as a "
        "private key: the data is damaged or in an unsupported format. Export the key "
        "again, for example with `openssl pkey -in key.pem -out key-pkcs8.pem`"))


def _encrypted_problem(block: PemBlock) -> Problem:
    return Problem(KEY_FIELD, Rank.KEY_READ, (
        f"the private key (block {block.position}, BEGIN {block.label}) is encrypted with a "
        f"passphrase; send the passphrase in the passphrase field, {_decrypt_hint(block)}"))
