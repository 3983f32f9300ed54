"""Enqueueing issuance jobs on RQ. A job carries only the issuance id."""

from __future__ import annotations

import datetime
import uuid

import rq

# Dotted path of the job function; the api enqueues it by name and never imports it.
ISSUANCE_JOB_FUNCTION = "worker.jobs.run_issuance"


def new_job_id(queue: rq.Queue, issuance_id: uuid.UUID) -> str:
    """Return a fresh job id for an issuance.

    Job ids start with the queue name, so each deployment's (or test run's) jobs can
    be distinguished in a shared Redis. Callers store the id on the issuance row before
    they enqueue, so that Postgres always names the job to look for.
    """
    return f"{queue.name}-{issuance_id}-{uuid.uuid4().hex[:8]}"


def enqueue_issuance(queue: rq.Queue, issuance_id: uuid.UUID, *,
                     at: datetime.datetime | None = None, job_id: str | None = None) -> str:
    """Enqueue an issuance job now, or at a later time; return the RQ job id."""
    job_id = job_id or new_job_id(queue, issuance_id)
    options = {"job_id": job_id, "result_ttl": 3600, "failure_ttl": 7 * 24 * 3600,
               "description": f"issuance {issuance_id}"}
    if at is None:
        queue.enqueue(ISSUANCE_JOB_FUNCTION, str(issuance_id), **options)
    else:
        queue.enqueue_at(at, ISSUANCE_JOB_FUNCTION, str(issuance_id), **options)
    return job_id
