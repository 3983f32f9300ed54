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
api under bench/get_certificate.py a miss costs 5 to 10% less CPU than without it,
because batches there average 2 to 3 calls. A miss still costs about 350 us more than
a cache hit there. Of that, about 115 us go to the RPC thread and 110 to 140 us to the
reader, measured with time.thread_time() per thread under that load. The rest goes to
the process's other threads.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence

from service.errors import Unavailable
from service.log_limits import RepeatedEvent
from service.store.certificates import ServingCandidate, find_serving_candidates
from service.store.database import Database

logger = logging.getLogger(__name__)

DEFAULT_READERS = 2
# Each call queues at most two hostnames, so one query reads at most twice this many.
DEFAULT_MAX_CALLS_PER_QUERY = 64
# Postgres cancels a read that takes longer, a wait for a lock included, so a stalled
# database fails the waiting calls instead of holding every RPC thread. A read of 128
# hostnames normally takes a few milliseconds.
STATEMENT_TIMEOUT_SECONDS = 3.0
# Longer than the read ahead of a call plus its own read, each cut at the statement
# timeout, so callers get the database's error, which names the cause.
DEFAULT_WAIT_SECONDS = 10.0
TIMEOUT_LOG_INTERVAL_SECONDS = 10.0
SHUTTING_DOWN = "the api is shutting down; try another api process"


class _Call:
    """One caller's hostnames and, once a reader has run the query, its rows or its error."""

    __slots__ = ("hostnames", "answered", "rows", "error", "abandoned")

    def __init__(self, hostnames: Sequence[str]) -> None:
        self.hostnames = hostnames
        # A reader releases it when rows or error are set. The caller blocks on acquiring it.
        self.answered = threading.Lock()
        self.answered.acquire()
        self.rows: list[ServingCandidate] = []
        self.error: BaseException | None = None
        self.abandoned = False
        """Set when the caller stopped waiting, so that no reader queries for it."""


class ServingLookup:
    """Reader threads that run find_serving_candidates() once for many waiting calls."""

    def __init__(self, database: Database, *, readers: int = DEFAULT_READERS,
                 max_calls_per_query: int = DEFAULT_MAX_CALLS_PER_QUERY,
                 wait_seconds: float = DEFAULT_WAIT_SECONDS) -> None:
        self._database = database
        self._max_calls = max_calls_per_query
        self._wait_seconds = wait_seconds
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        # Makes stop() and the queueing in candidates() exclusive, so every call queued
        # before the stop markers is served and none is queued after them.
        self._lock = threading.Lock()
        self._stopped = False
        self._timeouts = RepeatedEvent(TIMEOUT_LOG_INTERVAL_SECONDS)
        self._threads = [threading.Thread(target=self._read, name=f"serving-lookup-{index}",
                                          daemon=True)
                         for index in range(readers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_seconds: float = 5.0) -> None:
        """Serve the calls already queued, then end the reader threads, waiting at most
        timeout_seconds for them all."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            for _ in self._threads:
                self._queue.put(None)
        deadline = time.monotonic() + timeout_seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def candidates(self, hostnames: Sequence[str]) -> list[ServingCandidate]:
        """Return the domains with any of these hostnames, each with its active certificate.

        Raises Unavailable when Postgres cannot be reached, when no reader finished the
        read in time, and after stop().
        """
        call = _Call(hostnames)
        with self._lock:
            if self._stopped:
                raise Unavailable(SHUTTING_DOWN)
            self._queue.put(call)
        if not call.answered.acquire(timeout=self._wait_seconds):
            call.abandoned = True
            self._log_timeout(hostnames[0])
            raise Unavailable(f"reading the certificate of {hostnames[0]} from the database "
                              f"did not finish within {self._wait_seconds:.0f} s; try again "
                              "shortly")
        if call.error is not None:
            raise _error_for_caller(call.error, hostnames[0]) from call.error
        return call.rows

    def _log_timeout(self, hostname: str) -> None:
        # During an outage every call times out, so the count is logged once per interval.
        with self._lock:
            timeouts = self._timeouts.occurred()
        if timeouts is None:
            return
        logger.warning("serving lookup timed out after %.0f s hostname=%s "
                       "timeouts_since_last_report=%d", self._wait_seconds, hostname, timeouts)

    def _read(self) -> None:
        try:
            while True:
                calls = self._next_batch()
                if calls is None:
                    return
                self._answer(calls)
        except BaseException:
            logger.exception("serving lookup reader %s stopped by an unexpected error",
                             threading.current_thread().name)
            raise

    def _next_batch(self) -> list[_Call] | None:
        """Wait for a call and return it with the calls queued behind it, or None at stop."""
        call = self._queue.get()
        if call is None:
            return None
        calls = [call]
        while len(calls) < self._max_calls:
            try:
                call = self._queue.get_nowait()
            except queue.Empty:
                break
            if call is None:
                # A stop marker. Put it back for this or another reader, and serve the
                # calls taken so far first.
                self._queue.put(None)
                break
            calls.append(call)
        return calls

    def _answer(self, calls: list[_Call]) -> None:
        calls = [call for call in calls if not call.abandoned]
        if not calls:
            return
        hostnames = sorted({hostname for call in calls for hostname in call.hostnames})
        try:
            with self._database.read() as connection:
                rows = find_serving_candidates(connection, hostnames)
        except BaseException as error:
            # Every waiting caller raises the error. A BaseException that is not an
            # Exception (such as SystemExit) also ends this reader.
            for call in calls:
                call.error = error
                call.answered.release()
            if not isinstance(error, Exception):
                raise
            return
        by_hostname = {row.hostname: row for row in rows}
        for call in calls:
            call.rows = [by_hostname[name] for name in call.hostnames if name in by_hostname]
            call.answered.release()


def _error_for_caller(error: BaseException, hostname: str) -> Exception:
    """Return a new exception for one caller of a failed query.

    Each caller raises an exception of its own, because threads that raise one shared
    exception object all add to its traceback.
    """
    if isinstance(error, Unavailable):
        return Unavailable(str(error))
    return RuntimeError(f"reading the certificate of {hostname} from the database failed: "
                        f"{error!r}")
