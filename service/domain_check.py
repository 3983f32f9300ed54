"""CheckDomain: the self-check run in the api process, recorded in the domain's timeline."""

from __future__ import annotations

import logging
import threading

import psycopg

from service import metrics
from service.backends import Backends, redis_unavailable_as_error
from service.callers import Caller
from service.domains import find_visible_domain
from service.errors import FailedPrecondition, ResourceExhausted
from service.event_types import EventType
from service.self_check_body import ensure_self_check_body
from service.store import domains as domain_rows
from service.store import events as event_rows
from worker.self_check_step import failure_reason
from worker.selfcheck import CheckResult, run_self_check

logger = logging.getLogger(__name__)

# A check can take CERTSVC_CHECK_DEADLINE_SECONDS, so checks get only a few of the api's
# RPC threads; the others keep serving fast calls such as GetCertificate.
MAX_CONCURRENT_CHECKS = 8
_running_checks = threading.BoundedSemaphore(MAX_CONCURRENT_CHECKS)


def check_domain(backends: Backends, caller: Caller, hostname_text: str) -> CheckResult:
    """Run the self-check for a domain now, within CERTSVC_CHECK_DEADLINE_SECONDS."""
    with backends.database.transaction() as connection:
        domain = find_visible_domain(connection, caller, hostname_text)
    if domain.wildcard:
        raise FailedPrecondition(
            f"{domain.hostname} is a wildcard domain: there is no single host name to fetch, "
            "so the HTTP-01 self-check cannot run; check each host name it serves instead"
        )
    with redis_unavailable_as_error("creating the self-check body"):
        body = ensure_self_check_body(backends.redis, backends.keys, domain.hostname)

    if not _running_checks.acquire(blocking=False):
        raise ResourceExhausted(
            f"{MAX_CONCURRENT_CHECKS} self-checks are already running on this api; try again "
            "in a few seconds")
    try:
        result = run_self_check(backends.settings, domain.hostname, body)
    finally:
        _running_checks.release()
    if not result.ok:
        metrics.SELF_CHECK_FAILURES.labels(reason=failure_reason(result)).inc()

    event_type = EventType.SELF_CHECK_PASSED if result.ok else EventType.SELF_CHECK_FAILED
    try:
        with backends.database.transaction() as connection:
            event_rows.add_event(connection, domain.id, event_type, result.summary())
            # A domain without a serving certificate shows why it would not get one.
            if domain.status != "ACTIVE":
                domain_rows.update_domain(connection, domain.id,
                                          last_error="" if result.ok else result.message)
    except psycopg.errors.ForeignKeyViolation:
        logger.info("domain removed during its check hostname=%s", domain.hostname)
    logger.info("checked domain hostname=%s ok=%s", domain.hostname, result.ok)
    return result
