"""Expiry warnings: an event, a log line and a metric when a certificate that is not being
renewed comes within 14, 7 and 1 days of expiry, and once it has expired.

Let's Encrypt stopped sending expiry e-mails in 2025, so the platform warns its
customers itself. Uploaded and platform certificates are never renewed by certsvc; a
Let's Encrypt certificate is warned about once its renewal time passed without a
successor.
"""

from __future__ import annotations

import datetime
import logging

import psycopg

from service import metrics
from service.event_types import EventType
from service.store import events as event_rows
from service.store import platform_certificates as platform_rows
from service.store import renewals as renewal_rows
from service.store.renewals import ServingCertificate
from worker.scheduler import SchedulerContext

logger = logging.getLogger(__name__)

THRESHOLD_DAYS = (14, 7, 1)
BATCH_SIZE = 1000


def threshold_for(left: datetime.timedelta) -> int | None:
    """Return the warning threshold crossed with `left` time to go (0: expired), or None."""
    if left <= datetime.timedelta(0):
        return 0
    crossed = [days for days in THRESHOLD_DAYS if left <= datetime.timedelta(days=days)]
    return min(crossed) if crossed else None


def warn_expiring_certificates(context: SchedulerContext) -> int:
    """Record an event for each certificate that crossed a threshold since the last run."""
    now = datetime.datetime.now(datetime.timezone.utc)
    horizon = datetime.timedelta(days=max(THRESHOLD_DAYS))
    warned = 0
    with context.backends.database.transaction() as connection:
        for certificate in renewal_rows.list_expiring_not_renewing(connection, horizon, BATCH_SIZE):
            days = threshold_for(certificate.not_after - now)
            if days is None or not renewal_rows.add_expiry_warning(
                    connection, certificate.certificate_id, days):
                continue
            message = _message(certificate, days)
            event_rows.add_event(connection, certificate.domain_id,
                                 EventType.CERTIFICATE_EXPIRING, message)
            metrics.EXPIRY_WARNINGS.labels(days=str(days)).inc()
            logger.warning("certificate expiring hostname=%s certificate_id=%s source=%s "
                           "not_after=%s threshold_days=%d", certificate.hostname,
                           certificate.certificate_id, certificate.source,
                           certificate.not_after.isoformat(), days)
            warned += 1
        warned += _warn_expiring_platform_certificates(connection, now, horizon)
    return warned


def _warn_expiring_platform_certificates(connection: psycopg.Connection, now: datetime.datetime,
                                         horizon: datetime.timedelta) -> int:
    """Warn the operator about the platform certificate, which serves every platform
    hostname; the log and the metric carry it, as no single domain owns it."""
    warned = 0
    for certificate in platform_rows.list_expiring(connection, horizon):
        days = threshold_for(certificate.not_after - now)
        if days is None or not platform_rows.add_expiry_warning(connection, certificate.id, days):
            continue
        metrics.EXPIRY_WARNINGS.labels(days=str(days)).inc()
        logger.warning("platform certificate expiring platform_domain=%s certificate_id=%s "
                       "not_after=%s threshold_days=%d; install a new one with certsvc "
                       "platform-cert", certificate.platform_domain, certificate.id,
                       certificate.not_after.isoformat(), days)
        warned += 1
    return warned


def _message(certificate: ServingCertificate, days: int) -> str:
    expiry = f"{certificate.not_after:%Y-%m-%d %H:%M} UTC"
    if days == 0:
        return f"the certificate of {certificate.hostname} expired on {expiry}"
    if certificate.source == "LETS_ENCRYPT":
        cause = "its renewal has not succeeded yet; see the events before this one"
    else:
        cause = ("certsvc does not renew uploaded certificates: upload a new one, or call "
                 "RequestCertificate to switch to Let's Encrypt")
    return (f"the certificate of {certificate.hostname} expires within {days} "
            f"day{'s' if days > 1 else ''}, on {expiry}; {cause}")
