"""Checks on a chain the CA issued, before it is stored."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from service.certificate_details import PrivateKey, dns_names
from worker.errors import TransientIssuanceError


def parse_fullchain(fullchain_pem: str, hostname: str) -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(fullchain_pem.encode())
    except ValueError as error:
        raise TransientIssuanceError(
            f"the CA returned a certificate chain for {hostname} that cannot be parsed: {error}"
        ) from None
    return chain


def verify_issued_chain(chain: list[x509.Certificate], private_key: PrivateKey,
                        hostname: str) -> None:
    """Raise TransientIssuanceError unless the chain is fit to serve hostname with private_key.

    Checks that the leaf carries the key of our CSR and names the hostname, that it is
    valid now, and that each certificate is signed by the next one.
    """
    if not chain:
        raise TransientIssuanceError(f"the CA returned an empty chain for {hostname}")
    leaf = chain[0]
    public_format = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if leaf.public_key().public_bytes(*public_format) != private_key.public_key().public_bytes(
            *public_format):
        raise TransientIssuanceError(
            f"the CA returned a certificate for {hostname} whose public key is not the one in "
            "the CSR"
        )
    names = dns_names(leaf)
    if hostname not in names:
        raise TransientIssuanceError(
            f"the CA returned a certificate for {', '.join(names) or 'no names'}, not {hostname}"
        )
    now = datetime.datetime.now(datetime.timezone.utc)
    if not leaf.not_valid_before_utc <= now + datetime.timedelta(minutes=5):
        raise TransientIssuanceError(
            f"the issued certificate for {hostname} is not valid before "
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if leaf.not_valid_after_utc <= now:
        raise TransientIssuanceError(f"the CA returned an expired certificate for {hostname}")
    for child, parent in zip(chain, chain[1:]):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature) as error:
            raise TransientIssuanceError(
                f"the chain the CA returned for {hostname} is broken: "
                f"{child.subject.rfc4514_string()} is not signed by "
                f"{parent.subject.rfc4514_string()} ({type(error).__name__})"
            ) from None
