"""Connections that an api process shares across calls: Postgres, Redis and the RQ queue."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator

import redis
import rq

from service.certificate_cache import CertificateCache
from service.config import ConfigError, Settings
from service.encryption import Keyring
from service.errors import Unavailable
from service.redis_keys import RedisKeys
from service.serving_lookup import DEFAULT_READERS, STATEMENT_TIMEOUT_SECONDS, ServingLookup
from service.store.certificate_changes import CertificateChangeListener
from service.store.database import Database
from service.store.migrate import missing_migrations

logger = logging.getLogger(__name__)

# Redis replies in well under a millisecond, so a call that takes seconds means it is down.
REDIS_TIMEOUT_SECONDS = 2.0
# An issuance job whose attempt runs longer than this is stopped by RQ and retried.
ISSUANCE_JOB_TIMEOUT_SECONDS = 600


def connect_redis(url: str) -> redis.Redis:
    """Return a Redis client with short timeouts; values come back as bytes, as RQ needs."""
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        health_check_interval=30,
    )


@contextlib.contextmanager
def redis_unavailable_as_error(action: str) -> Iterator[None]:
    """Turn a Redis connection failure during action into Unavailable."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as error:
        logger.warning("redis call failed while %s: %s", action, error)
        raise Unavailable(f"Redis is unavailable while {action}; try again shortly") from error


@dataclasses.dataclass
class Backends:
    """Postgres, Redis and the RQ issuance queue, opened once per process."""

    settings: Settings
    database: Database
    redis: redis.Redis
    keys: RedisKeys
    keyring: Keyring
    certificate_cache: CertificateCache | None = None
    """Hot hostnames' certificates, in processes that serve GetCertificate."""
    serving_lookup: ServingLookup | None = None
    """GetCertificate's Postgres reads, batched across calls, in processes that serve it."""
    _certificate_changes: CertificateChangeListener | None = None
    _lookup_database: Database | None = None

    @classmethod
    def connect(cls, settings: Settings, *, pool_max_size: int = 10,
                cache_certificates: bool = False) -> Backends:
        """Open the connections, raising Unavailable when Postgres cannot be reached and
        ConfigError when its database lacks migrations.

        With cache_certificates, also start what serves GetCertificate under load: the
        cache of hot hostnames' certificates, the listener that keeps it fresh, and the
        threads that read the misses from Postgres in batches.
        """
        keyring = Keyring.from_settings(settings)
        database = Database(settings.database_url, max_size=pool_max_size)
        database.open()
        try:
            with database.transaction() as connection:
                missing = missing_migrations(connection)
        except Unavailable:
            database.close()
            raise
        if missing:
            database.close()
            raise ConfigError(
                f"the database lacks {len(missing)} of certsvc's migrations, from {missing[0]}; "
                "run `certsvc migrate` with the same CERTSVC_DATABASE_URL, then start again")
        backends = cls(
            settings=settings,
            database=database,
            redis=connect_redis(settings.redis_url),
            keys=RedisKeys(settings.redis_prefix),
            keyring=keyring,
        )
        if cache_certificates:
            cache = CertificateCache()
            backends.certificate_cache = cache
            backends._certificate_changes = CertificateChangeListener(
                settings.database_url, cache.invalidate, cache.set_listening)
            backends._certificate_changes.start()
            # The lookup's readers get connections of their own, one each, whose reads
            # Postgres cancels after STATEMENT_TIMEOUT_SECONDS.
            lookup_database = Database(settings.database_url, max_size=DEFAULT_READERS,
                                       name="certsvc-serving-lookup",
                                       statement_timeout_seconds=STATEMENT_TIMEOUT_SECONDS)
            lookup_database.open()
            backends._lookup_database = lookup_database
            backends.serving_lookup = ServingLookup(lookup_database)
            backends.serving_lookup.start()
        return backends

    def issuance_queue(self) -> rq.Queue:
        return rq.Queue(self.keys.issuance_queue, connection=self.redis,
                        default_timeout=ISSUANCE_JOB_TIMEOUT_SECONDS)

    def close(self) -> None:
        if self.serving_lookup is not None:
            self.serving_lookup.stop()
        if self._lookup_database is not None:
            self._lookup_database.close()
        if self._certificate_changes is not None:
            self._certificate_changes.stop()
        self.database.close()
        self.redis.close()
