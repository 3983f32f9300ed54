"""Reading a domain's active certificate, with its private key for callers allowed to."""

from __future__ import annotations

import dataclasses
import logging

from cryptography.hazmat.primitives import serialization

from service.backends import Backends
from service.callers import Caller
from service.domains import parse_hostname
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
    serving = find_serving_certificate(backends, hostname_text)
    if serving is None or not caller.may_see_app(serving.app_id):
        hostname = parse_hostname(hostname_text).ascii
        raise NotFound(f"domain {hostname} not found; add it with AddDomain first")
    record = serving.certificate
    if record is None:
        raise NotFound(
            f"{serving.hostname} has no certificate yet (status {serving.domain_status}); request "
            "one with RequestCertificate or upload one with UploadCertificate"
        )
    if not include_private_key:
        return CertificateView(record, "")
    try:
        key_der = backends.keyring.unseal(record.private_key_sealed,
                                          certificate_key_associated_data(record.domain_id))
    except UnsealError as error:
        logger.error("cannot unseal private key certificate_id=%s hostname=%s: %s",
                     record.id, serving.hostname, error)
        raise DataLoss(f"the private key of {serving.hostname} cannot be decrypted: {error}") from None
    key = serialization.load_der_private_key(key_der, password=None)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return CertificateView(record, key_pem)


def find_serving_certificate(backends: Backends,
                             hostname_text: str) -> certificate_rows.ServingCertificate | None:
    """Return the domain and active certificate of a hostname, from the cache when it has them.

    Only domains with a certificate are cached. A hostname already in normal form is
    looked up before it is normalized: normalizing a normal form returns it unchanged,
    and the cache holds normal forms only.
    """
    cache = backends.certificate_cache
    if cache is not None:
        cached = cache.get(hostname_text)
        if cached is not None:
            return cached
    hostname = parse_hostname(hostname_text).ascii
    if cache is not None and hostname != hostname_text:
        cached = cache.get(hostname)
        if cached is not None:
            return cached
    version = cache.version() if cache is not None else 0
    with backends.database.read() as connection:
        serving = certificate_rows.get_serving_certificate(connection, hostname)
    if cache is not None and serving is not None and serving.certificate is not None:
        cache.put(serving, version)
    return serving
