"""Queries on scheduler_tasks: the next run of each periodic job, shared by all schedulers."""

from __future__ import annotations

import datetime

import psycopg


def claim_run(connection: psycopg.Connection, name: str, interval: datetime.timedelta,
              scheduler_name: str) -> bool:
    """Claim the due run of a periodic job and book the next one; return whether it was due.

    One statement moves next_run_at forward, so of several schedulers asking at once
    exactly one gets the run.
    """
    row = connection.execute(
        """
        INSERT INTO scheduler_tasks (name, next_run_at, last_started_at, last_run_by)
        VALUES (%(name)s, now() + %(interval)s, now(), %(by)s)
        ON CONFLICT (name) DO UPDATE
            SET next_run_at = now() + %(interval)s, last_started_at = now(), last_run_by = %(by)s
            WHERE scheduler_tasks.next_run_at <= now()
        RETURNING name
        """,
        {"name": name, "interval": interval, "by": scheduler_name},
    ).fetchone()
    return row is not None


def record_finish(connection: psycopg.Connection, name: str, error: str) -> None:
    connection.execute(
        "UPDATE scheduler_tasks SET last_finished_at = now(), last_error = %s WHERE name = %s",
        (error, name),
    )
