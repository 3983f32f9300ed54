"""The self-check step of an issuance attempt: a seam between the worker and the check itself.

Before an attempt places an order it calls WorkerContext.self_check(hostname). A
failing result becomes a SelfCheckFailed error, so the attempt ends without spending
an order, records a SELF_CHECK_FAILED event and a domain warning, and retries on the
normal backoff.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class SelfCheckResult:
    """Outcome of fetching http://<hostname>/.well-known/acme-challenge/<self-check token>."""

    ok: bool
    reason: str = ""
    """Short label of the cause for metrics, for example "dns", "connection", "status" or "body"."""
    message: str = ""
    """What failed, with the URL and each redirect hop, and what to fix; for the domain's owner."""


SelfCheck = Callable[[str], SelfCheckResult]


def skip_self_check(hostname: str) -> SelfCheckResult:
    """Pass every hostname without fetching anything."""
    return SelfCheckResult(ok=True)


# TODO: the HTTP self-check (store a body in Redis, fetch it through the responder,
# compare) replaces this default in WorkerContext once it exists.
DEFAULT_SELF_CHECK: SelfCheck = skip_self_check
