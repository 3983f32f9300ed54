"""Validation of an uploaded certificate chain and private key: lenient reading, strict checks.

validate_upload runs every check it can and raises UploadRejected with all the
problems it found, most important first, so that one response tells the customer
everything to fix. Pure functions without I/O: the trust anchors and the time are
arguments.
"""

from __future__ import annotations

import dataclasses
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.certificate_details import PrivateKey
from service.validation import chain_rules
from service.validation.chain import (
    CertificatePath,
    UploadedCertificate,
    build_path,
    choose_leaf,
    path_warnings,
    read_certificates,
    remove_duplicates,
)
from service.validation.pem import read_pem_blocks
from service.validation.private_key import LoadedKey, load_private_key
from service.validation.problems import (
    CHAIN_FIELD,
    KEY_FIELD,
    PASSPHRASE_FIELD,
    Problem,
    Rank,
    UploadRejected,
)
from service.validation.trust_anchors import TrustAnchors

MAX_PASSPHRASE_LENGTH = 1024


@dataclasses.dataclass(frozen=True)
class ValidatedUpload:
    """An upload that passed every check, normalised for storage."""

    chain: list[x509.Certificate]
    """Leaf first, then intermediates in signing order; no root, no duplicates."""
    private_key: PrivateKey
    warnings: list[str]
    """Each change made to the input, in words."""


def validate_upload(hostname: str, chain_pem: str, key_pem: str, passphrase: str,
                    anchors: TrustAnchors, now: datetime.datetime) -> ValidatedUpload:
    """Check an upload for a normal-form hostname; raise UploadRejected listing every problem."""
    problems: list[Problem] = []
    warnings: list[str] = []

    problems_before_chain = len(problems)
    uploaded = _read_chain(chain_pem, problems, warnings)
    # With a block of the chain unreadable, the checks below would judge an incomplete
    # chain (an intermediate taken for the leaf) and add problems that are not there.
    chain_unreadable = len(problems) > problems_before_chain
    loaded_key = _read_key(key_pem, passphrase, problems)
    if loaded_key is not None:
        warnings += loaded_key.warnings

    path: CertificatePath | None = None
    if uploaded and not chain_unreadable:
        unique, duplicate_warnings = remove_duplicates(uploaded)
        warnings += duplicate_warnings
        path = _check_chain(hostname, unique, loaded_key, anchors, now, problems)
        warnings += path_warnings(path, unique)

    if problems or path is None or loaded_key is None:
        raise UploadRejected(problems)
    private_key = loaded_key.key
    if not isinstance(private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        # key_rejection has already rejected such a leaf; this keeps the types honest.
        raise UploadRejected([Problem(KEY_FIELD, Rank.KEY_STRENGTH,
                                      "only RSA and ECDSA private keys are supported")])
    return ValidatedUpload([item.certificate for item in path.certificates], private_key,
                           warnings)


def _read_chain(chain_pem: str, problems: list[Problem],
                warnings: list[str]) -> list[UploadedCertificate]:
    if not chain_pem.strip():
        problems.append(Problem(CHAIN_FIELD, Rank.INPUT, (
            f"{CHAIN_FIELD} is empty: paste the certificate chain, the server certificate "
            "first and then the intermediates, each starting with "
            "'-----BEGIN CERTIFICATE-----'")))
        return []
    reading = read_pem_blocks(chain_pem, CHAIN_FIELD, "CERTIFICATE")
    problems += reading.problems
    uploaded, read_problems, read_warnings = read_certificates(reading.blocks)
    problems += read_problems
    warnings += read_warnings
    if not uploaded and not problems:
        problems.append(Problem(CHAIN_FIELD, Rank.INPUT, (
            f"{CHAIN_FIELD} contains no certificate; paste the text starting with "
            "'-----BEGIN CERTIFICATE-----'")))
    return uploaded


def _read_key(key_pem: str, passphrase: str, problems: list[Problem]) -> LoadedKey | None:
    if len(passphrase) > MAX_PASSPHRASE_LENGTH:
        problems.append(Problem(PASSPHRASE_FIELD, Rank.INPUT, (
            f"the passphrase is {len(passphrase)} characters long; the limit is "
            f"{MAX_PASSPHRASE_LENGTH}")))
        return None
    if not key_pem.strip():
        problems.append(Problem(KEY_FIELD, Rank.INPUT, (
            f"{KEY_FIELD} is empty: paste the private key of the certificate, the text "
            "starting with '-----BEGIN PRIVATE KEY-----'")))
        return None
    reading = read_pem_blocks(key_pem, KEY_FIELD, "PRIVATE KEY")
    problems += reading.problems
    if reading.problems:
        return None
    loaded_key, key_problems = load_private_key(reading.blocks, passphrase)
    problems += key_problems
    return loaded_key


def _check_chain(hostname: str, uploaded: list[UploadedCertificate], loaded_key: LoadedKey | None,
                 anchors: TrustAnchors, now: datetime.datetime,
                 problems: list[Problem]) -> CertificatePath:
    """Choose the leaf, build its path and add every problem of names, dates, key and trust."""
    key_spki = None
    if loaded_key is not None:
        key_spki = loaded_key.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    leaf, key_matches = choose_leaf(uploaded, key_spki)
    if loaded_key is not None and not key_matches:
        others = " or any other uploaded certificate" if len(uploaded) > 1 else ""
        problems.append(Problem(KEY_FIELD, Rank.KEY_MATCH, (
            f"the private key does not match the certificate {leaf.subject}{others}: they are "
            "not a key pair. Upload the key that was generated with this certificate's signing "
            "request; to compare, the outputs of `openssl x509 -noout -pubkey -in cert.pem | "
            "openssl sha256` and `openssl pkey -pubout -in key.pem | openssl sha256` must be "
            "equal")))

    problems += chain_rules.name_problems(leaf, hostname)
    problems += chain_rules.leaf_problems(leaf, now)
    path = build_path(leaf, uploaded, anchors)
    problems += chain_rules.trust_problems(path, hostname)
    problems += chain_rules.issuer_problems(path, now)

    # The verifier repeats what the checks above found; it speaks only when they did not.
    explained = any(problem.rank in (Rank.NAMES, Rank.VALIDITY, Rank.LEAF_USAGE, Rank.TRUST,
                                     Rank.PATH_RULES) for problem in problems)
    if not explained:
        failure = chain_rules.verifier_failure(path, hostname, anchors, now)
        if failure:
            problems.append(failure)
    return path
