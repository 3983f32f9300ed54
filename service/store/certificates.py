"""Queries on the certificates table."""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Sequence

import psycopg
from psycopg.rows import class_row

from service.store.records import CertificateRecord

_COLUMNS = """id, domain_id, source, hostnames, chain_pem, private_key_sealed, key_type,
              not_before, not_after, issuer, serial_number, sha256_fingerprint, warnings,
              issuance_id, created_at"""

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
    renew_after: datetime.datetime | None = None
    """When the scheduler renews it; None for certificates certsvc does not renew."""


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


def get_certificate(connection: psycopg.Connection,
                    certificate_id: uuid.UUID) -> CertificateRecord | None:
    with connection.cursor(row_factory=class_row(CertificateRecord)) as cursor:
        return cursor.execute(
            f"SELECT {_COLUMNS} FROM certificates WHERE id = %s", (certificate_id,)
        ).fetchone()


@dataclasses.dataclass(frozen=True)
class ServingCandidate:
    """A domain that may serve a hostname, with its active certificate if it has one."""

    id: uuid.UUID
    hostname: str
    app_id: str
    status: str
    platform: bool
    certificate: CertificateRecord | None


_CERTIFICATE_COLUMNS_OF_C = ", ".join(f"c.{name.strip()}" for name in _COLUMNS.split(","))

# The benchmarks run this same text through psycopg directly, as GetCertificate's limit.
SERVING_CANDIDATES_QUERY = f"""
    SELECT d.id, d.hostname, d.app_id, d.status, d.platform, {_CERTIFICATE_COLUMNS_OF_C}
    FROM domains d LEFT JOIN certificates c ON c.id = d.certificate_id
    WHERE d.hostname = ANY(%s)
"""


def find_serving_candidates(connection: psycopg.Connection,
                            hostnames: Sequence[str]) -> list[ServingCandidate]:
    """Return the domains with any of these hostnames, each with its active certificate.

    This is the lookup behind GetCertificate, the edge routers' hot path: one round trip
    on the unique index of domains.hostname and the primary key of certificates, for
    the hostnames of every call that waits for it (service.serving_lookup).
    """
    rows = connection.execute(SERVING_CANDIDATES_QUERY, (list(hostnames),)).fetchall()
    return [ServingCandidate(*row[:5], CertificateRecord(*row[5:]) if row[5] is not None else None)
            for row in rows]
