"""The table of certificate upload cases: one or more per kind of input customers send.

Each case builds its upload at run time from a fresh root and intermediate (a Pki)
and a zone of its own, so the same table runs against the pure validation and
through the gRPC api. A kind of fault appears in several forms, because the fix must
hold for the kind and not for one file.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

from pki_factory import DAY, Issued, Pki, issue, make_key, now
from service.validation.problems import CHAIN_FIELD, KEY_FIELD, PASSPHRASE_FIELD

P384_PARAMETERS = "-----BEGIN EC PARAMETERS-----\nBgUrgQQAIg==\n-----END EC PARAMETERS-----\n"


@dataclasses.dataclass(frozen=True)
class Upload:
    """A request's fields and, for an accepted upload, the chain the service must store."""

    hostname: str
    chain_pem: str
    key_pem: str
    passphrase: str = ""
    expected_chain: tuple[Issued, ...] = ()


@dataclasses.dataclass(frozen=True)
class UploadCase:
    """An upload builder and the expected result: a stored chain or ordered violations.

    Each violation is (field, words), and a word "a|b" matches either alternative.
    Words may use {host} and {zone}, which are filled in with the case's names.
    """

    name: str
    build: Callable[[Pki, str], Upload]
    violations: tuple[tuple[str, tuple[str, ...]], ...] = ()
    warnings: tuple[str, ...] = ()
    """Words of the warnings stored with the certificate."""
    read_time_warnings: tuple[str, ...] = ()
    """Words of the warnings that GetCertificate adds when it reads the certificate."""
    key_type: str = ""

    @property
    def accepted(self) -> bool:
        return not self.violations


def as_received(data: bytes) -> str:
    """Return what a client that reads a binary file into a string field sends."""
    return data.decode("utf-8", errors="replace")


def host_of(zone: str) -> str:
    return f"shop.{zone}"


def _plain(key_kind: str = "rsa2048", form: str = "pkcs8") -> Callable[[Pki, str], Upload]:
    def build(pki: Pki, zone: str) -> Upload:
        leaf = pki.leaf([host_of(zone)], key_kind=key_kind)
        return Upload(host_of(zone), pki.chain_pem(leaf), leaf.key_pem(form),
                      expected_chain=(leaf, pki.intermediate))
    return build


def _leaf_upload(pki: Pki, zone: str, names: list | None | str = "hostname",
                 **options) -> Upload:
    """Upload a leaf below pki.intermediate; names None leaves out the subjectAltName."""
    hostname = options.pop("hostname", host_of(zone))
    leaf = pki.leaf([hostname] if names == "hostname" else names, **options)
    return Upload(hostname, pki.chain_pem(leaf), leaf.key_pem(),
                  expected_chain=(leaf, pki.intermediate))


def _transformed(transform: Callable[[str], str]) -> Callable[[Pki, str], Upload]:
    def build(pki: Pki, zone: str) -> Upload:
        upload = _leaf_upload(pki, zone)
        return dataclasses.replace(upload, chain_pem=transform(upload.chain_pem),
                                   key_pem=transform(upload.key_pem))
    return build


def _two_level(pki: Pki, zone: str) -> tuple[Issued, Issued]:
    """Return a lower intermediate below pki.intermediate and a leaf below it."""
    lower = issue(subject_cn=f"Lower CA {zone}",
                  signer=pki.intermediate, ca=True, not_after=now() + 900 * DAY)
    leaf = issue(subject_cn=host_of(zone), signer=lower, key=make_key("rsa2048"), ca=False,
                 names=[host_of(zone)])
    return lower, leaf


# Accepted uploads


def _reversed(pki: Pki, zone: str) -> Upload:
    leaf = pki.leaf([host_of(zone)])
    return Upload(host_of(zone), pki.intermediate.pem() + leaf.pem(), leaf.key_pem(),
                  expected_chain=(leaf, pki.intermediate))


def _shuffled_two_level(pki: Pki, zone: str) -> Upload:
    lower, leaf = _two_level(pki, zone)
    return Upload(host_of(zone), pki.intermediate.pem() + leaf.pem() + lower.pem(),
                  leaf.key_pem(), expected_chain=(leaf, lower, pki.intermediate))


def _duplicate_leaf(pki: Pki, zone: str) -> Upload:
    leaf = pki.leaf([host_of(zone)])
    return Upload(host_of(zone), leaf.pem() + leaf.pem() + pki.intermediate.pem(), leaf.key_pem(),
                  expected_chain=(leaf, pki.intermediate))


