"""Queries on the acme_accounts table."""

from __future__ import annotations

import uuid

import psycopg
from psycopg.rows import class_row

from service.store.records import AccountRecord

_COLUMNS = "id, directory_url, account_url, private_key_sealed, contact, status, created_at"


def get_valid_account(connection: psycopg.Connection, directory_url: str) -> AccountRecord | None:
    with connection.cursor(row_factory=class_row(AccountRecord)) as cursor:
        return cursor.execute(
            f"SELECT {_COLUMNS} FROM acme_accounts WHERE directory_url = %s AND status = 'valid'",
            (directory_url,),
        ).fetchone()


def insert_account(connection: psycopg.Connection, *, account_id: uuid.UUID, directory_url: str,
                   account_url: str, private_key_sealed: bytes, contact: str) -> AccountRecord:
    with connection.cursor(row_factory=class_row(AccountRecord)) as cursor:
        record = cursor.execute(
            f"""
            INSERT INTO acme_accounts (id, directory_url, account_url, private_key_sealed, contact)
            VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}
            """,
            (account_id, directory_url, account_url, private_key_sealed, contact),
        ).fetchone()
    if record is None:
        raise LookupError("INSERT ... RETURNING returned no row")
    return record


def deactivate_account(connection: psycopg.Connection, account_id: uuid.UUID) -> None:
    """Mark an account unusable, for example after the CA forgot it."""
    connection.execute(
        "UPDATE acme_accounts SET status = 'deactivated' WHERE id = %s", (account_id,)
    )
