"""A bounded cache of GetCertificate's responses for hot hostnames.

Edge routers ask for the same hostnames again and again. The api keeps the responses
for the most recently asked ones in memory, already serialized, and drops a hostname
as soon as Postgres reports that what serves it changed
(service.store.certificate_changes). Every api process listens to those reports, so
a change by any process or by hand reaches all of them. The cache serves and stores
entries only while that report is being listened to, so a lost connection costs
cache hits, never correctness.

A read that overlaps a change must not store the value it read before the change:
callers take a version() before they read Postgres and pass it to put(), which
stores nothing if anything was invalidated since.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
import threading
import time
import uuid

logger = logging.getLogger(__name__)

# The byte budget bounds the cache: with a typical two-certificate chain (a serialized
# response of about 2.7 kB) it stores about 10,000 hostnames in about 40 MB, which keeps
# the api under 150 MB of RSS. The entry count only caps caches of unusually small
# chains.
DEFAULT_MAX_ENTRIES = 20_000
DEFAULT_MAX_BYTES = 40 * 1024 * 1024
# A safety net only: notifications normally replace an entry long before this.
DEFAULT_MAX_AGE_SECONDS = 300.0
# Estimated memory of one entry beside its response and sealed key: the entry object,
# its strings and UUIDs, and the dict and LRU links. tracemalloc measured about 0.7 kB
# on CPython 3.11; the estimate is rounded up.
_ENTRY_OVERHEAD_BYTES = 900


@dataclasses.dataclass(frozen=True, slots=True)
class CachedCertificate:
    """The data GetCertificate needs to respond for a domain served by its own certificate."""

    hostname: str
    """The normal form of the domain's hostname."""
    app_id: str
    domain_id: uuid.UUID
    certificate_id: uuid.UUID
    private_key_sealed: bytes
    response: bytes
    """The serialized certsvc.v1.Certificate without private_key_pem."""
    fresh_until: float = math.inf
    """time.monotonic() after which the response's warnings may no longer be current."""


class CertificateCache:
    """An LRU map from normal-form hostname to its cached response, safe across threads."""

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES,
                 max_bytes: int = DEFAULT_MAX_BYTES,
                 max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_age_seconds = max_age_seconds
        # hostname -> (entry, monotonic time after which it is not served, size)
        self._entries: collections.OrderedDict[str, tuple[CachedCertificate, float, int]] = (
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

    def get(self, hostname: str) -> CachedCertificate | None:
        with self._lock:
            entry = self._entries.get(hostname) if self._listening else None
            if entry is None:
                return None
            if time.monotonic() > entry[1]:
                self._remove(hostname)
                return None
            self._entries.move_to_end(hostname)
            return entry[0]

    def put(self, cached: CachedCertificate, version: int) -> None:
        """Store what a read begun at version returned, unless something changed since."""
        size = entry_bytes(cached)
        expires_at = min(time.monotonic() + self.max_age_seconds, cached.fresh_until)
        with self._lock:
            if not self._listening or version != self._version or size > self.max_bytes:
                return
            self._remove(cached.hostname)
            self._entries[cached.hostname] = (cached, expires_at, size)
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


def entry_bytes(cached: CachedCertificate) -> int:
    """Return the estimated memory of one cache entry."""
    return _ENTRY_OVERHEAD_BYTES + len(cached.response) + len(cached.private_key_sealed)
