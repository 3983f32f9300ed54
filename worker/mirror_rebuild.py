"""The scheduler's periodic rebuild of the Redis mirrors from Postgres."""

from __future__ import annotations

import logging
import threading

from service.backends import connect_redis
from service.config import Settings
from service.force_https import rebuild_mirror_quietly
from service.redis_keys import RedisKeys
from service.store.database import Database

logger = logging.getLogger(__name__)

# How often the Force HTTPS mirror is rewritten; a lost key is missing at most this long.
REBUILD_INTERVAL_SECONDS = 300.0


def start_mirror_rebuilds(settings: Settings,
                          interval_seconds: float = REBUILD_INTERVAL_SECONDS) -> threading.Event:
    """Rebuild the mirrors now and every interval in a daemon thread; set the event to stop."""
    stop = threading.Event()
    thread = threading.Thread(target=_rebuild_until_stopped,
                              args=(settings, interval_seconds, stop),
                              name="mirror-rebuild", daemon=True)
    thread.start()
    return stop


def _rebuild_until_stopped(settings: Settings, interval_seconds: float,
                           stop: threading.Event) -> None:
    # The pool opens lazily, so a Postgres that is down at start only delays the rebuild.
    database = Database(settings.database_url, max_size=1, name="certsvc-scheduler")
    database.pool.open(wait=False)
    client = connect_redis(settings.redis_url)
    keys = RedisKeys(settings.redis_prefix)
    logger.info("mirror rebuilds starting interval_seconds=%g", interval_seconds)
    while True:
        rebuild_mirror_quietly(database, client, keys)
        if stop.wait(interval_seconds):
            break
    database.close()
    client.close()
