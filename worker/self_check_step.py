"""The self-check step of an issuance attempt: the seam between the worker and the check.

Before an attempt places an order it calls WorkerContext.self_check(hostname), by
default HttpSelfCheck (the HTTP-01 self-check and CAA gate of worker/selfcheck.py). A
failing result becomes a SelfCheckFailed error, so the attempt ends without spending
an order, records a SELF_CHECK_FAILED event and a domain warning, and retries on the
normal backoff.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import redis

from service.config import Settings
from service.redis_keys import RedisKeys
from service.self_check_body import ensure_self_check_body
from worker.errors import TransientIssuanceError
from worker.selfcheck import REDIRECT_STATUSES, CheckResult, run_self_check


@dataclasses.dataclass(frozen=True)
class SelfCheckResult:
    """Outcome of fetching http://<hostname>/.well-known/acme-challenge/<self-check token>."""

    ok: bool
    reason: str = ""
    """Short label of the cause for metrics: "dns", "caa", "connection", "timeout",
    "redirect", "status" or "body"."""
    message: str = ""
    """What failed and what to fix, in one sentence for the domain's owner."""
    summary: str = ""
    """The message with each request made, for the domain's timeline."""


SelfCheck = Callable[[str], SelfCheckResult]


def skip_self_check(hostname: str) -> SelfCheckResult:
    """Pass every hostname without fetching anything (for tests of other steps)."""
    return SelfCheckResult(ok=True)


class HttpSelfCheck:
    """The HTTP-01 self-check against the body the responder serves for the host."""

    def __init__(self, settings: Settings, redis_client: redis.Redis, keys: RedisKeys) -> None:
        self.settings = settings
        self.redis = redis_client
        self.keys = keys

    def __call__(self, hostname: str) -> SelfCheckResult:
        try:
            body = ensure_self_check_body(self.redis, self.keys, hostname)
        except redis.RedisError as error:
            raise TransientIssuanceError(
                f"Redis is unavailable, so the self-check of {hostname} could not start "
                f"({error}); certsvc tries again") from error
        result = run_self_check(self.settings, hostname, body)
        return SelfCheckResult(ok=result.ok, reason=failure_reason(result),
                               message=result.message, summary=result.summary())


def failure_reason(result: CheckResult) -> str:
    """Return a short label for why a self-check failed, or "" when it passed."""
    if result.ok:
        return ""
    if not result.hops:
        # No request was made: the name did not resolve, or only the CAA gate failed.
        return "caa" if "CAA" in result.message else "dns"
    last = result.hops[-1]
    if last.status == 0:
        return "timeout" if "timed out" in last.error else "connection"
    if last.status in REDIRECT_STATUSES:
        return "redirect"
    if last.status != 200:
        return "status"
    return "caa" if "CAA" in result.message else "body"
