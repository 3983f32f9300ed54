"""Enqueueing issuance jobs on RQ. A job carries only the issuance id."""

from __future__ import annotations

import datetime
import uuid

import rq

# Dotted path of the job function; the api enqueues it by name and never imports it.
ISSUANCE_JOB_FUNCTION = "worker.jobs.run_issuance"


def enqueue_issuance(queue: rq.Queue, issuance_id: uuid.UUID, *,
                     at: datetime.datetime | None = None) -> str:
    """Enqueue an issuance job now, or at a later time; return the RQ job id.

    Job ids start with the queue name, so each deployment's (or test run's) jobs can
    be told apart in a shared Redis.
    """
    job_id = f"{queue.name}-{issuance_id}-{uuid.uuid4().hex[:8]}"
    options = {"job_id": job_id, "result_ttl": 3600, "failure_ttl": 7 * 24 * 3600,
               "description": f"issuance {issuance_id}"}
    if at is None:
        queue.enqueue(ISSUANCE_JOB_FUNCTION, str(issuance_id), **options)
    else:
        queue.enqueue_at(at, ISSUANCE_JOB_FUNCTION, str(issuance_id), **options)
    return job_id
