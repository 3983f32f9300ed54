"""Postgres advisory locks that serialize work on one domain across all workers."""

from __future__ import annotations

import uuid

import psycopg

# First key of the two-key advisory lock form; it keeps certsvc's locks apart from
# those of other applications sharing the database.
_DOMAIN_LOCK_CLASS = 0x63657274  # "cert"
_ACCOUNT_LOCK_CLASS = 0x61636d65  # "acme"
_LEDGER_LOCK_CLASS = 0x6c646772  # "ldgr"
_TASK_LOCK_CLASS = 0x7461736b  # "task"


def _object_key(value: uuid.UUID | str) -> int:
    """Fold a UUID or a string into the signed 32-bit second key of an advisory lock."""
    digest = value.bytes if isinstance(value, uuid.UUID) else uuid.uuid5(uuid.NAMESPACE_URL, value).bytes
    return int.from_bytes(digest[:4], "big", signed=True)


def try_lock_domain(connection: psycopg.Connection, domain_id: uuid.UUID) -> bool:
    """Take the domain's session-level lock on this connection unless another session has it."""
    row = connection.execute(
        "SELECT pg_try_advisory_lock(%s, %s)", (_DOMAIN_LOCK_CLASS, _object_key(domain_id))
    ).fetchone()
    return bool(row and row[0])


def unlock_domain(connection: psycopg.Connection, domain_id: uuid.UUID) -> None:
    connection.execute(
        "SELECT pg_advisory_unlock(%s, %s)", (_DOMAIN_LOCK_CLASS, _object_key(domain_id))
    )


def lock_account_transaction(connection: psycopg.Connection, directory_url: str) -> None:
    """Wait for the transaction-level lock on account creation for one ACME directory."""
    connection.execute(
        "SELECT pg_advisory_xact_lock(%s, %s)", (_ACCOUNT_LOCK_CLASS, _object_key(directory_url))
    )


def lock_ledger_transaction(connection: psycopg.Connection, directory_url: str) -> None:
    """Wait for the transaction-level lock on the rate-limit ledger of one ACME directory.

    Checking the ledger and adding an order to it happen under this lock, so that
    workers ordering at the same time cannot all pass a limit with one slot left.
    """
    connection.execute(
        "SELECT pg_advisory_xact_lock(%s, %s)", (_LEDGER_LOCK_CLASS, _object_key(directory_url))
    )


def try_lock_task(connection: psycopg.Connection, task_name: str) -> bool:
    """Take the session-level lock of a periodic task unless another scheduler runs it."""
    row = connection.execute(
        "SELECT pg_try_advisory_lock(%s, %s)", (_TASK_LOCK_CLASS, _object_key(task_name))
    ).fetchone()
    return bool(row and row[0])


def unlock_task(connection: psycopg.Connection, task_name: str) -> None:
    connection.execute(
        "SELECT pg_advisory_unlock(%s, %s)", (_TASK_LOCK_CLASS, _object_key(task_name))
    )
