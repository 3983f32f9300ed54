"""Queries on the certificates table."""

from __future__ import annotations

import dataclasses
import datetime
import uuid

import psycopg
from psycopg.rows import class_row

from service.store.records import CertificateRecord

_COLUMNS = """id, domain_id, source, hostnames, chain_pem, private_key_sealed, key_type,
              not_before, not_after, issuer, serial_number, sha256_fingerprint, warnings,
              issuance_id, created_at"""

_FIELDS = [name.strip() for name in _COLUMNS.split(",")]

# The domain of a hostname and its active certificate (NULL columns when it has none),
# in one round trip. The benchmarks run this same text through psycopg directly.
SERVING_CERTIFICATE_QUERY = f"""
    SELECT d.app_id, d.status, {", ".join(f"c.{name}" for name in _FIELDS)}
    FROM domains d LEFT JOIN certificates c ON c.id = d.certificate_id
    WHERE d.hostname = %s
"""


@dataclasses.dataclass(frozen=True)
class NewCertificate:
    """A verified certificate with its sealed key, ready to insert."""

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
    issuance_id: uuid.UUID | None = None


def insert_certificate(connection: psycopg.Connection,
                       certificate: NewCertificate) -> CertificateRecord:
    fields = dataclasses.asdict(certificate)
    names = ", ".join(fields)
    placeholders = ", ".join(f"%({name})s" for name in fields)
    with connection.cursor(row_factory=class_row(CertificateRecord)) as cursor:
        record = cursor.execute(
            f"INSERT INTO certificates ({names}) VALUES ({placeholders}) RETURNING {_COLUMNS}",
            fields,
        ).fetchone()
    if record is None:
        raise LookupError("INSERT ... RETURNING returned no row")
    return record


@dataclasses.dataclass(frozen=True)
class ServingCertificate:
    """A domain's owner and status with the certificate that serves it now, if any."""

    hostname: str
    app_id: str
    domain_status: str
    certificate: CertificateRecord | None


def get_serving_certificate(connection: psycopg.Connection,
                            hostname: str) -> ServingCertificate | None:
    """Return what serves a normal-form hostname now, or None when no domain has it."""
    row = connection.execute(SERVING_CERTIFICATE_QUERY, (hostname,)).fetchone()
    if row is None:
        return None
    app_id, status, certificate_id = row[0], row[1], row[2]
    certificate = (None if certificate_id is None
                   else CertificateRecord(**dict(zip(_FIELDS, row[2:]))))
    return ServingCertificate(hostname=hostname, app_id=app_id, domain_status=status,
                              certificate=certificate)


def get_certificate(connection: psycopg.Connection,
                    certificate_id: uuid.UUID) -> CertificateRecord | None:
    with connection.cursor(row_factory=class_row(CertificateRecord)) as cursor:
        return cursor.execute(
            f"SELECT {_COLUMNS} FROM certificates WHERE id = %s", (certificate_id,)
        ).fetchone()
