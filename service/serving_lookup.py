"""Reads of what serves a hostname, one Postgres query for all the calls that wait.

A GetCertificate cache miss needs the rows of the hostname's domain and of the
wildcard one label up. When each RPC thread runs that query itself, every thread
releases the GIL at each socket wait and must take it back, and with many threads
that switching costs more CPU than the query. So the calls queue their hostnames, and
a few reader threads each take everything queued, read it with one query and wake
the calls whose rows it read. A lone call still gets a query of its own at once.

Measured on the 2-core benchmark machine (CPU per GetCertificate miss, 20,000
distinct hostnames, called in one process): 126 us with one thread, 299 us with 32
threads each running its own query, 93 us with 32 threads and this batching. In the
api under bench/get_certificate.py a miss costs 5 to 10% less CPU than without it.
NOTE: there a miss still costs about 370 us more than a cache hit, against the 93 us
measured here, and where the difference goes is not known.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence

from service.errors import CertsvcError, Unavailable
from service.store.certificates import ServingCandidate, find_serving_candidates
from service.store.database import Database

logger = logging.getLogger(__name__)

DEFAULT_READERS = 2
# Each call queues at most two hostnames, so one query reads at most twice this many rows.
DEFAULT_MAX_CALLS_PER_QUERY = 64
# Longer than the pool's wait for a connection (5 s), so callers of a database that is
# down get the pool's error, which names the cause.
DEFAULT_WAIT_SECONDS = 15.0


class _Call:
    """One caller's hostnames and, once a reader has run the query, its rows or its error."""

    __slots__ = ("hostnames", "answered", "rows", "error")

    def __init__(self, hostnames: Sequence[str]) -> None:
        self.hostnames = hostnames
        # A reader releases it when rows or error are set. The caller blocks on acquiring it.
        self.answered = threading.Lock()
        self.answered.acquire()
        self.rows: list[ServingCandidate] = []
        self.error: Exception | None = None


class ServingLookup:
    """Reader threads that run find_serving_candidates() once for many waiting calls."""

    def __init__(self, database: Database, *, readers: int = DEFAULT_READERS,
                 max_calls_per_query: int = DEFAULT_MAX_CALLS_PER_QUERY,
                 wait_seconds: float = DEFAULT_WAIT_SECONDS) -> None:
        self._database = database
        self._max_calls = max_calls_per_query
        self._wait_seconds = wait_seconds
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._stopped = False
        self._threads = [threading.Thread(target=self._read, name=f"serving-lookup-{index}",
                                          daemon=True)
                         for index in range(readers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        """Serve the calls already queued, then end the reader threads."""
        self._stopped = True
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout_seconds)

    def candidates(self, hostnames: Sequence[str]) -> list[ServingCandidate]:
        """Return the domains with any of these hostnames, each with its active certificate.

        Raises Unavailable when Postgres cannot be reached or the query times out.
        """
        if self._stopped:
            raise Unavailable("the api is shutting down; try another api process")
        call = _Call(hostnames)
        self._queue.put(call)
        if not call.answered.acquire(timeout=self._wait_seconds):
            logger.warning("serving lookup timed out after %.0f s for %s",
                           self._wait_seconds, hostnames[0])
            raise Unavailable("reading the certificate from the database timed out; "
                              "try again shortly")
        if call.error is not None:
            # Each call of a failed query raises a copy of the error, so no two threads
            # raise the same exception object and extend one traceback.
            error = call.error
            if isinstance(error, CertsvcError):
                raise type(error)(*error.args) from error
            raise RuntimeError("reading the serving certificates failed") from error
        return call.rows

    def _read(self) -> None:
        while True:
            call = self._queue.get()
            if call is None:
                return
            calls = [call]
            while len(calls) < self._max_calls:
                try:
                    call = self._queue.get_nowait()
                except queue.Empty:
                    break
                if call is None:
                    # A stop request. Put it back for this or another reader, and
                    # serve the calls taken so far first.
                    self._queue.put(None)
                    break
                calls.append(call)
            self._answer(calls)

    def _answer(self, calls: list[_Call]) -> None:
        hostnames = sorted({hostname for call in calls for hostname in call.hostnames})
        try:
            with self._database.read() as connection:
                rows = find_serving_candidates(connection, hostnames)
        except Exception as error:  # noqa: BLE001 - handed to every waiting caller
            for call in calls:
                call.error = error
                call.answered.release()
            return
        by_hostname = {row.hostname: row for row in rows}
        for call in calls:
            call.rows = [by_hostname[name] for name in call.hostnames if name in by_hostname]
            call.answered.release()
