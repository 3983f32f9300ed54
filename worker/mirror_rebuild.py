"""The scheduler's periodic rebuild of the Redis mirrors from Postgres."""

from __future__ import annotations

from service.force_https import rebuild_mirror_quietly
from worker.scheduler import SchedulerContext

# How often the Force HTTPS mirror is rewritten; a lost key is missing at most this long.
REBUILD_INTERVAL_SECONDS = 300.0


def rebuild_mirrors(context: SchedulerContext) -> None:
    """Rewrite the Force HTTPS flags in Redis from Postgres (a periodic task)."""
    backends = context.backends
    rebuild_mirror_quietly(backends.database, backends.redis, backends.keys)
