"""When a failed issuance attempt runs again: exponential backoff with jitter and a ceiling,
Retry-After from the CA honoured up to a cap, and a limit on attempts."""

from __future__ import annotations

import dataclasses
import datetime
import random

from service.config import Settings
from worker.errors import IssuanceError

# Each delay is spread by up to this fraction either way, so that issuances that
# failed together (a CA outage) do not all come back in the same second.
JITTER = 0.2


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    first_delay_seconds: float
    max_delay_seconds: float
    max_attempts: int
    max_retry_after_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(first_delay_seconds=settings.retry_first_delay_seconds,
                   max_delay_seconds=settings.retry_max_delay_seconds,
                   max_attempts=settings.retry_max_attempts,
                   max_retry_after_seconds=settings.retry_after_max_seconds)

    def delay_seconds(self, attempt: int) -> float:
        """Return the wait after failed attempt number attempt (1-based), before jitter."""
        exponent = min(attempt - 1, 62)
        return min(self.first_delay_seconds * 2 ** exponent, self.max_delay_seconds)

    def next_attempt_at(self, attempt: int, error: IssuanceError,
                        now: datetime.datetime | None = None) -> datetime.datetime | None:
        """Return when to try again after failed attempt number attempt, or None to give up.

        A Retry-After later than the backoff delay wins, up to max_retry_after_seconds.
        """
        if not error.retryable or attempt >= self.max_attempts:
            return None
        now = now or datetime.datetime.now(datetime.timezone.utc)
        delay = self.delay_seconds(attempt) * random.uniform(1 - JITTER, 1 + JITTER)
        if error.retry_after is not None:
            requested = (error.retry_after - now).total_seconds()
            delay = max(delay, min(requested, self.max_retry_after_seconds))
        return now + datetime.timedelta(seconds=delay)
