"""Logging of repeated events: the first occurrence, then a count per interval."""

from __future__ import annotations

import time

from service.log_limits import RepeatedEvent


def test_first_occurrence_reported() -> None:
    event = RepeatedEvent(interval_seconds=60)

    assert event.occurred() == 1


def test_repeats_counted_until_interval_ends() -> None:
    event = RepeatedEvent(interval_seconds=0.2)
    event.occurred()

    within = [event.occurred() for _ in range(3)]
    time.sleep(0.25)
    after = event.occurred()
    again = event.occurred()

    assert within == [None, None, None]
    assert after == 4
    assert again is None
