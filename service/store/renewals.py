"""Queries behind renewal: certificates due, renewal information to fetch, expiry warnings."""

from __future__ import annotations

import dataclasses
import datetime
import uuid

import psycopg
from psycopg.rows import class_row


@dataclasses.dataclass(frozen=True)
class ServingCertificate:
    """A certificate that serves its domain now, with the facts renewal needs."""

    domain_id: uuid.UUID
    hostname: str
    certificate_id: uuid.UUID
    source: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    renew_after: datetime.datetime | None
    chain_pem: str


_SELECT_SERVING = """
    SELECT d.id AS domain_id, d.hostname, c.id AS certificate_id, c.source, c.not_before,
           c.not_after, c.renew_after, c.chain_pem
    FROM domains d JOIN certificates c ON c.id = d.certificate_id
"""


def list_due_for_renewal(connection: psycopg.Connection, *, failed_cooldown: datetime.timedelta,
                         limit: int) -> list[ServingCertificate]:
    """Return Let's Encrypt certificates past their renewal time, earliest first.

    Skipped: wildcard domains, domains with an issuance in flight, and domains whose
    last issuance failed less than failed_cooldown ago.
    """
    with connection.cursor(row_factory=class_row(ServingCertificate)) as cursor:
        return cursor.execute(
            _SELECT_SERVING + """
            WHERE c.source = 'LETS_ENCRYPT' AND c.renew_after <= now() AND NOT d.wildcard
              AND NOT EXISTS (
                  SELECT 1 FROM issuances i
                  WHERE i.domain_id = d.id
                    AND (i.state NOT IN ('SUCCEEDED', 'FAILED')
                         OR (i.state = 'FAILED' AND i.updated_at > now() - %s)))
            ORDER BY c.renew_after LIMIT %s
            """,
            (failed_cooldown, limit),
        ).fetchall()


def list_due_for_renewal_info(connection: psycopg.Connection,
                              limit: int) -> list[ServingCertificate]:
    """Return unexpired Let's Encrypt certificates whose renewal information is due a fetch."""
    with connection.cursor(row_factory=class_row(ServingCertificate)) as cursor:
        return cursor.execute(
            _SELECT_SERVING + """
            WHERE c.source = 'LETS_ENCRYPT' AND c.not_after > now()
              AND (c.renewal_info_next_check_at IS NULL OR c.renewal_info_next_check_at <= now())
            ORDER BY c.renewal_info_next_check_at NULLS FIRST LIMIT %s
            """,
            (limit,),
        ).fetchall()


def set_renewal_info(connection: psycopg.Connection, certificate_id: uuid.UUID, *,
                     renew_after: datetime.datetime | None,
                     next_check_at: datetime.datetime) -> None:
    """Store the next renewal information fetch, and the renewal time it suggested if any."""
    connection.execute(
        """
        UPDATE certificates
        SET renew_after = coalesce(%s, renew_after), renewal_info_next_check_at = %s
        WHERE id = %s
        """,
        (renew_after, next_check_at, certificate_id),
    )


def list_expiring_not_renewing(connection: psycopg.Connection, horizon: datetime.timedelta,
                               limit: int) -> list[ServingCertificate]:
    """Return serving certificates that expire within horizon and are not about to be renewed.

    Uploaded and platform certificates never renew here. A Let's Encrypt certificate
    counts once its renewal time has passed without a successor.
    """
    with connection.cursor(row_factory=class_row(ServingCertificate)) as cursor:
        return cursor.execute(
            _SELECT_SERVING + """
            WHERE c.not_after <= now() + %s
              AND (c.source <> 'LETS_ENCRYPT' OR c.renew_after IS NULL OR c.renew_after <= now())
            ORDER BY c.not_after LIMIT %s
            """,
            (horizon, limit),
        ).fetchall()


def add_expiry_warning(connection: psycopg.Connection, certificate_id: uuid.UUID,
                       days: int) -> bool:
    """Record that the warning for a threshold was sent; return False if it was already."""
    row = connection.execute(
        """
        INSERT INTO certificate_expiry_warnings (certificate_id, days) VALUES (%s, %s)
        ON CONFLICT DO NOTHING RETURNING days
        """,
        (certificate_id, days),
    ).fetchone()
    return row is not None
