"""Queries on the issuances table."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence

import psycopg
from psycopg.rows import class_row

from service.store.records import IssuanceRecord

_COLUMNS = """id, domain_id, hostname, state, attempt, error, next_attempt_at, order_url,
              job_id, certificate_id, created_at, updated_at"""
_UPDATABLE = {"state", "attempt", "error", "next_attempt_at", "order_url", "job_id",
              "certificate_id", "order_key_sealed"}


def create_or_get_in_flight(connection: psycopg.Connection, domain_id: uuid.UUID,
                            hostname: str) -> tuple[IssuanceRecord, bool]:
    """Create a QUEUED issuance unless one is in flight; return it and whether it is new.

    The partial unique index issuances_one_in_flight makes concurrent callers agree.
    """
    with connection.cursor(row_factory=class_row(IssuanceRecord)) as cursor:
        created = cursor.execute(
            f"""
            INSERT INTO issuances (domain_id, hostname) VALUES (%s, %s)
            ON CONFLICT (domain_id) WHERE state NOT IN ('SUCCEEDED', 'FAILED') DO NOTHING
            RETURNING {_COLUMNS}
            """,
            (domain_id, hostname),
        ).fetchone()
        if created is not None:
            return created, True
        existing = cursor.execute(
            f"""
            SELECT {_COLUMNS} FROM issuances
            WHERE domain_id = %s AND state NOT IN ('SUCCEEDED', 'FAILED')
            """,
            (domain_id,),
        ).fetchone()
    if existing is None:
        # The in-flight issuance finished between the two statements.
        return create_or_get_in_flight(connection, domain_id, hostname)
    return existing, False


def create_many_in_flight(connection: psycopg.Connection,
                          new_issuances: Sequence[tuple[uuid.UUID, uuid.UUID, uuid.UUID, str]]
                          ) -> list[IssuanceRecord]:
    """Create QUEUED issuances in one statement; return those created, in no given order.

    new_issuances contains (issuance id, domain id, serving certificate id, job id)
    tuples. A domain that has an issuance in flight, that no longer exists, or whose
    serving certificate is no longer the given one, gets none. A domain removed while the
    statement runs raises ForeignKeyViolation, as in create_or_get_in_flight.
    """
    issuance_ids = [issuance_id for issuance_id, _, _, _ in new_issuances]
    domain_ids = [domain_id for _, domain_id, _, _ in new_issuances]
    certificate_ids = [certificate_id for _, _, certificate_id, _ in new_issuances]
    job_ids = [job_id for _, _, _, job_id in new_issuances]
    with connection.cursor(row_factory=class_row(IssuanceRecord)) as cursor:
        return cursor.execute(
            f"""
            INSERT INTO issuances (id, domain_id, hostname, job_id)
            SELECT batch.id, d.id, d.hostname, batch.job_id
            FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::text[])
                AS batch (id, domain_id, certificate_id, job_id)
            JOIN domains d ON d.id = batch.domain_id AND d.certificate_id = batch.certificate_id
            ON CONFLICT (domain_id) WHERE state NOT IN ('SUCCEEDED', 'FAILED') DO NOTHING
            RETURNING {_COLUMNS}
            """,
            (issuance_ids, domain_ids, certificate_ids, job_ids),
        ).fetchall()


def get_issuance(connection: psycopg.Connection, issuance_id: uuid.UUID) -> IssuanceRecord | None:
    with connection.cursor(row_factory=class_row(IssuanceRecord)) as cursor:
        return cursor.execute(
            f"SELECT {_COLUMNS} FROM issuances WHERE id = %s", (issuance_id,)
        ).fetchone()


def lock_issuance(connection: psycopg.Connection, issuance_id: uuid.UUID) -> IssuanceRecord | None:
    """Select an issuance FOR UPDATE inside the caller's transaction."""
    with connection.cursor(row_factory=class_row(IssuanceRecord)) as cursor:
        return cursor.execute(
            f"SELECT {_COLUMNS} FROM issuances WHERE id = %s FOR UPDATE", (issuance_id,)
        ).fetchone()


def update_issuance(connection: psycopg.Connection, issuance_id: uuid.UUID,
                    **columns: object) -> IssuanceRecord:
    """Set the given columns and updated_at; return the updated row."""
    unknown = set(columns) - _UPDATABLE
    if unknown:
        raise ValueError(f"cannot update issuance columns {sorted(unknown)}")
    assignments = ", ".join(f"{name} = %s" for name in columns)
    with connection.cursor(row_factory=class_row(IssuanceRecord)) as cursor:
        record = cursor.execute(
            f"UPDATE issuances SET {assignments}, updated_at = now() WHERE id = %s "
            f"RETURNING {_COLUMNS}",
            (*columns.values(), issuance_id),
        ).fetchone()
    if record is None:
        raise LookupError(f"issuance {issuance_id} does not exist")
    return record


def delete_issuance(connection: psycopg.Connection, issuance_id: uuid.UUID) -> None:
    connection.execute("DELETE FROM issuances WHERE id = %s", (issuance_id,))


def lock_in_flight(connection: psycopg.Connection, domain_id: uuid.UUID) -> IssuanceRecord | None:
    """Select a domain's unfinished issuance FOR UPDATE, or return None when there is none."""
    with connection.cursor(row_factory=class_row(IssuanceRecord)) as cursor:
        return cursor.execute(
            f"""
            SELECT {_COLUMNS} FROM issuances
            WHERE domain_id = %s AND state NOT IN ('SUCCEEDED', 'FAILED') FOR UPDATE
            """,
            (domain_id,),
        ).fetchone()


def get_order_key(connection: psycopg.Connection, issuance_id: uuid.UUID) -> bytes | None:
    """Return the sealed private key of the issuance's current order, if one was stored."""
    row = connection.execute(
        "SELECT order_key_sealed FROM issuances WHERE id = %s", (issuance_id,)
    ).fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


def list_in_flight_unchanged_since(connection: psycopg.Connection, before: datetime.datetime,
                                   limit: int, after: IssuanceRecord | None = None
                                   ) -> list[IssuanceRecord]:
    """Return up to limit unfinished issuances not updated since before, oldest first.

    With after, the list starts behind that issuance (by updated_at, then id), so a
    caller pages through all of them.
    """
    after_key = (after.updated_at, after.id) if after is not None else (None, None)
    with connection.cursor(row_factory=class_row(IssuanceRecord)) as cursor:
        return cursor.execute(
            f"""
            SELECT {_COLUMNS} FROM issuances
            WHERE state NOT IN ('SUCCEEDED', 'FAILED') AND updated_at < %s
              AND (%s::timestamptz IS NULL OR (updated_at, id) > (%s, %s::uuid))
            ORDER BY updated_at, id LIMIT %s
            """,
            (before, after_key[0], after_key[0], after_key[1], limit),
        ).fetchall()