def _duplicate_intermediate(pki: Pki, zone: str) -> Upload:
    leaf = pki.leaf([host_of(zone)])
    return Upload(host_of(zone), leaf.pem() + pki.intermediate.pem() * 2, leaf.key_pem(),
                  expected_chain=(leaf, pki.intermediate))


def _with_root(pki: Pki, zone: str) -> Upload:
    upload = _leaf_upload(pki, zone)
    return dataclasses.replace(upload, chain_pem=upload.chain_pem + pki.root.pem())


def _with_unrelated(pki: Pki, zone: str) -> Upload:
    upload = _leaf_upload(pki, zone)
    stranger = pki.leaf(["other.example.net"])
    return dataclasses.replace(upload, chain_pem=upload.chain_pem + stranger.pem())


def _pkcs7_bundle(pki: Pki, zone: str) -> Upload:
    leaf = pki.leaf([host_of(zone)])
    bundle = pkcs7.serialize_certificates([leaf.certificate, pki.intermediate.certificate],
                                          serialization.Encoding.PEM).decode()
    return Upload(host_of(zone), bundle, leaf.key_pem(), expected_chain=(leaf, pki.intermediate))


def _pem_block(label: str, der: bytes) -> str:
    encoded = base64.b64encode(der).decode()
    lines = [encoded[index:index + 64] for index in range(0, len(encoded), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"


def _pkcs7_in_certificate_block(pki: Pki, zone: str) -> Upload:
    leaf = pki.leaf([host_of(zone)])
    bundle = pkcs7.serialize_certificates([leaf.certificate, pki.intermediate.certificate],
                                          serialization.Encoding.DER)
    return Upload(host_of(zone), _pem_block("CERTIFICATE", bundle), leaf.key_pem(),
                  expected_chain=(leaf, pki.intermediate))


def _trusted_certificate_blocks(pki: Pki, zone: str) -> Upload:
    """Use OpenSSL's TRUSTED CERTIFICATE form: the DER certificate, then trust settings."""
    leaf = pki.leaf([host_of(zone)])
    trust_settings = bytes.fromhex("300a300806062b0601050507")  # a SEQUENCE after the certificate
    chain = "".join(_pem_block("TRUSTED CERTIFICATE", issued.der() + trust_settings)
                    for issued in (leaf, pki.intermediate))
    return Upload(host_of(zone), chain, leaf.key_pem(), expected_chain=(leaf, pki.intermediate))


def _bag_attributes(pki: Pki, zone: str) -> Upload:
    upload = _leaf_upload(pki, zone)
    bag = "Bag Attributes\n    friendlyName: shop\nsubject=/CN=shop\nissuer=/CN=Test\n"
    chain = bag + upload.chain_pem.replace("-----END CERTIFICATE-----\n",
                                           "-----END CERTIFICATE-----\n" + bag, 1)
    return dataclasses.replace(upload, chain_pem=chain, key_pem=bag + upload.key_pem)


def _ec_parameters_p384(pki: Pki, zone: str) -> Upload:
    upload = _plain("p384", "sec1")(pki, zone)
    return dataclasses.replace(upload, key_pem=P384_PARAMETERS + upload.key_pem)


def _wildcard_for_subdomain(pki: Pki, zone: str) -> Upload:
    return _leaf_upload(pki, zone, [f"*.{zone}"])


def _wildcard_domain(pki: Pki, zone: str) -> Upload:
    return _leaf_upload(pki, zone, [f"*.{zone}", zone], hostname=f"*.{zone}")


def _uppercase_san(pki: Pki, zone: str) -> Upload:
    return _leaf_upload(pki, zone, [host_of(zone).upper()])


def _encrypted_with_passphrase(pki: Pki, zone: str) -> Upload:
    upload = _leaf_upload(pki, zone)
    leaf = upload.expected_chain[0]
    return dataclasses.replace(upload, key_pem=leaf.key_pem(passphrase=b"fixture words"),
                               passphrase="fixture words")


def _expires_soon(pki: Pki, zone: str) -> Upload:
    return _leaf_upload(pki, zone, not_after=now() + 9 * DAY)


# Rejected uploads


def _other_key(key_kind: str) -> Callable[[Pki, str], Upload]:
    def build(pki: Pki, zone: str) -> Upload:
        upload = _leaf_upload(pki, zone)
        return dataclasses.replace(upload, key_pem=pki.leaf([host_of(zone)],
                                                            key_kind=key_kind).key_pem())
    return build


def _utf16_chain(encoding: str) -> Callable[[Pki, str], Upload]:
    def build(pki: Pki, zone: str) -> Upload:
        upload = _leaf_upload(pki, zone)
        return dataclasses.replace(upload, chain_pem=as_received(
            ("\ufeff" + upload.chain_pem).encode(encoding)))
    return build


def _utf16_key(pki: Pki, zone: str) -> Upload:
    upload = _leaf_upload(pki, zone)
    return dataclasses.replace(upload, key_pem=as_received(upload.key_pem.encode("utf-16")))


def _der_chain(pki: Pki, zone: str) -> Upload:
    upload = _leaf_upload(pki, zone)
    return dataclasses.replace(upload, chain_pem=as_received(upload.expected_chain[0].der()))


def _pkcs12_chain(pki: Pki, zone: str) -> Upload:
    upload = _leaf_upload(pki, zone)
    leaf = upload.expected_chain[0]
    pfx = pkcs12.serialize_key_and_certificates(
        b"shop", leaf.key, leaf.certificate, [pki.intermediate.certificate],
        serialization.NoEncryption())
    return dataclasses.replace(upload, chain_pem=as_received(pfx))


def _encrypted_without_passphrase(form: str) -> Callable[[Pki, str], Upload]:
    def build(pki: Pki, zone: str) -> Upload:
        upload = _leaf_upload(pki, zone)
        leaf = upload.expected_chain[0]
        return dataclasses.replace(upload, key_pem=leaf.key_pem(form, passphrase=b"secret words"))
    return build


def _wrong_passphrase(pki: Pki, zone: str) -> Upload:
    upload = _encrypted_without_passphrase("pkcs8")(pki, zone)
    return dataclasses.replace(upload, passphrase="guessed words")


def _leaf_only(pki: Pki, zone: str) -> Upload:
    upload = _leaf_upload(pki, zone)
    return dataclasses.replace(upload, chain_pem=upload.expected_chain[0].pem())


def _upper_intermediate_missing(pki: Pki, zone: str) -> Upload:
    lower, leaf = _two_level(pki, zone)
    return Upload(host_of(zone), leaf.pem() + lower.pem(), leaf.key_pem())


def _untrusted_root(pki: Pki, zone: str) -> Upload:
    private = Pki.create(f"private {zone}")
    leaf = private.leaf([host_of(zone)])
    return Upload(host_of(zone), private.chain_pem(leaf) + private.root.pem(), leaf.key_pem())


def _self_signed(pki: Pki, zone: str) -> Upload:
    leaf = issue(subject_cn=host_of(zone), signer=None, key=make_key("rsa2048"), ca=False,
                 names=[host_of(zone)])
    return Upload(host_of(zone), leaf.pem(), leaf.key_pem())


def _expired_intermediate(pki: Pki, zone: str) -> Upload:
    old = Pki.create(f"old {zone}", not_before=now() - 400 * DAY, not_after=now() - 2 * DAY)
    leaf = issue(subject_cn=host_of(zone), signer=old.intermediate, key=make_key("rsa2048"),
                 ca=False, names=[host_of(zone)])
    # The old intermediate is below the case's own trusted root, so only its dates fail.
    intermediate = issue(subject_cn=old.intermediate.certificate.subject.get_attributes_for_oid(
        x509.NameOID.COMMON_NAME)[0].value, signer=pki.root, key=old.intermediate.key, ca=True,
        not_before=now() - 400 * DAY, not_after=now() - 2 * DAY)
    return Upload(host_of(zone), leaf.pem() + intermediate.pem(), leaf.key_pem())


def _ca_variant(key_kind: str = "p256", **intermediate_options) -> Callable[[Pki, str], Upload]:
    """Build a leaf below a sibling intermediate of the case's root with other extensions."""
    def build(pki: Pki, zone: str) -> Upload:
        options = {"ca": True, **intermediate_options}
        intermediate = issue(subject_cn=f"Odd Intermediate {zone}", signer=pki.root,
                             key=make_key(key_kind), **options)
        leaf = issue(subject_cn=host_of(zone), signer=intermediate, key=make_key("rsa2048"),
                     ca=False, names=[host_of(zone)])
        return Upload(host_of(zone), leaf.pem() + intermediate.pem(), leaf.key_pem())
    return build


def _path_too_long(pki: Pki, zone: str) -> Upload:
    limited = issue(subject_cn=f"Limited Intermediate {zone}", signer=pki.root, ca=True,
                    path_length=0)
    lower = issue(subject_cn=f"Lower Intermediate {zone}", signer=limited, ca=True)
    leaf = issue(subject_cn=host_of(zone), signer=lower, key=make_key("rsa2048"), ca=False,
                 names=[host_of(zone)])
    return Upload(host_of(zone), leaf.pem() + lower.pem() + limited.pem(), leaf.key_pem())


def _bad_signature(pki: Pki, zone: str) -> Upload:
    leaf = issue(subject_cn=host_of(zone), signer=pki.intermediate, key=make_key("rsa2048"),
                 ca=False, names=[host_of(zone)], issuer_key_override=make_key("p256"))
    return Upload(host_of(zone), pki.chain_pem(leaf), leaf.key_pem())


def _key_in_chain_field(pki: Pki, zone: str) -> Upload:
    upload = _leaf_upload(pki, zone)
    return dataclasses.replace(upload, chain_pem=upload.chain_pem + upload.key_pem)


def _certificate_in_key_field(pki: Pki, zone: str) -> Upload:
    upload = _leaf_upload(pki, zone)
    return dataclasses.replace(upload, key_pem=upload.expected_chain[0].pem())


def _empty(pki: Pki, zone: str) -> Upload:
    return Upload(host_of(zone), "", "")


def _oversized(pki: Pki, zone: str) -> Upload:
    upload = _leaf_upload(pki, zone)
    padding = "Bag Attributes\n" * (300 * 1024 // 15)
    return dataclasses.replace(upload, chain_pem=padding + upload.chain_pem)


def _ip_only_san(pki: Pki, zone: str) -> Upload:
    address = x509.IPAddress(ipaddress.ip_address("192.0.2.10"))
    return _leaf_upload(pki, zone, [address], common_name=host_of(zone))


def _many_problems(pki: Pki, zone: str) -> Upload:
    leaf = pki.leaf(["other.example.net"], not_before=now() - 100 * DAY,
                    not_after=now() - 10 * DAY)
    return Upload(host_of(zone), leaf.pem(), pki.leaf(["other.example.net"]).key_pem())


CASES: list[UploadCase] = [
    # Key encodings
    UploadCase("rsa pkcs1 key", _plain("rsa2048", "pkcs1"), key_type="RSA-2048"),
    UploadCase("ec sec1 key", _plain("p256", "sec1"), key_type="ECDSA-P256"),
    UploadCase("ec parameters p384", _ec_parameters_p384, key_type="ECDSA-P384"),
    UploadCase("rsa 3072 key", _plain("rsa3072"), key_type="RSA-3072"),
    UploadCase("encrypted key with passphrase", _encrypted_with_passphrase,
               warnings=("decrypted the private key",)),
    # Chain order and contents
    UploadCase("chain reversed", _reversed, warnings=("reordered the chain",)),
    UploadCase("two intermediates shuffled", _shuffled_two_level,
               warnings=("reordered the chain",)),
    UploadCase("duplicate leaf", _duplicate_leaf, warnings=("removed 1 duplicate",)),
    UploadCase("duplicate intermediate", _duplicate_intermediate,
               warnings=("removed 1 duplicate",)),
    UploadCase("root included", _with_root, warnings=("removed the root certificate",)),
    UploadCase("unrelated certificate", _with_unrelated, warnings=("not part of the chain",)),
    UploadCase("pem pkcs7 bundle", _pkcs7_bundle, warnings=("PKCS#7",)),
    UploadCase("pkcs7 in certificate block", _pkcs7_in_certificate_block,
               warnings=("PKCS#7",)),
    UploadCase("trusted certificate blocks", _trusted_certificate_blocks),
    # Text forms
    UploadCase("crlf line endings", _transformed(lambda text: text.replace("\n", "\r\n"))),
    UploadCase("cr line endings", _transformed(lambda text: text.replace("\n", "\r"))),
    UploadCase("utf8 bom", _transformed(lambda text: "\ufeff" + text)),
    UploadCase("indented blocks", _transformed(
        lambda text: "\n".join("  " + line for line in text.splitlines()))),
    UploadCase("bag attributes", _bag_attributes),
    # Names
    UploadCase("wildcard covers subdomain", _wildcard_for_subdomain),
    UploadCase("wildcard domain", _wildcard_domain),
    UploadCase("uppercase san", _uppercase_san),
    UploadCase("expires soon", _expires_soon, read_time_warnings=("expires in 8 days",)),

    UploadCase("key mismatch", _other_key("rsa2048"),
               violations=((KEY_FIELD, ("does not match", "shop.{zone}")),)),
    UploadCase("key mismatch other type", _other_key("p256"),
               violations=((KEY_FIELD, ("does not match", "key pair")),)),
    UploadCase("utf16 chain", _utf16_chain("utf-16-le"),
               violations=((CHAIN_FIELD, ("UTF-16", "iconv")),)),
    UploadCase("utf16 big endian chain", _utf16_chain("utf-16-be"),
               violations=((CHAIN_FIELD, ("UTF-16",)),)),
    UploadCase("utf16 key", _utf16_key, violations=((KEY_FIELD, ("UTF-16",)),)),
    UploadCase("der certificate", _der_chain,
               violations=((CHAIN_FIELD, ("binary", "DER", "PEM", "openssl x509")),)),
    UploadCase("pkcs12 in chain field", _pkcs12_chain,
               violations=((CHAIN_FIELD, ("binary", "PKCS#12", "openssl pkcs12")),)),
    UploadCase("encrypted pkcs8 key", _encrypted_without_passphrase("pkcs8"),
               violations=((KEY_FIELD, ("encrypted", "passphrase", "ENCRYPTED PRIVATE KEY")),)),
    UploadCase("encrypted pkcs1 key", _encrypted_without_passphrase("pkcs1"),
               violations=((KEY_FIELD, ("encrypted", "passphrase", "RSA PRIVATE KEY")),)),
    UploadCase("wrong passphrase", _wrong_passphrase,
               violations=((PASSPHRASE_FIELD, ("does not decrypt",)),)),
    UploadCase("missing intermediate", _leaf_only,
               violations=((CHAIN_FIELD, ("incomplete", "intermediate",
                                          "Test Intermediate CA")),)),
    UploadCase("missing upper intermediate", _upper_intermediate_missing,
               violations=((CHAIN_FIELD, ("incomplete", "intermediate",
                                          "Test Intermediate CA")),)),
    UploadCase("untrusted root", _untrusted_root,
               violations=((CHAIN_FIELD, ("root certificate", "not in the trust store")),)),
    UploadCase("self-signed leaf", _self_signed,
               violations=((CHAIN_FIELD, ("self-signed", "public CA")),)),
    UploadCase("leaf expired", lambda pki, zone: _leaf_upload(
        pki, zone, not_before=now() - 120 * DAY, not_after=now() - 30 * DAY),
               violations=((CHAIN_FIELD, ("expired", "30 days ago", "renew")),)),
    UploadCase("leaf not yet valid", lambda pki, zone: _leaf_upload(
        pki, zone, not_before=now() + 3 * DAY),
               violations=((CHAIN_FIELD, ("not valid yet", "valid from")),)),
    UploadCase("intermediate expired", _expired_intermediate,
               violations=((CHAIN_FIELD, ("intermediate certificate", "expired")),)),
    UploadCase("san other domain", lambda pki, zone: _leaf_upload(
        pki, zone, ["other.example.net", "www.other.example.net"]),
               violations=((CHAIN_FIELD, ("shop.{zone}", "other.example.net",
                                          "www.other.example.net")),)),
    UploadCase("wildcard for apex", lambda pki, zone: _leaf_upload(
        pki, zone, [f"*.{zone}"], hostname=zone),
               violations=((CHAIN_FIELD, ("*.{zone}", "not {zone} itself")),)),
    UploadCase("wildcard two labels deep", lambda pki, zone: _leaf_upload(
        pki, zone, [f"*.{zone}"], hostname=f"a.shop.{zone}"),
               violations=((CHAIN_FIELD, ("*.{zone}", "exactly one label")),)),
    UploadCase("plain certificate for wildcard domain", lambda pki, zone: _leaf_upload(
        pki, zone, [host_of(zone)], hostname=f"*.{zone}"),
               violations=((CHAIN_FIELD, ("*.{zone}", "wildcard domain")),)),
    UploadCase("cn only no san", lambda pki, zone: _leaf_upload(
        pki, zone, None, common_name=host_of(zone)),
               violations=((CHAIN_FIELD, ("subjectAltName", "Common Name")),)),
    UploadCase("san with ip only", _ip_only_san,
               violations=((CHAIN_FIELD, ("no DNS names",)),)),
    UploadCase("rsa 1024", _plain("rsa1024", "pkcs1"),
               violations=((CHAIN_FIELD, ("RSA-1024", "2048")),)),
    UploadCase("ed25519", _plain("ed25519"), violations=((CHAIN_FIELD, ("Ed25519",)),)),
    UploadCase("ed448", _plain("ed448"), violations=((CHAIN_FIELD, ("Ed448",)),)),
    UploadCase("secp256k1", _plain("secp256k1"),
               violations=((CHAIN_FIELD, ("secp256k1", "curve")),)),
    UploadCase("p521", _plain("p521"), violations=((CHAIN_FIELD, ("P-521",)),)),
    UploadCase("key in chain field", _key_in_chain_field,
               violations=((CHAIN_FIELD, ("private key", "private_key_pem")),)),
    UploadCase("certificate in key field", _certificate_in_key_field,
               violations=((KEY_FIELD, ("is a certificate", "certificate_chain_pem")),)),
    UploadCase("empty fields", _empty,
               violations=((CHAIN_FIELD, ("empty",)), (KEY_FIELD, ("empty",)))),
    UploadCase("oversized chain", _oversized, violations=((CHAIN_FIELD, ("256 KiB",)),)),
    UploadCase("intermediate not a ca", _ca_variant(ca=False),
               violations=((CHAIN_FIELD, ("not a CA certificate", "CA:FALSE")),)),
    UploadCase("intermediate without basic constraints", _ca_variant(ca=None),
               violations=((CHAIN_FIELD, ("not a CA certificate", "missing")),)),
    UploadCase("intermediate rsa 1024", _ca_variant("rsa1024"),
               violations=((CHAIN_FIELD, ("intermediate certificate", "RSA-1024")),)),
    UploadCase("intermediate without keycertsign", _ca_variant(key_usage="no-cert-sign"),
               violations=((CHAIN_FIELD, ("keyCertSign",)),)),
    UploadCase("intermediate for client auth", _ca_variant(
        extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH]),
               violations=((CHAIN_FIELD, ("clientAuth", "excludes serverAuth")),)),
    UploadCase("path length exceeded", _path_too_long,
               violations=((CHAIN_FIELD, ("pathLenConstraint", "at most 0")),)),
    UploadCase("leaf for client auth", lambda pki, zone: _leaf_upload(
        pki, zone, extended_key_usage=[ExtendedKeyUsageOID.CLIENT_AUTH]),
               violations=((CHAIN_FIELD, ("clientAuth", "serverAuth")),)),
    UploadCase("leaf is a ca", lambda pki, zone: _leaf_upload(pki, zone, ca=True, key_usage=None),
               violations=((CHAIN_FIELD, ("CA certificate", "CA:TRUE")),)),
    UploadCase("bad signature", _bad_signature,
               violations=((CHAIN_FIELD, ("signature", "does not verify")),)),
    UploadCase("leaf without authority key id", lambda pki, zone: _leaf_upload(
        pki, zone, authority_key_id=False),
               violations=((CHAIN_FIELD, ("RFC 5280", "authorityKeyIdentifier")),)),
    UploadCase("several problems ordered", _many_problems, violations=(
        (CHAIN_FIELD, ("does not cover", "other.example.net")),
        (KEY_FIELD, ("does not match",)),
        (CHAIN_FIELD, ("expired",)),
        (CHAIN_FIELD, ("incomplete",)),
    )),
]


def words_of(case: UploadCase, zone: str) -> list[tuple[str, list[str]]]:
    """Return the case's violations with {host} and {zone} filled in."""
    return [(field, [word.format(host=host_of(zone), zone=zone) for word in words])
            for field, words in case.violations]


def missing_words(text: str, words: list[str]) -> list[str]:
    """Return the words (each "a|b" meaning either) that text lacks, case-insensitively."""
    lowered = text.lower()
    return [word for word in words
            if not any(alternative.lower() in lowered for alternative in word.split("|"))]
