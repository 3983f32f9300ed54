"""Stable codes of the events in a domain's timeline."""

from __future__ import annotations

import enum


class EventType(enum.StrEnum):
    DOMAIN_ADDED = "DOMAIN_ADDED"
    FORCE_HTTPS_CHANGED = "FORCE_HTTPS_CHANGED"
    ISSUANCE_QUEUED = "ISSUANCE_QUEUED"
    ISSUANCE_STARTED = "ISSUANCE_STARTED"
    ORDER_CREATED = "ORDER_CREATED"
    CHALLENGES_ANSWERED = "CHALLENGES_ANSWERED"
    ORDER_FINALIZED = "ORDER_FINALIZED"
    ISSUANCE_SUCCEEDED = "ISSUANCE_SUCCEEDED"
    ISSUANCE_RETRY_SCHEDULED = "ISSUANCE_RETRY_SCHEDULED"
    ISSUANCE_FAILED = "ISSUANCE_FAILED"
    CERTIFICATE_UPLOADED = "CERTIFICATE_UPLOADED"
    # An issuance stopped before it finished, for example because a custom certificate
    # was uploaded meanwhile.
    ISSUANCE_CANCELLED = "ISSUANCE_CANCELLED"
