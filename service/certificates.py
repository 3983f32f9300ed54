"""Reading a domain's active certificate, with its private key for callers allowed to."""

from __future__ import annotations

import dataclasses
import logging

from cryptography.hazmat.primitives import serialization

from service.backends import Backends
from service.callers import Caller
from service.domains import find_visible_domain
from service.encryption import UnsealError
from service.errors import DataLoss, NotFound, PermissionDenied
from service.platform import PENDING_REASON, platform_domain_of, platform_key_associated_data
from service.store import certificates as certificate_rows
from service.store import platform_certificates as platform_rows
from service.store.records import CertificateRecord

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CertificateView:
    record: CertificateRecord
    private_key_pem: str
    """Empty unless the caller asked for the key and may read it."""


def certificate_key_associated_data(domain_id: object) -> bytes:
    """Associated data that binds a sealed certificate key to its domain row."""
    return f"certsvc/certificate-key/domain/{domain_id}".encode()


def get_certificate(backends: Backends, caller: Caller, hostname_text: str,
                    include_private_key: bool) -> CertificateView:
    """Return the certificate that serves a hostname now."""
    if include_private_key and not caller.may_read_private_keys:
        raise PermissionDenied("this caller may not read private keys; ask for the certificate "
                               "without include_private_key")
    with backends.database.transaction() as connection:
        domain = find_visible_domain(connection, caller, hostname_text)
        if domain.platform:
            record = platform_rows.get_newest(connection, platform_domain_of(domain.hostname),
                                              domain.id)
        else:
            record = (None if domain.certificate_id is None
                      else certificate_rows.get_certificate(connection, domain.certificate_id))
    if record is None and domain.platform:
        raise NotFound(f"{domain.hostname} is a platform hostname and the platform certificate "
                       f"is not installed yet; {PENDING_REASON}")
    if record is None:
        raise NotFound(
            f"{domain.hostname} has no certificate yet (status {domain.status}); request one "
            "with RequestCertificate or upload one with UploadCertificate"
        )
    if not include_private_key:
        return CertificateView(record, "")
    if domain.platform and not caller.is_operator:
        raise PermissionDenied(
            f"{domain.hostname} is served by the platform's wildcard certificate, whose key "
            "serves every platform hostname; only operators may read it, so ask without "
            "include_private_key")
    associated_data = (platform_key_associated_data(record.id) if domain.platform
                       else certificate_key_associated_data(record.domain_id))
    try:
        key_der = backends.keyring.unseal(record.private_key_sealed, associated_data)
    except UnsealError as error:
        logger.error("cannot unseal private key certificate_id=%s hostname=%s: %s",
                     record.id, domain.hostname, error)
        raise DataLoss(f"the private key of {domain.hostname} cannot be decrypted: {error}") from None
    key = serialization.load_der_private_key(key_der, password=None)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return CertificateView(record, key_pem)
