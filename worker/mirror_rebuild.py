"""The scheduler's periodic rebuild of the Redis mirrors from Postgres."""

from __future__ import annotations

import logging

import redis

from service.force_https import rebuild_mirror_quietly
from worker.scheduler import SchedulerContext

logger = logging.getLogger(__name__)

# How often the Force HTTPS mirror is rewritten; a lost key is missing at most this long.
REBUILD_INTERVAL_SECONDS = 300.0
# How often the scheduler looks for the mirror's marker key; a Redis restart that lost
# the whole mirror is repaired within this time.
MIRROR_CHECK_INTERVAL_SECONDS = 10.0


def rebuild_mirrors(context: SchedulerContext) -> None:
    """Rewrite the Force HTTPS flags in Redis from Postgres (a periodic task)."""
    backends = context.backends
    rebuild_mirror_quietly(backends.database, backends.redis, backends.keys)


def rebuild_lost_mirrors(context: SchedulerContext) -> None:
    """Rebuild the Force HTTPS mirror at once when Redis lost it (a periodic task)."""
    backends = context.backends
    try:
        marker_present = backends.redis.exists(backends.keys.force_https_mirror_marker)
    except redis.RedisError as error:
        logger.warning("could not check the force-https mirror: %s", error)
        return
    if not marker_present:
        logger.info("force-https mirror missing from Redis; rebuilding it now")
        rebuild_mirror_quietly(backends.database, backends.redis, backends.keys)
