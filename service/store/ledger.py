"""Queries on acme_ledger: orders placed and validations failed, per CA directory."""

from __future__ import annotations

import dataclasses
import datetime
import uuid

import psycopg


@dataclasses.dataclass(frozen=True)
class LedgerEntry:
    """What one order or failed validation is counted against."""

    directory_url: str
    account_id: uuid.UUID | None
    kind: str
    hostname: str
    registered_domain: str
    renewal: bool = False
    issuance_id: uuid.UUID | None = None


# The column that each rate-limit scope counts by.
_SCOPE_COLUMNS = {"account": "account_id", "registered_domain": "registered_domain",
                  "hostname": "hostname"}


def add_entry(connection: psycopg.Connection, entry: LedgerEntry) -> None:
    connection.execute(
        """
        INSERT INTO acme_ledger (directory_url, account_id, kind, hostname, registered_domain,
                                 renewal, issuance_id)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        """,
        (entry.directory_url, entry.account_id, entry.kind, entry.hostname,
         entry.registered_domain, entry.renewal, entry.issuance_id),
    )


def entry_times(connection: psycopg.Connection, *, directory_url: str, kind: str, scope: str,
                value: object, since: datetime.datetime,
                exclude_renewals: bool = False) -> list[datetime.datetime]:
    """Return the times of the entries of one kind and scope value since a time, oldest first."""
    column = _SCOPE_COLUMNS[scope]
    renewal_filter = "AND NOT renewal" if exclude_renewals else ""
    rows = connection.execute(
        f"""
        SELECT created_at FROM acme_ledger
        WHERE directory_url = %s AND kind = %s AND {column} = %s AND created_at > %s
        {renewal_filter}
        ORDER BY created_at
        """,
        (directory_url, kind, value, since),
    ).fetchall()
    return [row[0] for row in rows]


def count_entries(connection: psycopg.Connection, *, directory_url: str, kind: str,
                  hostname: str | None = None, issuance_id: uuid.UUID | None = None) -> int:
    """Count entries of one kind for a hostname or an issuance (for tests and operators)."""
    row = connection.execute(
        """
        SELECT count(*) FROM acme_ledger
        WHERE directory_url = %s AND kind = %s
          AND (%s::text IS NULL OR hostname = %s) AND (%s::uuid IS NULL OR issuance_id = %s)
        """,
        (directory_url, kind, hostname, hostname, issuance_id, issuance_id),
    ).fetchone()
    return int(row[0]) if row else 0


def prune(connection: psycopg.Connection, before: datetime.datetime) -> int:
    """Delete entries older than before; return how many went."""
    return connection.execute("DELETE FROM acme_ledger WHERE created_at < %s", (before,)).rowcount
