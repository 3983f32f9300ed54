"""Errors that certsvc operations report to their callers.

Each class maps to one gRPC status code in service/api/status.py. Messages are
written for the person who reads them: what failed, for which hostname, and what to
do next.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class FieldViolation:
    """One problem with one request field."""

    field: str
    description: str


class CertsvcError(Exception):
    """Base of the errors that an operation reports to its caller."""


class InvalidArgument(CertsvcError):
    """The request is malformed; violations name each field and its problem."""

    def __init__(self, message: str, violations: list[FieldViolation] | None = None) -> None:
        super().__init__(message)
        self.violations = violations or []

    @classmethod
    def for_field(cls, field: str, description: str) -> InvalidArgument:
        return cls(description, [FieldViolation(field, description)])


class NotFound(CertsvcError):
    """The named domain, issuance or certificate does not exist for this caller."""


class AlreadyExists(CertsvcError):
    """The hostname belongs to another app."""


class FailedPrecondition(CertsvcError):
    """The request is valid but the domain's state does not allow it."""


class PermissionDenied(CertsvcError):
    """The caller may see the domain but not do this with it."""


class Unauthenticated(CertsvcError):
    """The call carries no valid credentials."""


class ResourceExhausted(CertsvcError):
    """Too many calls of an expensive kind are running; retrying a little later works."""


class Unavailable(CertsvcError):
    """A backing service (Postgres or Redis) cannot be reached; retrying later may work."""


class DataLoss(CertsvcError):
    """Stored data cannot be read back, for example a sealed key that fails authentication."""
