"""Queries on the events table: each domain's timeline."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import psycopg
from psycopg.rows import class_row

from service.store.records import EventRecord


def add_event(connection: psycopg.Connection, domain_id: uuid.UUID, event_type: str,
              message: str, issuance_id: uuid.UUID | None = None) -> None:
    connection.execute(
        "INSERT INTO events (domain_id, issuance_id, type, message) VALUES (%s, %s, %s, %s)",
        (domain_id, issuance_id, event_type, message),
    )


def add_events(connection: psycopg.Connection, event_type: str,
               events: Sequence[tuple[uuid.UUID, uuid.UUID | None, str]]) -> None:
    """Insert events of one type in one statement.

    events contains (domain id, issuance id, message) triples.
    """
    connection.execute(
        """
        INSERT INTO events (domain_id, issuance_id, type, message)
        SELECT domain_id, issuance_id, %s, message
        FROM unnest(%s::uuid[], %s::uuid[], %s::text[]) AS batch (domain_id, issuance_id, message)
        """,
        (event_type, [domain_id for domain_id, _, _ in events],
         [issuance_id for _, issuance_id, _ in events], [message for _, _, message in events]),
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
