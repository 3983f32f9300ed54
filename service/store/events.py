"""Queries on the events table: each domain's timeline."""

from __future__ import annotations

import uuid

import psycopg
from psycopg.rows import class_row

from service.store.records import EventRecord


def add_event(connection: psycopg.Connection, domain_id: uuid.UUID, event_type: str,
              message: str, issuance_id: uuid.UUID | None = None) -> None:
    connection.execute(
        "INSERT INTO events (domain_id, issuance_id, type, message) VALUES (%s, %s, %s, %s)",
        (domain_id, issuance_id, event_type, message),
    )


def list_events(connection: psycopg.Connection, domain_id: uuid.UUID, *,
                before_id: int | None, limit: int) -> list[EventRecord]:
    """Return up to limit events of a domain, newest first, older than before_id if given."""
    with connection.cursor(row_factory=class_row(EventRecord)) as cursor:
        return cursor.execute(
            """
            SELECT id, domain_id, issuance_id, type, message, created_at FROM events
            WHERE domain_id = %s AND (%s::bigint IS NULL OR id < %s)
            ORDER BY id DESC LIMIT %s
            """,
            (domain_id, before_id, before_id, limit),
        ).fetchall()
