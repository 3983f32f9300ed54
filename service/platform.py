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

from service.certificate_details import (CertificateDetails, chain_to_pem, describe,
                                         seal_private_key)
from service.encryption import Keyring
from service.errors import InvalidArgument
from service.event_types import EventType
from service.sealed_columns import platform_key_associated_data
from service.store import platform_certificates as platform_rows
from service.store.database import Database
from service.validation.certificate_upload import ValidatedUpload, validate_upload
from service.validation.hostname import Hostname
from service.validation.problems import UploadRejected
from service.validation.trust_anchors import TrustAnchors

logger = logging.getLogger(__name__)

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
                                 chain_pem: bytes, key_pem: bytes, anchors: TrustAnchors,
                                 passphrase: str = "") -> InstalledPlatformCertificate:
    """Verify and store the platform's wildcard certificate and activate platform hostnames.

    passphrase opens an encrypted key.
    """
    upload = _verify(platform_domain, chain_pem, key_pem, anchors, passphrase)
    for warning in upload.warnings:
        logger.info("platform certificate accepted with a change: %s", warning)
    chain = upload.chain
    details = describe(chain[0])
    certificate_id = uuid.uuid4()
    sealed_key = seal_private_key(keyring, upload.private_key,
                                  platform_key_associated_data(certificate_id))
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


def _verify(platform_domain: str, chain_pem: bytes, key_pem: bytes, anchors: TrustAnchors,
            passphrase: str) -> ValidatedUpload:
    """Check the files by the rules of an uploaded certificate for *.platform_domain."""
    try:
        return validate_upload(f"*.{platform_domain}", chain_pem.decode("utf-8", "replace"),
                               key_pem.decode("utf-8", "replace"), passphrase, anchors,
                               datetime.datetime.now(datetime.timezone.utc))
    except UploadRejected as rejected:
        raise PlatformCertificateError(
            " ".join(f"({number}) {problem.message}"
                     for number, problem in enumerate(rejected.problems, start=1))) from None
