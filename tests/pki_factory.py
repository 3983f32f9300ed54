"""Certificates made at test time: a root CA, an intermediate CA and leaves, with options
for every fault an uploaded chain can have.

Dates are relative to now, so fixtures never go stale.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KEY_KINDS = ("rsa2048", "rsa1024", "rsa3072", "p256", "p384", "p521", "secp256k1",
             "ed25519", "ed448")
DAY = datetime.timedelta(days=1)


def make_key(kind: str = "p256"):
    """Generate a private key of a kind named in KEY_KINDS."""
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    curves = {"p256": ec.SECP256R1, "p384": ec.SECP384R1, "p521": ec.SECP521R1,
              "secp256k1": ec.SECP256K1}
    if kind in curves:
        return ec.generate_private_key(curves[kind]())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    raise ValueError(f"unknown key kind {kind!r}")


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _name(common_name: str | None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certsvc tests")]
    if common_name is not None:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _signature_hash(signing_key, hash_name: str):
    if isinstance(signing_key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return None
    return {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha1": hashes.SHA1()}[hash_name]


@dataclasses.dataclass
class Issued:
    """A certificate with its private key."""

    certificate: x509.Certificate
    key: object

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def key_pem(self, form: str = "pkcs8", passphrase: bytes | None = None) -> str:
        """The private key as PEM: pkcs8, pkcs1 (RSA) or sec1 (EC), optionally encrypted."""
        private_format = {"pkcs8": serialization.PrivateFormat.PKCS8,
                          "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,
                          "sec1": serialization.PrivateFormat.TraditionalOpenSSL}[form]
        encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                      else serialization.NoEncryption())
        return self.key.private_bytes(serialization.Encoding.PEM, private_format,
                                      encryption).decode()


def issue(*, subject_cn: str | None, signer: Issued | None, key=None, ca: bool | None,
          names: Sequence[str | x509.GeneralName] | None = None, not_before: datetime.datetime | None = None,
          not_after: datetime.datetime | None = None, path_length: int | None = None,
          key_usage: str | None = "default",
          extended_key_usage: Sequence[x509.ObjectIdentifier] | None | str = "default",
          hash_name: str = "sha256", authority_key_id: bool = True,
          extra_extensions: Sequence[x509.ExtensionType] = (),
          issuer_key_override=None) -> Issued:
    """Build one certificate; signer None makes it self-signed.

    names are subjectAltName entries: strings become DNS names.

    ca None leaves out basicConstraints. key_usage "default" picks what a CA or a leaf
    normally carries, None leaves the extension out, "no-cert-sign" gives a CA
    certificate digitalSignature only. extended_key_usage "default" is serverAuth for
    a leaf and nothing for a CA. issuer_key_override signs with another key than the
    signer's, which breaks the signature.
    """
    key = key if key is not None else make_key("p256")
    subject = _name(subject_cn)
    issuer_name = signer.certificate.subject if signer else subject
    signing_key = issuer_key_override or (signer.key if signer else key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now() - DAY)
        .not_valid_after(not_after or now() + 90 * DAY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
    )
    authority_key = signer.key.public_key() if signer else key.public_key()
    if authority_key_id:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key), critical=False)
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
    if key_usage is not None:
        is_ca_usage = bool(ca) and key_usage == "default"
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False,
            key_encipherment=isinstance(key, rsa.RSAPrivateKey) and not ca,
            data_encipherment=False, key_agreement=False, key_cert_sign=is_ca_usage,
            crl_sign=is_ca_usage, encipher_only=False, decipher_only=False), critical=True)
    if extended_key_usage == "default":
        extended_key_usage = None if ca else [ExtendedKeyUsageOID.SERVER_AUTH]
    if extended_key_usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended_key_usage)),
                                        critical=False)
    if names is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) if isinstance(name, str) else name
                                         for name in names]), critical=False)
    for extension in extra_extensions:
        builder = builder.add_extension(extension, critical=False)
    certificate = builder.sign(signing_key, _signature_hash(signing_key, hash_name))
    return Issued(certificate, key)


@dataclasses.dataclass
class Pki:
    """A root CA and an intermediate CA below it."""

    root: Issued
    intermediate: Issued

    @classmethod
    def create(cls, label: str, **intermediate_options) -> Pki:
        root = issue(subject_cn=f"Test Root CA {label}", signer=None, ca=True,
                     not_after=now() + 3650 * DAY)
        options = {"ca": True, "not_after": now() + 1825 * DAY, **intermediate_options}
        intermediate = issue(subject_cn=f"Test Intermediate CA {label}", signer=root, **options)
        return cls(root, intermediate)

    def leaf(self, names: Sequence[str | x509.GeneralName] | None, *, key_kind: str = "rsa2048",
             common_name: str | None = "", **options) -> Issued:
        """Issue a leaf under the intermediate; its CN is the first name unless given."""
        if common_name == "":
            common_name = names[0] if names and isinstance(names[0], str) else None
        return issue(subject_cn=common_name, signer=self.intermediate, key=make_key(key_kind),
                     ca=options.pop("ca", False), names=names, **options)

    def chain_pem(self, leaf: Issued) -> str:
        return leaf.pem() + self.intermediate.pem()
