"""Processes refuse to start on a database that certsvc's migrations have not reached."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from devtools import stack
from devtools.pebble import free_port
from service.backends import Backends
from service.config import ConfigError, Settings
from service.store.migrate import available_migrations, migrate


@pytest.fixture()
def empty_database() -> Iterator[str]:
    name = stack.unique_name("certsvc_unmigrated")
    url = stack.create_database(name)
    yield url
    stack.drop_database(name)


def _settings(database_url: str, redis_prefix: str) -> Settings:
    return Settings.from_env({"CERTSVC_DATABASE_URL": database_url,
                              "CERTSVC_REDIS_URL": stack.REDIS_URL,
                              "CERTSVC_REDIS_PREFIX": redis_prefix, "CERTSVC_DEV_INSECURE": "1"})


def test_empty_database_names_migrate(empty_database: str, redis_prefix: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Backends.connect(_settings(empty_database, redis_prefix))

    first = available_migrations()[0][1]
    assert "run `certsvc migrate`" in str(raised.value)
    assert f"lacks {len(available_migrations())} of certsvc's migrations, from {first}" in (
        str(raised.value))


def test_missing_last_migration_named(empty_database: str, redis_prefix: str) -> None:
    migrate(empty_database)
    last_version, last_name, _ = available_migrations()[-1]
    with psycopg.connect(empty_database, autocommit=True) as connection:
        connection.execute("DELETE FROM schema_migrations WHERE version = %s", (last_version,))

    with pytest.raises(ConfigError) as raised:
        Backends.connect(_settings(empty_database, redis_prefix))

    assert f"lacks 1 of certsvc's migrations, from {last_name}" in str(raised.value)


def test_migrated_database_accepted(empty_database: str, redis_prefix: str) -> None:
    migrate(empty_database)

    backends = Backends.connect(_settings(empty_database, redis_prefix))
    backends.close()


def test_api_on_empty_database_exits(processes, empty_database: str) -> None:
    process = processes.start("api-unmigrated", "api", extra_env={
        "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{free_port()}", "CERTSVC_DATABASE_URL": empty_database})

    returncode = process.wait(timeout=30)

    assert returncode == 2
    log = processes.log_text("api-unmigrated")
    assert "run `certsvc migrate`" in log
    assert "Traceback" not in log
