"""The connection pool hands out working connections after a server-side disconnect."""

from __future__ import annotations

import psycopg
import pytest

from service.errors import Unavailable
from service.store import database as database_module
from service.store.database import Database


def _terminate_backends(database_url: str, application_name: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = %s", (application_name,))


def test_idle_connection_checked_and_replaced(database_url: str, monkeypatch) -> None:
    monkeypatch.setattr(database_module, "CHECK_AFTER_IDLE_SECONDS", 0.0)
    database = Database(database_url, min_size=1, max_size=1, name="certsvc-test-idle")
    database.open()
    try:
        with database.transaction() as connection:
            connection.execute("SELECT 1")
        _terminate_backends(database_url, "certsvc-test-idle")

        with database.transaction() as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        database.close()


def test_recent_connection_not_checked(database_url: str) -> None:
    database = Database(database_url, min_size=1, max_size=1, name="certsvc-test-recent")
    database.open()
    try:
        with database.transaction() as connection:
            connection.execute("SELECT 1")
        _terminate_backends(database_url, "certsvc-test-recent")

        # Used a moment ago, the connection goes out unchecked: one call fails...
        with pytest.raises(Unavailable), database.read() as connection:
            connection.execute("SELECT 1")
        # ...and the pool replaces the broken connection for the next one.
        with database.read() as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
    finally:
        database.close()
