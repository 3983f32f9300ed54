"""Reading the certificate that serves a hostname, with its private key for callers allowed to."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import uuid

import psycopg
from cryptography.hazmat.primitives import serialization

from service.backends import Backends
from service.callers import Caller
from service.encryption import UnsealError
from service.errors import DataLoss, NotFound, PermissionDenied
from service.platform import PENDING_REASON, platform_domain_of
from service.sealed_columns import certificate_key_associated_data, platform_key_associated_data
from service.store import certificates as certificate_rows
from service.store import platform_certificates as platform_rows
from service.store.records import CertificateRecord
from service.validation.hostname import Hostname

logger = logging.getLogger(__name__)

# An uploaded certificate that expires within this many days gets a warning: nothing
# renews it, so its owner has to upload the next one in time.
CUSTOM_EXPIRY_WARNING_DAYS = 30


@dataclasses.dataclass(frozen=True)
class CertificateView:
    record: CertificateRecord
    private_key_pem: str
    """Empty unless the caller asked for the key and may read it."""
    warnings: list[str]
    """The stored warnings plus conditions of the moment, such as an expiry that is near."""


def certificate_warnings(record: CertificateRecord, now: datetime.datetime) -> list[str]:
    """Return the stored warnings of a certificate plus an expiry warning for uploads."""
    warnings = list(record.warnings)
    if record.source != "CUSTOM":
        return warnings
    remaining = record.not_after - now
    when = f"{record.not_after:%Y-%m-%d %H:%M} UTC"
    if remaining <= datetime.timedelta(0):
        warnings.append(f"certificate expired on {when}; upload a renewed certificate")
    elif remaining < datetime.timedelta(days=CUSTOM_EXPIRY_WARNING_DAYS):
        days = remaining.days
        span = "less than a day" if days == 0 else f"{days} day{'s' if days != 1 else ''}"
        warnings.append(f"certificate expires in {span} (on {when}); upload a renewed "
                        "certificate before then, because uploaded certificates are not "
                        "renewed automatically")
    return warnings


def warnings_change_at(record: CertificateRecord,
                       now: datetime.datetime) -> datetime.datetime | None:
    """Return when certificate_warnings() next returns other text, or None for never.

    Only uploaded certificates get the time-dependent expiry warning: it appears
    CUSTOM_EXPIRY_WARNING_DAYS before expiry, counts the remaining whole days down and
    turns into "expired" at not_after.
    """
    if record.source != "CUSTOM":
        return None
    remaining = record.not_after - now
    if remaining <= datetime.timedelta(0):
        return None
    warning_period = datetime.timedelta(days=CUSTOM_EXPIRY_WARNING_DAYS)
    if remaining >= warning_period:
        return record.not_after - warning_period
    return record.not_after - datetime.timedelta(days=remaining.days)


def check_private_key_permission(caller: Caller, include_private_key: bool) -> None:
    if include_private_key and not caller.may_read_private_keys:
        raise PermissionDenied("this caller may not read private keys; ask for the certificate "
                               "without include_private_key")


def find_serving(backends: Backends, caller: Caller,
                 hostname: Hostname) -> certificate_rows.ServingCandidate:
    """Look up what serves a hostname in Postgres.

    That is the hostname's own domain with its certificate (for a platform hostname,
    the platform's newest certificate) or, when it has none, the wildcard domain one
    label up ("*.example.com" serves "shop.example.com"). Raises NotFound when
    nothing the caller may see serves it. The result's certificate is never None.

    One query reads the candidates, shared with the other calls of the moment when the
    process has a ServingLookup. A platform hostname takes one more for the platform
    certificate.
    """
    parent = hostname.ascii.partition(".")[2]
    wildcard = f"*.{parent}" if not hostname.wildcard and "." in parent else None
    candidates = (hostname.ascii,) if wildcard is None else (hostname.ascii, wildcard)
    found = {row.hostname: row for row in _read_candidates(backends, candidates)}
    own = found.get(hostname.ascii)
    if own is not None and wildcard in found and found[wildcard].app_id != own.app_id:
        # A hostname with a domain of its own is served only by a wildcard domain of the
        # same app, as GetDomain reports it, for every caller.
        del found[wildcard]
    visible = {name: row for name, row in found.items() if caller.may_see_app(row.app_id)}
    served = [visible[name] for name in candidates if name in visible]
    if any(row.platform for row in served):
        with backends.database.read() as connection:
            served = [_with_platform_certificate(connection, row) for row in served]
    serving = next((row for row in served if row.certificate is not None), None)
    if serving is not None:
        return serving

    domain = visible.get(hostname.ascii)
    if domain is None:
        raise NotFound(f"domain {hostname.ascii} not found; add it with AddDomain first")
    if domain.platform:
        raise NotFound(f"{domain.hostname} is a platform hostname and the platform "
                       f"certificate is not installed yet; {PENDING_REASON}")
    raise NotFound(
        f"{domain.hostname} has no certificate yet (status {domain.status}); request one "
        "with RequestCertificate or upload one with UploadCertificate"
    )


def cacheable(serving: certificate_rows.ServingCandidate, hostname: Hostname) -> bool:
    """Return whether a response may be cached under the hostname it was asked for.

    Only a domain served by its own certificate qualifies: what serves it then depends
    on its own row and certificate alone, whose changes the cache hears of. Wildcard
    and platform results depend on other rows and are looked up every time.
    """
    return serving.hostname == hostname.ascii and not serving.platform


def serving_key_pem(backends: Backends, caller: Caller,
                    serving: certificate_rows.ServingCandidate) -> str:
    """Return the private key of the certificate that serves a hostname, as PKCS#8 PEM.

    The caller must already have passed check_private_key_permission().
    """
    record = serving.certificate
    if serving.platform and not caller.is_operator:
        raise PermissionDenied(
            f"{serving.hostname} is served by the platform's wildcard certificate, whose key "
            "serves every platform hostname; only operators may read it, so ask without "
            "include_private_key")
    associated_data = (platform_key_associated_data(record.id) if serving.platform
                       else certificate_key_associated_data(record.domain_id))
    return unseal_key_pem(backends, record.id, record.private_key_sealed, associated_data,
                          serving.hostname)


def _read_candidates(backends: Backends, hostnames: tuple[str, ...]
                     ) -> list[certificate_rows.ServingCandidate]:
    if backends.serving_lookup is not None:
        return backends.serving_lookup.candidates(hostnames)
    with backends.database.read() as connection:
        return certificate_rows.find_serving_candidates(connection, hostnames)


def _with_platform_certificate(connection: psycopg.Connection,
                               row: certificate_rows.ServingCandidate
                               ) -> certificate_rows.ServingCandidate:
    """Give a platform hostname the platform's newest certificate as its own."""
    if not row.platform:
        return row
    record = platform_rows.get_newest(connection, platform_domain_of(row.hostname), row.id)
    return dataclasses.replace(row, certificate=record)


def unseal_key_pem(backends: Backends, certificate_id: uuid.UUID, private_key_sealed: bytes,
                   associated_data: bytes, hostname: str) -> str:
    """Open a certificate's sealed private key and return it as PKCS#8 PEM."""
    try:
        key_der = backends.keyring.unseal(private_key_sealed, associated_data)
    except UnsealError as error:
        logger.error("cannot unseal private key certificate_id=%s hostname=%s: %s",
                     certificate_id, hostname, error)
        raise DataLoss(f"the private key of {hostname} cannot be decrypted: {error}") from None
    key = serialization.load_der_private_key(key_der, password=None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()
