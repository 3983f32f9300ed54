"""The root certificates that an uploaded chain must reach, indexed for path building."""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_key_der(certificate: x509.Certificate) -> bytes:
    """Return the DER SubjectPublicKeyInfo, or b"" for a key cryptography cannot load.

    That covers unsupported key types and malformed keys (an EC point off its curve).
    """
    try:
        return certificate.public_key().public_bytes(*_SPKI)
    except (UnsupportedAlgorithm, ValueError):
        return b""


class TrustAnchors:
    """Trusted roots by subject name, plus the cryptography Store built from them."""

    def __init__(self, roots: Iterable[x509.Certificate]) -> None:
        self.roots = list(roots)
        if not self.roots:
            raise ValueError("a trust store needs at least one root certificate")
        self._by_subject: dict[x509.Name, list[x509.Certificate]] = defaultdict(list)
        for root in self.roots:
            self._by_subject[root.subject].append(root)
        self._identities = {(root.subject, public_key_der(root)) for root in self.roots}
        self.store = verification.Store(self.roots)

    def __len__(self) -> int:
        return len(self.roots)

    def with_subject(self, name: x509.Name) -> list[x509.Certificate]:
        return self._by_subject.get(name, [])

    def contains(self, certificate: x509.Certificate) -> bool:
        """Return whether a trusted root has this certificate's subject and public key.

        A root re-issued with new dates but the same name and key is the same trust
        anchor, so an uploaded copy of it counts as trusted.
        """
        return (certificate.subject, public_key_der(certificate)) in self._identities


def parse_bundle(bundle_pem: bytes) -> tuple[list[x509.Certificate], int]:
    """Parse a PEM bundle block by block and return the roots and the number skipped.

    System bundles occasionally contain a certificate that cryptography rejects, for
    example one with a negative serial number. Skipping it keeps the others usable.
    """
    roots: list[x509.Certificate] = []
    skipped = 0
    marker = b"-----END CERTIFICATE-----"
    with warnings.catch_warnings():
        # Debian 12's bundle has several roots whose serial number is not positive.
        # cryptography 50 parses them with a deprecation warning at every start. The
        # warning states that a later release will reject them; this loop then counts
        # them as skipped, and service.trust_bundle logs the count.
        warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive",
                                category=CryptographyDeprecationWarning)
        for chunk in bundle_pem.split(marker)[:-1]:
            try:
                roots.append(x509.load_pem_x509_certificate(chunk + marker))
            except ValueError:
                skipped += 1
    return roots, skipped
