"""Versioned SQL migrations: files NNNN_name.sql in service/store/migrations."""

from __future__ import annotations

import logging
import re
from importlib import resources

import psycopg

logger = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Advisory lock key that makes concurrent `certsvc migrate` runs take turns.
_MIGRATION_LOCK = 0x6365727473766300


def available_migrations() -> list[tuple[int, str, str]]:
    """Return (version, file name, SQL) of every migration file, in version order."""
    migrations = []
    for entry in resources.files("service.store").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            migrations.append((int(match.group(1)), entry.name, entry.read_text()))
    migrations.sort()
    versions = [version for version, _, _ in migrations]
    if len(versions) != len(set(versions)):
        raise RuntimeError(f"two migration files share a version number: {versions}")
    return migrations


def migrate(database_url: str) -> list[str]:
    """Apply the migrations the database lacks, each in its own transaction.

    Returns the names of the files applied; running it again applies nothing.
    """
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            connection.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            done = {row[0] for row in connection.execute("SELECT version FROM schema_migrations")}
            for version, name, sql in available_migrations():
                if version in done:
                    continue
                with connection.transaction():
                    connection.execute(sql)
                    connection.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (version, name),
                    )
                logger.info("applied migration %s", name)
                applied.append(name)
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied


def missing_migrations(connection: psycopg.Connection) -> list[str]:
    """Return the file names of the migrations the database lacks, in version order."""
    table = connection.execute("SELECT to_regclass('schema_migrations')").fetchone()[0]
    done = (set() if table is None else
            {row[0] for row in connection.execute("SELECT version FROM schema_migrations")})
    return [name for version, name, _ in available_migrations() if version not in done]
