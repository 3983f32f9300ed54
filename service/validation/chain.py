"""Reading the certificates of an upload and building the path from its leaf to a trusted root.

The upload may list its certificates in any order, repeat them, include the root or
certificates that belong to no path. The path starts at the leaf that matches the
private key and follows each certificate's issuer, by name and signature, through the
uploaded certificates to a root of the trust store. Pure functions without I/O.
"""

from __future__ import annotations

import dataclasses
import enum

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from service.text import escape_control_characters
from service.validation.pem import PemBlock
from service.validation.private_key import (
    CERTIFICATE_LABELS,
    IGNORED_KEY_FILE_LABELS,
    PKCS7_LABELS,
    PRIVATE_KEY_LABELS,
    PUBLIC_KEY_LABELS,
    REQUEST_LABELS,
)
from service.validation.problems import CHAIN_FIELD, Problem, Rank
from service.validation.trust_anchors import TrustAnchors, public_key_der

# Longest path searched, trust anchor included; real web PKI paths have 3 or 4.
MAX_PATH_LENGTH = 8
# Issuer candidates tried per upload. Certificates that share a name and a key can
# verify each other in any order, so an unbounded search could take exponential time.
MAX_CANDIDATES_TRIED = 200


@dataclasses.dataclass(frozen=True)
class UploadedCertificate:
    """A certificate of the upload and where it appeared."""

    certificate: x509.Certificate
    position: int
    """1-based position of its block in certificate_chain_pem."""

    @property
    def subject(self) -> str:
        return describe_subject(self.certificate)


def describe_subject(certificate: x509.Certificate) -> str:
    """Return the subject in RFC 4514 form, quoted, for messages."""
    return describe_name(certificate.subject)


def describe_name(name: x509.Name) -> str:
    """Return a name in RFC 4514 form, quoted, with control characters escaped, for
    messages: the name comes from the uploader and the message reaches terminals."""
    return f'"{escape_control_characters(name.rfc4514_string()) or "(empty subject)"}"'


def basic_constraints(certificate: x509.Certificate) -> x509.BasicConstraints | None:
    """Return the basicConstraints extension's value, or None when absent or malformed."""
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def is_ca(certificate: x509.Certificate) -> bool:
    constraints = basic_constraints(certificate)
    return constraints is not None and constraints.ca


def weak_signature_hash(certificate: x509.Certificate) -> str:
    """Return "SHA-1" or "MD5" for a certificate signed with that hash, else ""."""
    try:
        algorithm = certificate.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return ""
    if isinstance(algorithm, hashes.SHA1):
        return "SHA-1"
    if isinstance(algorithm, hashes.MD5):
        return "MD5"
    return ""


def signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Return whether parent's name is child's issuer and parent's key verifies child.

    cryptography no longer verifies SHA-1 and MD5 signatures, so for those the names
    alone link the two. Such a certificate is rejected anyway (chain_rules reports its
    hash), and the link lets the rest of the path be diagnosed.
    """
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return bool(weak_signature_hash(child)) and child.issuer == parent.subject
    return True


def is_self_signed(certificate: x509.Certificate) -> bool:
    return certificate.issuer == certificate.subject and signed_by(certificate, certificate)


# Reading


def read_certificates(blocks: list[PemBlock]) -> tuple[list[UploadedCertificate],
                                                       list[Problem], list[str]]:
    """Parse the certificate blocks of the chain field; return certificates, problems, warnings.

    PKCS#7 bundles ("BEGIN PKCS7", or a CERTIFICATE block that holds one) are unpacked
    with a warning. Blocks of other kinds are problems with a message per kind.
    """
    uploaded: list[UploadedCertificate] = []
    problems: list[Problem] = []
    warnings: list[str] = []
    for block in blocks:
        where = f"{CHAIN_FIELD}: block {block.position} (BEGIN {block.label})"
        if block.label in CERTIFICATE_LABELS:
            try:
                certificate = x509.load_der_x509_certificate(_first_der_element(block.der))
            except ValueError:
                bundle = _pkcs7_certificates(block.der)
                if not bundle:
                    problems.append(Problem(CHAIN_FIELD, Rank.INPUT, (
                        f"{where} cannot be parsed as an X.509 certificate: its content is "
                        "damaged or cut short (often a line lost in copying); copy it again "
                        "from the file your CA sent")))
                    continue
                uploaded += _unpack_bundle(bundle, block, warnings)
                continue
            uploaded.append(UploadedCertificate(certificate, block.position))
        elif block.label in PKCS7_LABELS:
            bundle = _pkcs7_certificates(block.der)
            if not bundle:
                problems.append(Problem(CHAIN_FIELD, Rank.INPUT, (
                    f"{where} is a PKCS#7 bundle without readable certificates; export the "
                    "certificates as PEM with `openssl pkcs7 -in bundle.p7b -print_certs "
                    "-out chain.pem`")))
                continue
            uploaded += _unpack_bundle(bundle, block, warnings)
        elif block.label in IGNORED_KEY_FILE_LABELS:
            continue
        else:
            problems.append(Problem(CHAIN_FIELD, Rank.INPUT, _misplaced_block_message(where,
                                                                                   block.label)))
    return uploaded, problems, warnings


def _misplaced_block_message(where: str, label: str) -> str:
    if label in PRIVATE_KEY_LABELS:
        return (f"{where} is a private key, which does not belong in the certificate chain: "
                "remove it from certificate_chain_pem and paste it into private_key_pem only")
    if label in REQUEST_LABELS:
        return (f"{where} is a certificate signing request (CSR), not a certificate; upload the "
                "certificate that your CA issued for this request")
    if label in PUBLIC_KEY_LABELS:
        return f"{where} is a public key, not a certificate; paste the certificate chain here"
    return (f"{where} is not a certificate; {CHAIN_FIELD} takes certificates starting with "
            "'-----BEGIN CERTIFICATE-----'")


def _unpack_bundle(bundle: list[x509.Certificate], block: PemBlock,
                   warnings: list[str]) -> list[UploadedCertificate]:
    warnings.append(f"read {len(bundle)} certificates from the PKCS#7 bundle in block "
                    f"{block.position}")
    return [UploadedCertificate(certificate, block.position) for certificate in bundle]


def _pkcs7_certificates(der: bytes) -> list[x509.Certificate]:
    try:
        return pkcs7.load_der_pkcs7_certificates(der)
    except (ValueError, UnsupportedAlgorithm):
        return []


def _first_der_element(der: bytes) -> bytes:
    """Return the first DER element of der, dropping anything after it.

    OpenSSL's "TRUSTED CERTIFICATE" blocks append trust settings to the certificate.
    Input too short to carry a length is returned unchanged for the parser to reject.
    """
    if len(der) < 2:
        return der
    length = der[1]
    header = 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(der) < 2 + count:
            return der
        length = int.from_bytes(der[2:2 + count], "big")
        header += count
    return der[:header + length]


def remove_duplicates(uploaded: list[UploadedCertificate]) -> tuple[list[UploadedCertificate],
                                                                     list[str]]:
    """Keep the first copy of each certificate and describe the removed copies as warnings."""
    copies: dict[bytes, list[UploadedCertificate]] = {}
    for item in uploaded:
        copies.setdefault(item.certificate.public_bytes(serialization.Encoding.DER), []).append(item)
    warnings = []
    for same in copies.values():
        extra = len(same) - 1
        if extra:
            warnings.append(f"removed {extra} duplicate cop{'y' if extra == 1 else 'ies'} of "
                            f"the certificate {same[0].subject}")
    return [same[0] for same in copies.values()], warnings


# The leaf


def choose_leaf(uploaded: list[UploadedCertificate],
                key_spki: bytes | None) -> tuple[UploadedCertificate, bool]:
    """Return the leaf and whether the private key matches it.

    The leaf is the certificate that carries the private key's public key. Without a
    match it is the first certificate that is neither a CA nor the issuer of another
    uploaded certificate, so that names and dates can still be checked.
    """
    if key_spki is not None:
        matches = [item for item in uploaded if public_key_der(item.certificate) == key_spki]
        if matches:
            return next((item for item in matches if not is_ca(item.certificate)), matches[0]), True
    issuers = {item.certificate.issuer for item in uploaded
               if item.certificate.issuer != item.certificate.subject}
    for item in uploaded:
        if not is_ca(item.certificate) and item.certificate.subject not in issuers:
            return item, False
    return uploaded[0], False


# The path


class PathBreak(enum.Enum):
    """Why a path stops before a trusted root."""

    MISSING_ISSUER = "missing issuer"
    BAD_SIGNATURE = "bad signature"
    UNTRUSTED_ROOT = "untrusted root"
    SELF_SIGNED_LEAF = "self-signed leaf"
    TOO_LONG = "too long"


@dataclasses.dataclass(frozen=True)
class CertificatePath:
    """The longest path found from the leaf: leaf first, then each issuer.

    anchor is the trusted root that signed the last certificate, when the path reaches
    one. Without an anchor, break_reason and wrong_issuer explain where the path stops.
    The path contains uploaded certificates only, and never an uploaded copy of the
    anchor.
    """

    certificates: list[UploadedCertificate]
    anchor: x509.Certificate | None = None
    break_reason: PathBreak | None = None
    wrong_issuer: x509.Certificate | None = None
    """A certificate with the issuer's name whose key does not verify the signature."""

    @property
    def last(self) -> UploadedCertificate:
        return self.certificates[-1]


