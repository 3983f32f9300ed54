"""CheckDomain: the self-check run in the api process, recorded in the domain's timeline."""

from __future__ import annotations

import logging

import psycopg

from service import metrics
from service.backends import Backends, redis_unavailable_as_error
from service.callers import Caller
from service.domains import find_visible_domain
from service.errors import FailedPrecondition
from service.event_types import EventType
from service.self_check_body import ensure_self_check_body
from service.store import events as event_rows
from worker.self_check_step import failure_reason
from worker.selfcheck import CheckResult, run_self_check

logger = logging.getLogger(__name__)


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

    result = run_self_check(backends.settings, domain.hostname, body)
    if not result.ok:
        metrics.SELF_CHECK_FAILURES.labels(reason=failure_reason(result)).inc()

    event_type = EventType.SELF_CHECK_PASSED if result.ok else EventType.SELF_CHECK_FAILED
    try:
        with backends.database.transaction() as connection:
            event_rows.add_event(connection, domain.id, event_type, result.summary())
    except psycopg.errors.ForeignKeyViolation:
        logger.info("domain removed during its check hostname=%s", domain.hostname)
    logger.info("checked domain hostname=%s ok=%s", domain.hostname, result.ok)
    return result
