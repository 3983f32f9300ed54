"""The warnings a Domain message carries: conditions that need the user's attention."""

from __future__ import annotations

import datetime

from service import force_https
from service.store.records import DomainRecord


def domain_warnings(domain: DomainRecord, now: datetime.datetime | None = None) -> list[str]:
    """Return one sentence per condition to fix, in a stable order."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    warnings = []
    redirect_warning = force_https.not_effective_warning(domain, now)
    if redirect_warning:
        warnings.append(redirect_warning)
    return warnings
