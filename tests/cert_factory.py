"""Certificates made at test time: a throwaway CA, an intermediate and a leaf."""

from __future__ import annotations

import dataclasses
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclasses.dataclass(frozen=True)
class MadeChain:
    leaf: x509.Certificate
    intermediate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(serialization.Encoding.PEM)
                        for c in (self.leaf, self.intermediate))

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, issuer: str, public_key, signing_key, not_before, not_after, *,
                 ca: bool, names: list[str] | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(public_key).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def make_chain(names: list[str], *, expired: bool = False) -> MadeChain:
    """Return a leaf for names signed by a fresh intermediate and root."""
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = ec.generate_private_key(ec.SECP256R1())
    intermediate_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    start = now - datetime.timedelta(days=100 if expired else 1)
    end = now - datetime.timedelta(days=10) if expired else now + datetime.timedelta(days=90)
    intermediate = _certificate("test intermediate", "test root", intermediate_key.public_key(),
                                root_key, now - datetime.timedelta(days=365),
                                now + datetime.timedelta(days=365), ca=True)
    leaf = _certificate(names[0], "test intermediate", leaf_key.public_key(), intermediate_key,
                        start, end, ca=False, names=names)
    return MadeChain(leaf, intermediate, leaf_key)
