"""Rows of the certsvc tables as typed records."""

from __future__ import annotations

import dataclasses
import datetime
import uuid


@dataclasses.dataclass(frozen=True)
class DomainRecord:
    id: uuid.UUID
    hostname: str
    unicode_hostname: str
    app_id: str
    wildcard: bool
    status: str
    force_https: bool
    last_error: str
    certificate_id: uuid.UUID | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    # From the active certificate, when there is one.
    certificate_source: str | None = None
    certificate_not_after: datetime.datetime | None = None
    platform: bool = False
    """One label under CERTSVC_PLATFORM_DOMAIN, served by the platform certificate."""
    certificate_renew_after: datetime.datetime | None = None
    serving_wildcard: str | None = None
    """The wildcard domain whose certificate serves this hostname, when it has none of its own."""

    @property
    def effective_status(self) -> str:
        """The status to report: ACTIVE while a wildcard domain's valid certificate serves it."""
        return self.status_at(datetime.datetime.now(datetime.timezone.utc))

    def status_at(self, now: datetime.datetime) -> str:
        """Return the status to report at the time now (see effective_status)."""
        if (self.serving_wildcard and self.status in ("PENDING", "FAILED")
                and self.certificate_not_after is not None
                and self.certificate_not_after > now):
            return "ACTIVE"
        return self.status


@dataclasses.dataclass(frozen=True)
class CertificateRecord:
    id: uuid.UUID
    domain_id: uuid.UUID
    source: str
    hostnames: list[str]
    chain_pem: str
    private_key_sealed: bytes
    key_type: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    issuer: str
    serial_number: str
    sha256_fingerprint: str
    warnings: list[str]
    issuance_id: uuid.UUID | None
    created_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class IssuanceRecord:
    id: uuid.UUID
    domain_id: uuid.UUID
    hostname: str
    state: str
    attempt: int
    error: str
    next_attempt_at: datetime.datetime | None
    order_url: str | None
    job_id: str | None
    certificate_id: uuid.UUID | None
    created_at: datetime.datetime
    updated_at: datetime.datetime

    @property
    def finished(self) -> bool:
        return self.state in FINAL_ISSUANCE_STATES


FINAL_ISSUANCE_STATES = frozenset({"SUCCEEDED", "FAILED"})


@dataclasses.dataclass(frozen=True)
class AccountRecord:
    id: uuid.UUID
    directory_url: str
    account_url: str
    private_key_sealed: bytes
    contact: str
    status: str
    created_at: datetime.datetime


@dataclasses.dataclass(frozen=True)
class EventRecord:
    id: int
    domain_id: uuid.UUID
    issuance_id: uuid.UUID | None
    type: str
    message: str
    created_at: datetime.datetime
