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
from service.store import certificates as certificate_rows
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
        record = (None if domain.certificate_id is None
                  else certificate_rows.get_certificate(connection, domain.certificate_id))
    if record is None:
        raise NotFound(
            f"{domain.hostname} has no certificate yet (status {domain.status}); request one "
            "with RequestCertificate or upload one with UploadCertificate"
        )
    if not include_private_key:
        return CertificateView(record, "")
    try:
        key_der = backends.keyring.unseal(record.private_key_sealed,
                                          certificate_key_associated_data(record.domain_id))
    except UnsealError as error:
        logger.error("cannot unseal private key certificate_id=%s hostname=%s: %s",
                     record.id, domain.hostname, error)
        raise DataLoss(f"the private key of {domain.hostname} cannot be decrypted: {error}") from None
    key = serialization.load_der_private_key(key_der, password=None)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return CertificateView(record, key_pem)
