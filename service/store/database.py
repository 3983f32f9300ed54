"""The Postgres connection pool and the transaction boundary of every store call."""

from __future__ import annotations

import contextlib
import logging
import time
import weakref
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from service.errors import Unavailable

logger = logging.getLogger(__name__)

# How long a caller waits for a pooled connection before the call fails as unavailable.
DEFAULT_ACQUIRE_TIMEOUT_SECONDS = 5.0
# How long opening a new server connection may take (libpq connect_timeout).
CONNECT_TIMEOUT_SECONDS = 5
# A pooled connection that came back from a call at most this long ago worked then and
# is handed out unchecked; one idle for longer is first checked with an empty query.
# The check costs a round trip, which on a busy api is a fifth of the throughput of a
# one-query call.
CHECK_AFTER_IDLE_SECONDS = 2.0
# While the last attempt to connect failed less than this long ago, callers wait at most
# FAST_FAIL_ACQUIRE_SECONDS for a connection, so calls fail fast while Postgres is down.
UNREACHABLE_MEMORY_SECONDS = 10.0
FAST_FAIL_ACQUIRE_SECONDS = 0.5


class _ConnectOutcome:
    """The result of the pool's latest attempt to open a server connection."""

    def __init__(self) -> None:
        self.failed_at: float | None = None

    def recently_failed(self) -> bool:
        failed_at = self.failed_at
        return failed_at is not None and time.monotonic() - failed_at < UNREACHABLE_MEMORY_SECONDS


def _connection_class(outcome: _ConnectOutcome) -> type[psycopg.Connection]:
    """Return a connection class that records in outcome whether connecting worked."""

    class TrackedConnection(psycopg.Connection):
        @classmethod
        def connect(cls, *args: Any, **kwargs: Any) -> TrackedConnection:
            try:
                connection = super().connect(*args, **kwargs)
            except psycopg.OperationalError:
                outcome.failed_at = time.monotonic()
                raise
            outcome.failed_at = None
            return connection

    return TrackedConnection


class Database:
    """A psycopg connection pool whose failures surface as service.errors.Unavailable."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10,
                 acquire_timeout_seconds: float = DEFAULT_ACQUIRE_TIMEOUT_SECONDS,
                 name: str = "certsvc", statement_timeout_seconds: float | None = None) -> None:
        """With statement_timeout_seconds, Postgres cancels each statement of the pool's
        connections that runs longer, including time spent waiting for locks."""
        self.url = url
        self._statement_timeout_ms = (None if statement_timeout_seconds is None
                                      else max(1, round(statement_timeout_seconds * 1000)))
        self._returned_at: weakref.WeakKeyDictionary[psycopg.Connection, float] = (
            weakref.WeakKeyDictionary())
        self._connect_outcome = _ConnectOutcome()
        self.pool = ConnectionPool(
            url,
            connection_class=_connection_class(self._connect_outcome),
            min_size=min_size,
            max_size=max_size,
            open=False,
            timeout=acquire_timeout_seconds,
            name=name,
            kwargs={"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": name},
            # A connection broken by a server restart is found on checkout, so the pool
            # replaces it instead of handing it out again.
            check=self._check_if_idle,
            configure=self._configure,
            # No reset callback: with one, psycopg_pool 3.3 hands every returned
            # connection to a worker thread, a thread hop per call. transaction()
            # records the return time itself instead.
        )

    def _configure(self, connection: psycopg.Connection) -> None:
        if self._statement_timeout_ms is not None:
            connection.execute(f"SET statement_timeout = {self._statement_timeout_ms}")
            connection.commit()

    def _check_if_idle(self, connection: psycopg.Connection) -> None:
        returned_at = self._returned_at.get(connection)
        if returned_at is None or time.monotonic() - returned_at > CHECK_AFTER_IDLE_SECONDS:
            ConnectionPool.check_connection(connection)

    def open(self, wait_seconds: float = 10.0) -> None:
        """Open the pool and wait for a first connection, raising Unavailable on failure."""
        self.pool.open()
        try:
            self.pool.wait(timeout=wait_seconds)
        except PoolTimeout:
            raise Unavailable(
                f"cannot connect to Postgres at {_safe_url(self.url)} within {wait_seconds:g} s; "
                "check CERTSVC_DATABASE_URL and that the server is running"
            ) from None

    def close(self) -> None:
        self.pool.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """Yield a connection inside one transaction: committed on exit, rolled back on error."""
        unreachable = self._connect_outcome.recently_failed()
        try:
            with self.pool.connection(
                    timeout=FAST_FAIL_ACQUIRE_SECONDS if unreachable else None) as connection:
                yield connection
                # Only a connection whose call succeeded counts as known to work.
                self._returned_at[connection] = time.monotonic()
        except PoolTimeout:
            if self._connect_outcome.recently_failed():
                # The pool logs the connection error itself; callers get no addresses.
                raise Unavailable(
                    "the database is unavailable: cannot connect to Postgres; try again shortly"
                ) from None
            raise Unavailable(
                "the database is unavailable: no connection became free in time; try again"
            ) from None
        except psycopg.OperationalError as error:
            logger.warning("database operation failed: %s", error)
            raise Unavailable(
                "the database is unavailable; try again shortly"
            ) from error

    @contextlib.contextmanager
    def read(self) -> Iterator[psycopg.Connection]:
        """Yield a connection in autocommit mode, for reads of one statement each.

        Each statement sees its own snapshot, and no BEGIN or COMMIT round trips are
        spent; use transaction() when statements must agree with each other.
        """
        with self.transaction() as connection:
            connection.autocommit = True
            try:
                yield connection
            finally:
                connection.autocommit = False


def _safe_url(url: str) -> str:
    """Return a connection string without its password, for messages."""
    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(the configured URL)"
    parts.pop("password", None)
    host = parts.get("host", "localhost")
    return f"{host}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"
