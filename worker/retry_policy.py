"""When a failed issuance attempt runs again: exponential backoff with jitter and a ceiling."""

from __future__ import annotations

import datetime
import random

from worker.errors import IssuanceError

MAX_ATTEMPTS = 6
FIRST_RETRY_DELAY_SECONDS = 30.0
MAX_RETRY_DELAY_SECONDS = 3600.0
# A Retry-After from the CA is honoured up to this long.
MAX_RETRY_AFTER_SECONDS = 6 * 3600.0
# Each delay is spread by up to this fraction either way.
JITTER = 0.2


def retry_delay_seconds(attempt: int) -> float:
    """Return the delay after failed attempt number attempt (1-based), before jitter."""
    return min(FIRST_RETRY_DELAY_SECONDS * 2 ** (attempt - 1), MAX_RETRY_DELAY_SECONDS)


def next_attempt_at(attempt: int, error: IssuanceError,
                    now: datetime.datetime | None = None) -> datetime.datetime | None:
    """Return when to try again after failed attempt number attempt, or None to give up."""
    if attempt >= MAX_ATTEMPTS:
        return None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    delay = retry_delay_seconds(attempt) * random.uniform(1 - JITTER, 1 + JITTER)
    if error.retry_after is not None:
        requested = (error.retry_after - now).total_seconds()
        delay = max(delay, min(requested, MAX_RETRY_AFTER_SECONDS))
    return now + datetime.timedelta(seconds=delay)
