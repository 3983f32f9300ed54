"""Enqueueing issuance jobs on RQ. A job carries only the issuance id."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Sequence

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


def _job_options(issuance_id: uuid.UUID, job_id: str) -> dict[str, object]:
    return {"job_id": job_id, "result_ttl": 3600, "failure_ttl": 7 * 24 * 3600,
            "description": f"issuance {issuance_id}"}


def enqueue_issuance(queue: rq.Queue, issuance_id: uuid.UUID, *,
                     at: datetime.datetime | None = None, job_id: str | None = None) -> str:
    """Enqueue an issuance job now, or at a later time; return the RQ job id."""
    job_id = job_id or new_job_id(queue, issuance_id)
    options = _job_options(issuance_id, job_id)
    if at is None:
        queue.enqueue(ISSUANCE_JOB_FUNCTION, str(issuance_id), **options)
    else:
        queue.enqueue_at(at, ISSUANCE_JOB_FUNCTION, str(issuance_id), **options)
    return job_id


def enqueue_issuances(queue: rq.Queue, jobs: Sequence[tuple[uuid.UUID, str]]) -> None:
    """Enqueue issuance jobs now, all in one Redis pipeline.

    jobs contains (issuance id, job id) pairs. The jobs are the ones enqueue_issuance
    makes, with the same options. RQ 3.0's enqueue_many sends them in one redis-py
    pipeline, a MULTI/EXEC transaction by default, so a connection lost before EXEC
    queues none of them.
    """
    if not jobs:
        return
    queue.enqueue_many([
        rq.Queue.prepare_data(ISSUANCE_JOB_FUNCTION, (str(issuance_id),),
                              **_job_options(issuance_id, job_id))
        for issuance_id, job_id in jobs
    ])
