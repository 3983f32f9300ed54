"""Prometheus metrics of certsvc processes, served on CERTSVC_METRICS_ADDRESS.

Counters and histograms count what one process did (workers: attempts, durations,
bad nonces; the scheduler: renewals, recoveries, warnings). FleetCollector reads the
state of the whole deployment (queue depth, certificates by days to expiry) from
Redis and Postgres when scraped; the api and the scheduler register it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import redis
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from service.backends import Backends
from service.config import ConfigError, Settings
from service.errors import Unavailable

logger = logging.getLogger(__name__)

ISSUANCE_ATTEMPTS = Counter(
    "certsvc_issuance_attempts", "Issuance attempts by outcome: succeeded, retry, failed, "
    "delayed (waiting for a CA rate limit) or interrupted (the worker stopped mid-attempt).",
    ["outcome"])
ISSUANCES = Counter("certsvc_issuances", "Issuances that ended, by outcome (succeeded, failed).",
                    ["outcome"])
ISSUANCE_DURATION = Histogram(
    "certsvc_issuance_duration_seconds",
    "Time from an issuance's request to its end, retries included, by outcome.", ["outcome"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 86400))
ATTEMPT_DURATION = Histogram(
    "certsvc_issuance_attempt_duration_seconds", "Time one issuance attempt took in a worker.",
    buckets=(0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600))
SELF_CHECK_FAILURES = Counter("certsvc_self_check_failures",
                              "Domains that failed the HTTP self-check, by reason.", ["reason"])
BAD_NONCE_RETRIES = Counter("certsvc_acme_bad_nonce_retries",
                            "ACME requests sent again with a fresh nonce after a badNonce error.")
EXPIRY_WARNINGS = Counter("certsvc_expiry_warnings",
                          "Expiry warning events recorded, by threshold in days (0: expired).",
                          ["days"])
RENEWALS_QUEUED = Counter("certsvc_renewals_queued",
                          "Renewal issuances the scheduler queued.")
LOST_JOBS_RECOVERED = Counter("certsvc_lost_jobs_recovered",
                              "Issuances whose RQ job was lost and that the scheduler queued again.")

# Ranges of days to expiry of the certificates that serve domains, in order.
EXPIRY_RANGES = ("expired", "0-1", "1-7", "7-14", "14-30", "30+")
CERTIFICATE_SOURCES = ("LETS_ENCRYPT", "CUSTOM", "PLATFORM")
# A scrape within this many seconds of the last one reuses its numbers.
FLEET_CACHE_SECONDS = 15.0

_EXPIRY_QUERY = """
    SELECT c.source,
           CASE WHEN c.not_after <= now() THEN 'expired'
                WHEN c.not_after <= now() + interval '1 day' THEN '0-1'
                WHEN c.not_after <= now() + interval '7 days' THEN '1-7'
                WHEN c.not_after <= now() + interval '14 days' THEN '7-14'
                WHEN c.not_after <= now() + interval '30 days' THEN '14-30'
                ELSE '30+' END AS days_to_expiry,
           count(*)
    FROM (
        SELECT c.source, c.not_after
        FROM domains d JOIN certificates c ON c.id = d.certificate_id
        UNION ALL
        -- The serving platform certificate of each platform domain counts once.
        (SELECT DISTINCT ON (platform_domain) 'PLATFORM', not_after
         FROM platform_certificates ORDER BY platform_domain, created_at DESC)
    ) c
    GROUP BY 1, 2
"""


class FleetCollector(Collector):
    """Queue depth from Redis and certificates by days to expiry from Postgres, per scrape."""

    def __init__(self, backends: Backends) -> None:
        self.backends = backends
        self._lock = threading.Lock()
        self._cached_at = float("-inf")
        self._cached: list[Metric] = []

    def describe(self) -> list[Metric]:
        # Registration calls describe(); returning the names alone keeps it off the network.
        return [_queue_family(), _expiry_family()]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if time.monotonic() - self._cached_at > FLEET_CACHE_SECONDS:
                self._cached = [*self._queue_depth(), *self._certificates_by_expiry()]
                self._cached_at = time.monotonic()
            yield from self._cached

    def _queue_depth(self) -> list[Metric]:
        queue = self.backends.issuance_queue()
        family = _queue_family()
        try:
            family.add_metric([queue.name, "queued"], queue.count)
            family.add_metric([queue.name, "scheduled"], ScheduledJobRegistry(queue=queue).count)
            family.add_metric([queue.name, "started"], StartedJobRegistry(queue=queue).count)
        except redis.RedisError as error:
            logger.warning("cannot read the queue depth for metrics queue=%s: %s", queue.name, error)
            return []
        return [family]

    def _certificates_by_expiry(self) -> list[Metric]:
        counts = {(source, days): 0 for source in CERTIFICATE_SOURCES for days in EXPIRY_RANGES}
        try:
            with self.backends.database.transaction() as connection:
                for source, days, count in connection.execute(_EXPIRY_QUERY):
                    counts[(source, days)] = count
        except Unavailable as error:
            logger.warning("cannot count certificates for metrics: %s", error)
            return []
        family = _expiry_family()
        for (source, days), count in counts.items():
            family.add_metric([source, days], count)
        return [family]


def _queue_family() -> GaugeMetricFamily:
    return GaugeMetricFamily("certsvc_queue_depth",
                             "Issuance jobs in the RQ queue, by state (queued, scheduled, started).",
                             labels=["queue", "state"])


def _expiry_family() -> GaugeMetricFamily:
    return GaugeMetricFamily("certsvc_certificates_by_days_to_expiry",
                             "Certificates serving domains, by source and days left until expiry.",
                             labels=["source", "days_to_expiry"])


def start_metrics_server(settings: Settings, process: str,
                         backends: Backends | None = None) -> int | None:
    """Serve /metrics on CERTSVC_METRICS_ADDRESS unless its port is 0; return the port.

    With backends, the deployment-wide FleetCollector is served too.
    """
    host, _, port_text = settings.metrics_address.rpartition(":")
    if int(port_text) == 0:
        return None
    if backends is not None:
        REGISTRY.register(FleetCollector(backends))
    try:
        server, _thread = start_http_server(int(port_text), addr=host.strip("[]"))
    except OSError as error:
        raise ConfigError(
            f"cannot serve metrics on CERTSVC_METRICS_ADDRESS={settings.metrics_address}: "
            f"{error.strerror}; choose a free port, or port 0 for no metrics") from None
    port = server.server_address[1]
    logger.info("metrics listening process=%s address=%s:%d", process, host, port)
    return port
