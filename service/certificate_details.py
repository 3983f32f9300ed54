"""Facts about a certificate chain that certsvc stores and returns."""

from __future__ import annotations

import dataclasses
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from service.encryption import Keyring

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclasses.dataclass(frozen=True)
class CertificateDetails:
    hostnames: list[str]
    key_type: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    issuer: str
    serial_number: str
    sha256_fingerprint: str


def key_type_name(public_key: object) -> str:
    """Name a public key as certsvc reports it: RSA-2048, ECDSA-P256, Ed25519..."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        return {"secp256r1": "ECDSA-P256", "secp384r1": "ECDSA-P384",
                "secp521r1": "ECDSA-P521"}.get(curve, f"ECDSA-{curve}")
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(public_key, ed448.Ed448PublicKey):
        return "Ed448"
    return type(public_key).__name__


def dns_names(certificate: x509.Certificate) -> list[str]:
    """Return the DNS names of the subjectAltName extension, lowercased; [] without one."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return [name.lower().rstrip(".") for name in extension.value.get_values_for_type(x509.DNSName)]


def fingerprint_sha256(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def describe(leaf: x509.Certificate) -> CertificateDetails:
    return CertificateDetails(
        hostnames=dns_names(leaf),
        key_type=key_type_name(leaf.public_key()),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        issuer=leaf.issuer.rfc4514_string(),
        serial_number=format(leaf.serial_number, "X"),
        sha256_fingerprint=fingerprint_sha256(leaf),
    )


def chain_to_pem(chain: list[x509.Certificate]) -> str:
    return "".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in chain)


def seal_private_key(keyring: Keyring, private_key: PrivateKey, associated_data: bytes) -> bytes:
    """Seal a private key as PKCS#8 DER under the master key."""
    key_der = private_key.private_bytes(serialization.Encoding.DER,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    return keyring.seal(key_der, associated_data)
