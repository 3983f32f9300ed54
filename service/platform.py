"""The platform domain (CERTSVC_PLATFORM_DOMAIN): hostnames its wildcard certificate covers.

A hostname exactly one label under the platform domain (myapp.meteorapp.com) is a
platform hostname: the platform's wildcard certificate serves it, so it needs no
ACME order. The operator installs that certificate with `certsvc platform-cert`.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import uuid

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.certificate_details import (CertificateDetails, chain_to_pem, describe,
                                         seal_private_key)
from service.encryption import Keyring
from service.errors import InvalidArgument
from service.event_types import EventType
from service.sealed_columns import platform_key_associated_data
from service.store import platform_certificates as platform_rows
from service.store.database import Database
from service.validation.hostname import Hostname

logger = logging.getLogger(__name__)

MIN_RSA_BITS = 2048
ALLOWED_CURVES = ("secp256r1", "secp384r1")
PENDING_REASON = ("waiting for the platform's wildcard certificate, which an operator "
                  "installs with `certsvc platform-cert`")


class PlatformCertificateError(ValueError):
    """The files given to `certsvc platform-cert` cannot serve the platform domain."""


@dataclasses.dataclass(frozen=True)
class InstalledPlatformCertificate:
    details: CertificateDetails
    activated_domains: int


def is_platform_hostname(hostname: Hostname, platform_domain: str) -> bool:
    """Return whether hostname is one label under platform_domain.

    Raises InvalidArgument for a name under the platform domain that the platform's
    wildcard certificate cannot cover, and for the platform domain itself.
    """
    if not platform_domain:
        return False
    name = hostname.base
    if name == platform_domain and hostname.wildcard:
        raise InvalidArgument.for_field(
            "hostname",
            f"{hostname.ascii} is the platform's own wildcard, which the platform certificate "
            f"serves already; add a host name under it, such as myapp.{platform_domain}")
    if name == platform_domain:
        raise InvalidArgument.for_field(
            "hostname",
            f"{hostname.ascii} is the platform's own domain; add a host name under it, such "
            f"as myapp.{platform_domain}, or a domain of your own")
    if not name.endswith("." + platform_domain):
        return False
    label = name[:-len(platform_domain) - 1]
    if hostname.wildcard or "." in label:
        raise InvalidArgument.for_field(
            "hostname",
            f"{hostname.ascii} is more than one label under the platform domain "
            f"{platform_domain}; its wildcard certificate *.{platform_domain} covers only one "
            f"label, such as myapp.{platform_domain}, so use such a name or a domain of your "
            "own")
    return True


def platform_domain_of(hostname: str) -> str:
    """Return the platform domain of a platform hostname: everything after its first label."""
    return hostname.partition(".")[2]


def install_platform_certificate(database: Database, keyring: Keyring, platform_domain: str,
                                 chain_pem: bytes, key_pem: bytes) -> InstalledPlatformCertificate:
    """Verify and store the platform's wildcard certificate and activate platform hostnames."""
    chain, private_key = _verify(platform_domain, chain_pem, key_pem)
    details = describe(chain[0])
    certificate_id = uuid.uuid4()
    sealed_key = seal_private_key(keyring, private_key, platform_key_associated_data(certificate_id))
    with database.transaction() as connection:
        platform_rows.insert_platform_certificate(connection, platform_rows.NewPlatformCertificate(
            id=certificate_id, platform_domain=platform_domain, hostnames=details.hostnames,
            chain_pem=chain_to_pem(chain), private_key_sealed=sealed_key,
            key_type=details.key_type, not_before=details.not_before,
            not_after=details.not_after, issuer=details.issuer,
            serial_number=details.serial_number,
            sha256_fingerprint=details.sha256_fingerprint,
        ))
        activated = platform_rows.activate_platform_domains(
            connection, platform_domain, EventType.PLATFORM_CERTIFICATE_INSTALLED,
            f"the platform certificate *.{platform_domain} (serial {details.serial_number}, "
            f"valid until {details.not_after:%Y-%m-%d %H:%M} UTC) now serves this domain")
    logger.info("installed platform certificate platform_domain=%s certificate_id=%s "
                "serial=%s activated_domains=%d", platform_domain, certificate_id,
                details.serial_number, activated)
    return InstalledPlatformCertificate(details, activated)


def _verify(platform_domain: str, chain_pem: bytes,
            key_pem: bytes) -> tuple[list[x509.Certificate], rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    """Parse the chain and key and check that they can serve *.platform_domain now."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise PlatformCertificateError(
            "the chain file holds no PEM certificate; pass the full chain in PEM form, the "
            "wildcard certificate first") from None
    try:
        private_key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise PlatformCertificateError(
            "the private key is encrypted; decrypt it first (openssl pkey -in KEY -out "
            "plain.pem)") from None
    except ValueError:
        raise PlatformCertificateError("the key file holds no PEM private key") from None
    _check_key(private_key)

    leaf = chain[0]
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if leaf.public_key().public_bytes(*spki) != private_key.public_key().public_bytes(*spki):
        raise PlatformCertificateError(
            "the private key does not match the first certificate of the chain; pass the key "
            "of the wildcard certificate and put that certificate first")
    wildcard = f"*.{platform_domain}"
    names = describe(leaf).hostnames
    if wildcard not in names:
        raise PlatformCertificateError(
            f"the certificate names {', '.join(names) or 'no DNS names'}, not {wildcard}; "
            f"the platform certificate must cover {wildcard} (CERTSVC_PLATFORM_DOMAIN)")
    now = datetime.datetime.now(datetime.timezone.utc)
    if leaf.not_valid_after_utc <= now:
        raise PlatformCertificateError(
            f"the certificate expired at {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; renew it")
    if leaf.not_valid_before_utc > now:
        raise PlatformCertificateError(
            f"the certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    for child, parent in zip(chain, chain[1:]):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            raise PlatformCertificateError(
                f"{child.subject.rfc4514_string()} is not signed by the next certificate in "
                f"the chain ({parent.subject.rfc4514_string()}); order the chain leaf first, "
                "then each issuer") from None
    return chain, private_key  # type: ignore[return-value]


def _check_key(private_key: object) -> None:
    if isinstance(private_key, rsa.RSAPrivateKey):
        if private_key.key_size < MIN_RSA_BITS:
            raise PlatformCertificateError(
                f"the RSA key has {private_key.key_size} bits; use at least {MIN_RSA_BITS}")
        return
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        if private_key.curve.name not in ALLOWED_CURVES:
            raise PlatformCertificateError(
                f"the key uses the curve {private_key.curve.name}; use P-256 or P-384")
        return
    raise PlatformCertificateError(
        f"the key is {type(private_key).__name__}; browsers accept only RSA and ECDSA keys")
