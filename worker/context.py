"""Connections a worker process keeps across jobs: Postgres, Redis and the ACME session."""

from __future__ import annotations

import logging
import threading

import psycopg

from service.backends import Backends
from service.config import Settings
from worker.acme_client import AcmeSession
from worker.retry_policy import RetryPolicy
from worker.self_check_step import HttpSelfCheck, SelfCheck

logger = logging.getLogger(__name__)

_context: WorkerContext | None = None
_context_lock = threading.Lock()


class WorkerContext:
    """Backends of one worker process plus the connection that holds domain locks.

    Domain locks are session-level advisory locks, so they live on a connection of
    their own outside the pool: a pooled connection could go back to the pool while
    still holding one.
    """

    def __init__(self, settings: Settings, *, backends: Backends | None = None,
                 self_check: SelfCheck | None = None) -> None:
        self.settings = settings
        self.backends = backends or Backends.connect(settings, pool_max_size=4)
        self.retry_policy = RetryPolicy.from_settings(settings)
        self.self_check = self_check or HttpSelfCheck(settings, self.backends.redis,
                                                      self.backends.keys)
        self._lock_connection: psycopg.Connection | None = None
        self._acme_session: AcmeSession | None = None

    def lock_connection(self) -> psycopg.Connection:
        """Return the lock connection, reconnecting when the previous one broke."""
        if self._lock_connection is None or self._lock_connection.closed or self._lock_connection.broken:
            self._lock_connection = psycopg.connect(
                self.settings.database_url, autocommit=True, connect_timeout=5,
                application_name="certsvc-worker-locks",
            )
        return self._lock_connection

    def acme_session(self) -> AcmeSession:
        """Return the ACME session of the configured directory, opening it on first use."""
        if self._acme_session is None:
            self._acme_session = AcmeSession.open(self.settings, self.backends)
        return self._acme_session

    def forget_acme_session(self) -> None:
        """Drop the session so that the next job fetches the directory and account again."""
        self._acme_session = None

    def close(self) -> None:
        """Close the lock connection. The backends are closed by their creator."""
        if self._lock_connection is not None:
            self._lock_connection.close()
            self._lock_connection = None


def get_context() -> WorkerContext:
    """Return this process's context, creating it from the environment on first use."""
    global _context
    with _context_lock:
        if _context is None:
            _context = WorkerContext(Settings.from_env())
        return _context


def set_context(context: WorkerContext | None) -> None:
    """Install a context built elsewhere (the worker command builds one at start-up)."""
    global _context
    with _context_lock:
        _context = context
