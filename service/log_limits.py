"""Logging of an event that can repeat thousands of times a second, such as failures
during an outage: the first occurrence, then one line per interval with a count."""

from __future__ import annotations

import math
import time


class RepeatedEvent:
    """A count of one event's occurrences that decides when a log line is due.

    Not thread-safe: callers on several threads hold a lock around occurred().
    """

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self._count = 0
        self._last_report = -math.inf

    def occurred(self) -> int | None:
        """Count one occurrence. Return the occurrences since the last report when a log
        line is due, the first time included, else None."""
        self._count += 1
        now = time.monotonic()
        if now - self._last_report < self.interval_seconds:
            return None
        count, self._count = self._count, 0
        self._last_report = now
        return count
