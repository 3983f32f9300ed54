"""RQ job functions. A job carries only an issuance id, and Postgres stores the rest."""

from __future__ import annotations

import datetime
import logging
import uuid

import psycopg
import redis
from rq import get_current_job

from service.errors import Unavailable
from service.queueing import enqueue_issuance
from worker.context import get_context
from worker.issuer import IssuanceRunner

logger = logging.getLogger(__name__)

# A job that cannot reach Postgres runs again after this delay.
DATABASE_DOWN_RETRY_SECONDS = 5.0


def run_issuance(issuance_id: str) -> None:
    """Run one attempt of an issuance (service.queueing.ISSUANCE_JOB_FUNCTION)."""
    job = get_current_job()
    job_id = job.id if job else None
    logger.info("issuance job started issuance_id=%s job_id=%s", issuance_id, job_id or "-")
    context = get_context()
    try:
        IssuanceRunner(context).run(uuid.UUID(issuance_id), job_id)
    except (Unavailable, psycopg.OperationalError) as error:
        # Postgres is down or restarting. The row still records what to do, so the job
        # only needs to come back. If Redis is down too, the scheduler's lost-job
        # recovery enqueues it once both are back.
        retry_at = (datetime.datetime.now(datetime.timezone.utc)
                    + datetime.timedelta(seconds=DATABASE_DOWN_RETRY_SECONDS))
        logger.warning("database unavailable, will retry issuance_id=%s job_id=%s "
                       "next_attempt_at=%s: %s", issuance_id, job_id or "-",
                       retry_at.isoformat(), error)
        try:
            enqueue_issuance(context.backends.issuance_queue(), uuid.UUID(issuance_id),
                             at=retry_at)
        except redis.RedisError as redis_error:
            logger.warning("could not enqueue the retry, the scheduler will recover it "
                           "issuance_id=%s: %s", issuance_id, redis_error)
