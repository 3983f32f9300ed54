"""A bounded cache of the certificates serving hot hostnames, for GetCertificate.

Edge routers ask for the same hostnames again and again. The api keeps the most
recently asked ones in memory and drops a hostname as soon as Postgres reports that
what serves it changed (service.store.certificate_changes). It serves and stores
entries only while that report is being listened to, so a lost connection costs
cache hits, never correctness.

A read that overlaps a change must not store the value it read before the change:
callers take a version() before they read Postgres and pass it to put(), which
stores nothing if anything was invalidated since.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from service.store.certificates import ServingCandidate

logger = logging.getLogger(__name__)

# The byte budget bounds the cache: with a typical two-certificate chain (about 3 kB
# of PEM) it holds about 7,000 hostnames in about 40 MB, which keeps the api under
# 150 MB of RSS. The entry count only caps caches of unusually small chains.
DEFAULT_MAX_ENTRIES = 20_000
DEFAULT_MAX_BYTES = 40 * 1024 * 1024
# A safety net only: notifications normally replace an entry long before this.
DEFAULT_MAX_AGE_SECONDS = 300.0
# Estimated memory of one entry beside its chain and sealed key: the records, their
# strings, datetimes and UUIDs, and the dict and LRU links. tracemalloc measured about
# 1.4 kB on CPython 3.11; the estimate is rounded up.
_ENTRY_OVERHEAD_BYTES = 2_500


class CertificateCache:
    """An LRU map from normal-form hostname to its domain and certificate, safe across threads."""

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES,
                 max_bytes: int = DEFAULT_MAX_BYTES,
                 max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        self._entries: collections.OrderedDict[str, tuple[ServingCandidate, float, int]] = (
            collections.OrderedDict())
        self._bytes = 0
        self._version = 0
        self._listening = False
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Estimated memory of the cached entries."""
        return self._bytes

    def version(self) -> int:
        """Return a token to pass to put() for a value read from Postgres after this call."""
        return self._version

    def get(self, hostname: str) -> ServingCandidate | None:
        with self._lock:
            entry = self._entries.get(hostname) if self._listening else None
            if entry is None or time.monotonic() - entry[1] > self.max_age_seconds:
                return None
            self._entries.move_to_end(hostname)
            return entry[0]

    def put(self, serving: ServingCandidate, version: int) -> None:
        """Store what a read begun at version returned, unless something changed since."""
        size = _entry_bytes(serving)
        with self._lock:
            if not self._listening or version != self._version or size > self.max_bytes:
                return
            self._remove(serving.hostname)
            self._entries[serving.hostname] = (serving, time.monotonic(), size)
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, _, evicted_size) = self._entries.popitem(last=False)
                self._bytes -= evicted_size

    def invalidate(self, hostname: str) -> None:
        """Forget one hostname (a change notification's payload)."""
        with self._lock:
            self._version += 1
            self._remove(hostname)

    def set_listening(self, listening: bool) -> None:
        """Start or stop trusting the cache: either way what it holds may be stale, so drop it."""
        with self._lock:
            self._version += 1
            self._entries.clear()
            self._bytes = 0
            self._listening = listening
        logger.info("certificate cache %s", "enabled" if listening else
                    "disabled until change notifications resume")

    def _remove(self, hostname: str) -> None:
        entry = self._entries.pop(hostname, None)
        if entry is not None:
            self._bytes -= entry[2]


def _entry_bytes(serving: ServingCandidate) -> int:
    certificate = serving.certificate
    if certificate is None:
        return _ENTRY_OVERHEAD_BYTES
    return (_ENTRY_OVERHEAD_BYTES + len(certificate.chain_pem)
            + len(certificate.private_key_sealed))
