"""RQ job functions. A job carries only an issuance id; Postgres holds the rest."""

from __future__ import annotations

import logging
import uuid

from rq import get_current_job

from worker.context import get_context
from worker.issuer import IssuanceRunner

logger = logging.getLogger(__name__)


def run_issuance(issuance_id: str) -> None:
    """Run one attempt of an issuance (service.queueing.ISSUANCE_JOB_FUNCTION)."""
    job = get_current_job()
    logger.info("issuance job started issuance_id=%s job_id=%s", issuance_id,
                job.id if job else "-")
    IssuanceRunner(get_context()).run(uuid.UUID(issuance_id))
