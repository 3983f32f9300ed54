"""Notifications that the certificate serving a hostname may have changed.

Triggers on the domains and certificates tables (the certificate_change_notifications
migration) send the hostname on the channel CHANNEL whenever a transaction changes
which certificate serves it, who owns it, or the certificate row itself, whichever
code path writes. A listener thread passes each hostname to a callback. While it is not listening (before the
first connection, after a lost one) notifications can be missed, so it reports that
too and the caller must not trust what it cached.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

logger = logging.getLogger(__name__)

CHANNEL = "certsvc_certificate_changed"
# How long the listener waits for a notification before it checks whether to stop.
STOP_CHECK_SECONDS = 1.0
RECONNECT_DELAY_SECONDS = 1.0
MAX_RECONNECT_DELAY_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5


class CertificateChangeListener:
    """A thread that LISTENs on CHANNEL on a connection of its own.

    on_change(hostname) runs for every notification. on_listening(True) runs once
    LISTEN is in effect (each time after connecting), on_listening(False) when the
    connection is lost or the listener stops: in between, changes may go unnoticed.
    """

    def __init__(self, database_url: str, on_change: Callable[[str], None],
                 on_listening: Callable[[bool], None]) -> None:
        self._database_url = database_url
        self._on_change = on_change
        self._on_listening = on_listening
        self._stopping = threading.Event()
        self._listened = False
        """Whether the current connection got as far as LISTEN."""
        self._thread = threading.Thread(target=self._run, name="certificate-changes",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_seconds: float = STOP_CHECK_SECONDS * 3) -> None:
        self._stopping.set()
        self._thread.join(timeout_seconds)

    def _run(self) -> None:
        delay = RECONNECT_DELAY_SECONDS
        while not self._stopping.is_set():
            self._listened = False
            try:
                self._listen()
            except psycopg.Error as error:
                if self._listened:
                    # The connection worked until now, so this is a new interruption,
                    # not the same outage: start the backoff again.
                    delay = RECONNECT_DELAY_SECONDS
                logger.warning("certificate change notifications interrupted, reconnecting in "
                               "%.0f s: %s", delay, error)
            finally:
                self._on_listening(False)
            self._stopping.wait(delay)
            delay = min(delay * 2, MAX_RECONNECT_DELAY_SECONDS)

    def _listen(self) -> None:
        with psycopg.connect(self._database_url, autocommit=True,
                             connect_timeout=CONNECT_TIMEOUT_SECONDS,
                             application_name="certsvc-certificate-changes",
                             # Find a silently dropped connection within a minute.
                             keepalives=1, keepalives_idle=20, keepalives_interval=10,
                             keepalives_count=3) as connection:
            connection.execute(f"LISTEN {CHANNEL}")
            self._listened = True
            self._on_listening(True)
            logger.info("listening for certificate changes channel=%s", CHANNEL)
            while not self._stopping.is_set():
                for notify in connection.notifies(timeout=STOP_CHECK_SECONDS):
                    self._on_change(notify.payload)
