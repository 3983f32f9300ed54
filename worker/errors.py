"""Why an issuance attempt failed, and whether trying again can help."""

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


class IssuanceCancelled(Exception):
    """The issuance was removed, finished elsewhere or taken over by a newer attempt."""


class SelfCheckFailed(TransientIssuanceError):
    """The domain failed the HTTP self-check, so no order was placed; reason labels the cause."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
