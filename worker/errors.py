"""Issuance failures, split by whether another attempt can succeed."""

from __future__ import annotations

import datetime


class IssuanceError(Exception):
    """An attempt failed; the message is written for the domain's owner."""

    retryable = False

    def __init__(self, message: str, *, retry_after: datetime.datetime | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientIssuanceError(IssuanceError):
    """A failure that may pass: a timeout, a lost connection, a CA error or rate limit."""

    retryable = True


class PermanentIssuanceError(IssuanceError):
    """A failure that repeats until something changes: the CA rejected the name, CAA forbids."""


class SelfCheckFailed(IssuanceError):
    """The self-check or the CAA gate failed, so no order was placed.

    Retryable: the check spends none of the CA's rate limits, and the usual causes
    (DNS not yet pointed at the platform, a proxy rule) are fixed by the user while
    the issuance waits. reason labels the cause for metrics; summary is the check's
    full story (each hop) for the domain's timeline.
    """

    retryable = True

    def __init__(self, message: str, reason: str = "unknown", summary: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.summary = summary or message


class IssuanceCancelled(Exception):
    """The issuance was removed, finished elsewhere or taken over by a newer attempt."""
