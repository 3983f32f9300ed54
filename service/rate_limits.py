"""CA rate limits that certsvc keeps below: their definitions, defaults per ACME directory
and the CERTSVC_ACME_RATE_LIMITS syntax."""

from __future__ import annotations

import dataclasses
import datetime
import re

# Let's Encrypt's production directory and its published limits for one-name
# certificates (letsencrypt.org/docs/rate-limits, read in 2025). Renewals are exempt
# from the per-registered-domain limit there.
LETS_ENCRYPT_DIRECTORY_URL = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_LIMITS_TEXT = (
    "orders_per_account=300/3h,"
    "orders_per_registered_domain=50/7d,"
    "orders_per_hostname=5/7d,"
    "failed_validations_per_hostname=5/1h"
)

KINDS = {"orders": "order", "failed_validations": "failed_validation"}
SCOPES = ("account", "registered_domain", "hostname")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RULE = re.compile(r"^(orders|failed_validations)_per_(account|registered_domain|hostname)"
                   r"=(\d+)/(\d+)([smhd])$")


class RateLimitSyntaxError(ValueError):
    """A rate limit rule does not follow NAME=COUNT/WINDOW."""


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """At most `limit` ledger entries of one kind per scope within a sliding window."""

    kind: str
    """"order" (a new order placed) or "failed_validation" (an authorization that failed)."""
    scope: str
    """What the entries are counted by: "account", "registered_domain" or "hostname"."""
    limit: int
    window: datetime.timedelta

    @property
    def name(self) -> str:
        plural = "orders" if self.kind == "order" else "failed_validations"
        return f"{plural}_per_{self.scope}"

    def describe(self) -> str:
        """Return the rule in words, for example "50 new orders per registered domain in 7 d"."""
        what = "new orders" if self.kind == "order" else "failed validations"
        return f"{self.limit} {what} per {self.scope.replace('_', ' ')} in {_format_window(self.window)}"


def parse_rate_limits(text: str) -> tuple[RateLimit, ...]:
    """Parse comma-separated NAME=COUNT/WINDOW rules; "none" means no limits."""
    text = text.strip()
    if text.lower() == "none":
        return ()
    limits = []
    for part in text.split(","):
        part = part.strip()
        match = _RULE.match(part)
        if not match:
            raise RateLimitSyntaxError(
                f"{part!r} is not a rule like orders_per_registered_domain=50/7d "
                "(kinds: orders, failed_validations; scopes: account, registered_domain, "
                "hostname; window units: s, m, h, d)")
        plural, scope, count, amount, unit = match.groups()
        window = datetime.timedelta(seconds=int(amount) * _UNITS[unit])
        if int(count) < 1 or window.total_seconds() < 1:
            raise RateLimitSyntaxError(f"{part!r} needs a count and a window of at least 1")
        limits.append(RateLimit(KINDS[plural], scope, int(count), window))
    return tuple(limits)


def default_rate_limits(directory_url: str) -> tuple[RateLimit, ...]:
    """Return the published limits of a known CA directory, or none for any other."""
    if directory_url.rstrip("/") == LETS_ENCRYPT_DIRECTORY_URL:
        return parse_rate_limits(LETS_ENCRYPT_LIMITS_TEXT)
    # NOTE: Let's Encrypt's staging directory has far higher limits than production;
    # they are not listed here, so staging runs without certsvc's own limits.
    return ()


def _format_window(window: datetime.timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
