"""Queries behind renewal: certificates due, renewal information to fetch, expiry warnings."""

from __future__ import annotations

import dataclasses
import datetime
import uuid
from collections.abc import Iterator

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


@dataclasses.dataclass(frozen=True)
class DueCertificate:
    """A Let's Encrypt certificate past its renewal time, with the domain it serves."""

    domain_id: uuid.UUID
    hostname: str
    certificate_id: uuid.UUID
    not_after: datetime.datetime
    renew_after: datetime.datetime


# Indexes behind it: certificates_lets_encrypt_renew_after finds the due certificates,
# domains_certificate_id their domains, issuances_one_in_flight and
# issuances_failed_updated_at the issuances that hold a renewal back.
DUE_FOR_RENEWAL_QUERY = """
    SELECT d.id AS domain_id, d.hostname, c.id AS certificate_id, c.not_after, c.renew_after
    FROM certificates c JOIN domains d ON d.certificate_id = c.id
    WHERE c.source = 'LETS_ENCRYPT' AND c.renew_after <= now() AND NOT d.wildcard
      AND NOT EXISTS (
          SELECT 1 FROM issuances i
          WHERE i.domain_id = d.id AND i.state NOT IN ('SUCCEEDED', 'FAILED'))
      AND NOT EXISTS (
          SELECT 1 FROM issuances i
          WHERE i.domain_id = d.id AND i.state = 'FAILED'
            AND i.updated_at > now() - %(failed_cooldown)s)
    ORDER BY c.renew_after LIMIT %(limit)s
"""


def stream_due_for_renewal(connection: psycopg.Connection, *,
                           failed_cooldown: datetime.timedelta, limit: int,
                           batch_size: int) -> Iterator[list[DueCertificate]]:
    """Yield Let's Encrypt certificates past their renewal time, earliest first, in batches.

    Skipped: wildcard domains, domains with an issuance in flight, and domains whose
    last issuance failed less than failed_cooldown ago. The rows come from a server-side
    cursor, batch_size at a time, so memory does not grow with limit. The cursor lives
    in the caller's transaction, which must stay open until the iterator is exhausted.
    """
    with connection.cursor(name="due_for_renewal",
                           row_factory=class_row(DueCertificate)) as cursor:
        cursor.itersize = batch_size
        cursor.execute(DUE_FOR_RENEWAL_QUERY,
                       {"failed_cooldown": failed_cooldown, "limit": limit})
        while batch := cursor.fetchmany(batch_size):
            yield batch


def list_due_for_renewal_info(connection: psycopg.Connection,
                              limit: int) -> list[ServingCertificate]:
    """Return unexpired Let's Encrypt certificates whose renewal information is due a fetch.

    Never-fetched ones come first. The coalesce() expressions match the index
    certificates_lets_encrypt_renewal_info_due, so the scan stops at the first row
    not due yet.
    """
    with connection.cursor(row_factory=class_row(ServingCertificate)) as cursor:
        return cursor.execute(
            _SELECT_SERVING + """
            WHERE c.source = 'LETS_ENCRYPT' AND c.not_after > now()
              AND coalesce(c.renewal_info_next_check_at, '-infinity') <= now()
            ORDER BY coalesce(c.renewal_info_next_check_at, '-infinity') LIMIT %s
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
