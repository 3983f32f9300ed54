"""The periodic jobs of `certsvc scheduler`. Add a job by appending a PeriodicTask below."""

from __future__ import annotations

import datetime
import logging

from rq.scheduler import RQScheduler

from service.config import Settings
from service.store import ledger as ledger_rows
from worker.expiry_warnings import warn_expiring_certificates
from worker.mirror_rebuild import (MIRROR_CHECK_INTERVAL_SECONDS, REBUILD_INTERVAL_SECONDS,
                                   rebuild_lost_mirrors, rebuild_mirrors)
from worker.recovery import recover_lost_issuances
from worker.renewal import renew_due_certificates
from worker.scheduler import PeriodicTask, SchedulerContext

logger = logging.getLogger(__name__)

# Retries and delayed jobs wait in RQ's scheduled registry; this often they move to the queue.
DUE_JOBS_INTERVAL_SECONDS = 1.0
LEDGER_PRUNE_INTERVAL_SECONDS = 3600.0
# Ledger entries are kept this long, or the longest configured rate-limit window if longer.
LEDGER_RETENTION = datetime.timedelta(days=30)


def periodic_tasks(settings: Settings) -> list[PeriodicTask]:
    """Return every periodic job with its interval."""
    return [
        PeriodicTask("enqueue-due-jobs", DUE_JOBS_INTERVAL_SECONDS, enqueue_due_jobs),
        PeriodicTask("recover-lost-issuances", settings.recovery_interval_seconds,
                     recover_lost_issuances),
        PeriodicTask("renew-certificates", settings.renewal_interval_seconds,
                     renew_due_certificates),
        PeriodicTask("warn-expiring-certificates", settings.renewal_interval_seconds,
                     warn_expiring_certificates),
        PeriodicTask("prune-acme-ledger", LEDGER_PRUNE_INTERVAL_SECONDS, prune_acme_ledger),
        PeriodicTask("rebuild-redis-mirrors", REBUILD_INTERVAL_SECONDS, rebuild_mirrors),
        PeriodicTask("rebuild-lost-redis-mirrors", MIRROR_CHECK_INTERVAL_SECONDS,
                     rebuild_lost_mirrors),
    ]


def enqueue_due_jobs(context: SchedulerContext) -> None:
    """Move jobs from RQ's scheduled registry to the queue once their time has come.

    This runs RQ's own mover in this process, without RQ's scheduler process (which
    forks) and without the worker running one.
    """
    queue = context.backends.issuance_queue()
    mover = RQScheduler([queue], connection=context.backends.redis)
    mover.prepare_registries([queue.name])
    mover.enqueue_scheduled_jobs()


def prune_acme_ledger(context: SchedulerContext) -> None:
    windows = [limit.window for limit in context.settings.acme_rate_limits]
    cutoff = datetime.datetime.now(datetime.timezone.utc) - max([LEDGER_RETENTION, *windows])
    with context.backends.database.transaction() as connection:
        deleted = ledger_rows.prune(connection, cutoff)
    if deleted:
        logger.info("pruned acme ledger entries count=%d before=%s", deleted, cutoff.isoformat())
