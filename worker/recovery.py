"""Recovery of lost jobs: Postgres is the truth, RQ only wakes workers up.

An unfinished issuance has lost its job when no worker has its domain's lock and its
job is neither queued, nor scheduled, nor just started. That happens when a worker is
SIGKILLed mid-job, when Redis restarts without its data, or when the job failed while
Postgres was down. Such an issuance is queued again, and its next attempt resumes or
replaces the ACME order and publishes the key authorizations again.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging

import psycopg
import redis
from rq.registry import ScheduledJobRegistry, StartedJobRegistry

from service import metrics
from service.event_types import EventType
from service.queueing import enqueue_issuance, new_job_id
from service.store import events as event_rows
from service.store import issuances as issuance_rows
from service.store import locks
from service.store.records import IssuanceRecord
from worker.scheduler import SchedulerContext

logger = logging.getLogger(__name__)

# Rows changed this recently are left alone: the api writes the job id just before
# it enqueues the job.
RECENT_CHANGE_GRACE = datetime.timedelta(seconds=10)
# A started job whose worker has not taken the domain lock after this long is dead.
STARTED_JOB_GRACE = datetime.timedelta(seconds=60)
# Unfinished issuances read per query; one run pages through all of them, so lost
# jobs behind many healthy queued ones are found too.
BATCH_SIZE = 500


@dataclasses.dataclass(frozen=True)
class LiveJobs:
    """Job ids RQ holds for the issuance queue, read once per recovery run."""

    queued: frozenset[str]
    scheduled: frozenset[str]
    started: frozenset[str]


def recover_lost_issuances(context: SchedulerContext) -> int:
    """Queue again every unfinished issuance whose job was lost; return how many."""
    backends = context.backends
    now = datetime.datetime.now(datetime.timezone.utc)
    candidates = _candidates(context, now, after=None)
    if not candidates:
        return 0
    live = read_live_jobs(backends.issuance_queue())
    recovered = 0
    with psycopg.connect(context.settings.database_url, autocommit=True, connect_timeout=5,
                         application_name="certsvc-recovery") as lock_connection:
        while candidates:
            for issuance in candidates:
                if issuance.job_id in live.queued or issuance.job_id in live.scheduled:
                    continue
                if _worker_holds(lock_connection, issuance):
                    continue
                if (issuance.job_id in live.started and issuance.state == "QUEUED"
                        and now - issuance.updated_at < STARTED_JOB_GRACE):
                    continue  # a worker dequeued it a moment ago and is about to lock
                if _requeue(context, issuance, now):
                    recovered += 1
            if len(candidates) < BATCH_SIZE:
                break
            candidates = _candidates(context, now, after=candidates[-1])
    return recovered


def _candidates(context: SchedulerContext, now: datetime.datetime,
                after: IssuanceRecord | None) -> list[IssuanceRecord]:
    with context.backends.database.transaction() as connection:
        return issuance_rows.list_in_flight_unchanged_since(
            connection, now - RECENT_CHANGE_GRACE, BATCH_SIZE, after)


def read_live_jobs(queue) -> LiveJobs:
    return LiveJobs(
        queued=frozenset(queue.get_job_ids()),
        scheduled=frozenset(ScheduledJobRegistry(queue=queue).get_job_ids(cleanup=False)),
        started=frozenset(StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)),
    )


def _worker_holds(lock_connection: psycopg.Connection, issuance: IssuanceRecord) -> bool:
    """Return whether some session holds the domain's lock, that is a worker is on it."""
    if not locks.try_lock_domain(lock_connection, issuance.domain_id):
        return True
    locks.unlock_domain(lock_connection, issuance.domain_id)
    return False


def _requeue(context: SchedulerContext, issuance: IssuanceRecord,
             now: datetime.datetime) -> bool:
    backends = context.backends
    queue = backends.issuance_queue()
    job_id = new_job_id(queue, issuance.id)
    interrupted = issuance.state != "QUEUED"
    at = issuance.next_attempt_at if issuance.next_attempt_at and issuance.next_attempt_at > now \
        else None
    with backends.database.transaction() as connection:
        current = issuance_rows.lock_issuance(connection, issuance.id)
        if current is None or current.updated_at != issuance.updated_at:
            return False  # a worker or another scheduler changed it meanwhile
        columns: dict[str, object] = {"state": "QUEUED", "job_id": job_id}
        if interrupted:
            columns["error"] = (f"attempt {issuance.attempt} was interrupted in state "
                                f"{issuance.state}: its worker stopped or lost its database "
                                "connection")
            columns["next_attempt_at"] = None
        issuance_rows.update_issuance(connection, issuance.id, **columns)
        event_rows.add_event(
            connection, issuance.domain_id, EventType.ISSUANCE_RECOVERED,
            f"the job of attempt {issuance.attempt} was lost ({issuance.state}); queued again"
            if interrupted else "the queued job was lost; queued again", issuance.id)
    try:
        enqueue_issuance(queue, issuance.id, at=at, job_id=job_id)
    except redis.RedisError as error:
        logger.warning("could not enqueue recovered issuance, will try again hostname=%s "
                       "issuance_id=%s job_id=%s: %s", issuance.hostname, issuance.id, job_id,
                       error)
        return False
    metrics.LOST_JOBS_RECOVERED.inc()
    if interrupted:
        metrics.ISSUANCE_ATTEMPTS.labels(outcome="interrupted").inc()
    logger.warning("re-enqueued issuance whose job was lost hostname=%s issuance_id=%s "
                   "state=%s attempt=%d previous_job_id=%s job_id=%s next_attempt_at=%s",
                   issuance.hostname, issuance.id, issuance.state, issuance.attempt,
                   issuance.job_id, job_id, at.isoformat() if at else "now")
    return True