def build_path(leaf: UploadedCertificate, uploaded: list[UploadedCertificate],
               anchors: TrustAnchors) -> CertificatePath:
    """Find a path from leaf to a trusted root, or the longest partial path with its break."""
    return _PathSearch(uploaded, anchors).extend([leaf])


class _PathSearch:
    """A depth-first search over issuer candidates with a budget of candidates tried."""

    def __init__(self, uploaded: list[UploadedCertificate], anchors: TrustAnchors) -> None:
        self.anchors = anchors
        self.by_subject: dict[x509.Name, list[UploadedCertificate]] = {}
        for item in uploaded:
            self.by_subject.setdefault(item.certificate.subject, []).append(item)
        self.candidates_left = MAX_CANDIDATES_TRIED

    def extend(self, path: list[UploadedCertificate]) -> CertificatePath:
        """Extend path by one issuer at a time until a trusted root signs its last certificate."""
        current = path[-1].certificate
        trusted_issuers = self.anchors.with_subject(current.issuer)
        for root in trusted_issuers:
            if signed_by(current, root):
                return CertificatePath(path, anchor=root)
        if is_self_signed(current):
            reason = PathBreak.SELF_SIGNED_LEAF if len(path) == 1 else PathBreak.UNTRUSTED_ROOT
            return CertificatePath(path, break_reason=reason)
        if len(path) + 1 >= MAX_PATH_LENGTH or self.candidates_left <= 0:
            return CertificatePath(path, break_reason=PathBreak.TOO_LONG)

        best: CertificatePath | None = None
        wrong_issuer = trusted_issuers[0] if trusted_issuers else None
        for candidate in self.by_subject.get(current.issuer, []):
            if any(candidate is item for item in path):
                continue
            self.candidates_left -= 1
            if self.candidates_left < 0:
                break
            if not signed_by(current, candidate.certificate):
                wrong_issuer = wrong_issuer or candidate.certificate
                continue
            if self.anchors.contains(candidate.certificate):
                return CertificatePath(path, anchor=candidate.certificate)
            attempt = self.extend([*path, candidate])
            if attempt.anchor is not None:
                return attempt
            if best is None or len(attempt.certificates) > len(best.certificates):
                best = attempt
        if best is not None:
            return best
        if wrong_issuer is not None:
            return CertificatePath(path, break_reason=PathBreak.BAD_SIGNATURE,
                                   wrong_issuer=wrong_issuer)
        return CertificatePath(path, break_reason=PathBreak.MISSING_ISSUER)


def path_warnings(path: CertificatePath, uploaded: list[UploadedCertificate]) -> list[str]:
    """Describe how the stored chain differs from the upload: order and removed certificates."""
    warnings: list[str] = []
    positions = [item.position for item in path.certificates]
    if positions != sorted(positions):
        warnings.append(f"reordered the chain: the server certificate "
                        f"{path.certificates[0].subject} first, then each issuer in signing "
                        "order")
    in_path = {id(item) for item in path.certificates}
    for item in uploaded:
        if id(item) in in_path:
            continue
        if is_self_signed(item.certificate) or (path.anchor is not None
                                                 and item.certificate == path.anchor):
            warnings.append(f"removed the root certificate {item.subject}: browsers use their "
                            "own copy, so serving it only adds bytes to every handshake")
        else:
            warnings.append(f"removed the certificate {item.subject}, which is not part of the "
                            "chain from the server certificate to a trusted root")
    return warnings
