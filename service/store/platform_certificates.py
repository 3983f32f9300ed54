"""Queries on the platform_certificates table: the platform's wildcard certificates."""

from __future__ import annotations

import dataclasses
import datetime
import uuid

import psycopg
from psycopg.rows import class_row, dict_row

from service.store.records import CertificateRecord

_COLUMNS = """id, hostnames, chain_pem, private_key_sealed, key_type, not_before, not_after,
              issuer, serial_number, sha256_fingerprint, created_at"""


@dataclasses.dataclass(frozen=True)
class NewPlatformCertificate:
    id: uuid.UUID
    platform_domain: str
    hostnames: list[str]
    chain_pem: str
    private_key_sealed: bytes
    key_type: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    issuer: str
    serial_number: str
    sha256_fingerprint: str


def insert_platform_certificate(connection: psycopg.Connection,
                                certificate: NewPlatformCertificate) -> None:
    fields = dataclasses.asdict(certificate)
    names = ", ".join(fields)
    placeholders = ", ".join(f"%({name})s" for name in fields)
    connection.execute(f"INSERT INTO platform_certificates ({names}) VALUES ({placeholders})",
                       fields)


def is_installed(connection: psycopg.Connection, platform_domain: str) -> bool:
    """Return whether a certificate was ever installed for platform_domain."""
    row = connection.execute(
        "SELECT 1 FROM platform_certificates WHERE platform_domain = %s LIMIT 1",
        (platform_domain,),
    ).fetchone()
    return row is not None


def get_newest(connection: psycopg.Connection, platform_domain: str,
               domain_id: uuid.UUID) -> CertificateRecord | None:
    """Return the newest platform certificate as the certificate that serves domain_id."""
    with connection.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute(
            f"""
            SELECT {_COLUMNS} FROM platform_certificates WHERE platform_domain = %s
            ORDER BY created_at DESC LIMIT 1
            """,
            (platform_domain,),
        ).fetchone()
    if row is None:
        return None
    return CertificateRecord(domain_id=domain_id, source="PLATFORM", warnings=[],
                             issuance_id=None, **row)


def activate_platform_domains(connection: psycopg.Connection, platform_domain: str,
                              event_type: str, message: str) -> int:
    """Mark every platform hostname under platform_domain ACTIVE; return how many there are."""
    rows = connection.execute(
        """
        UPDATE domains SET status = 'ACTIVE', last_error = '', updated_at = now()
        WHERE platform AND substr(hostname, strpos(hostname, '.') + 1) = %s
        RETURNING id
        """,
        (platform_domain,),
    ).fetchall()
    for (domain_id,) in rows:
        connection.execute(
            "INSERT INTO events (domain_id, type, message) VALUES (%s, %s, %s)",
            (domain_id, event_type, message),
        )
    return len(rows)


@dataclasses.dataclass(frozen=True)
class ServingPlatformCertificate:
    id: uuid.UUID
    platform_domain: str
    not_after: datetime.datetime


def list_expiring(connection: psycopg.Connection,
                  horizon: datetime.timedelta) -> list[ServingPlatformCertificate]:
    """Return the serving (newest) platform certificate of each platform domain that
    expires within horizon."""
    with connection.cursor(row_factory=class_row(ServingPlatformCertificate)) as cursor:
        return cursor.execute(
            """
            SELECT id, platform_domain, not_after FROM (
                SELECT DISTINCT ON (platform_domain) id, platform_domain, not_after
                FROM platform_certificates ORDER BY platform_domain, created_at DESC
            ) serving
            WHERE not_after <= now() + %s ORDER BY not_after
            """,
            (horizon,),
        ).fetchall()


def add_expiry_warning(connection: psycopg.Connection, certificate_id: uuid.UUID,
                       days: int) -> bool:
    """Record that the warning for a threshold was sent; return False if it was already."""
    row = connection.execute(
        """
        INSERT INTO platform_certificate_expiry_warnings (platform_certificate_id, days)
        VALUES (%s, %s) ON CONFLICT DO NOTHING RETURNING days
        """,
        (certificate_id, days),
    ).fetchone()
    return row is not None
