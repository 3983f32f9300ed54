"""The renewal sweep: fetch ACME Renewal Information (RFC 9773) where the CA offers it, then
queue a renewal for each Let's Encrypt certificate past its renewal time."""

from __future__ import annotations

import datetime
import logging

from acme import client as acme_client
from acme import errors as acme_library_errors

from service import metrics
from service.errors import NotFound
from service.issuance import queue_issuance
from service.store import renewals as renewal_rows
from service.store.renewals import ServingCertificate
from worker.acme_client import open_directory_client
from worker.renewal_timing import as_utc, bounded_recheck
from worker.scheduler import SchedulerContext

logger = logging.getLogger(__name__)

# After a renewal issuance failed for good, the next one waits this long; the
# certificate keeps serving meanwhile and expiry warnings tell its owner.
FAILED_RENEWAL_COOLDOWN = datetime.timedelta(hours=6)
BATCH_SIZE = 500


def renew_due_certificates(context: SchedulerContext) -> int:
    """Refresh renewal information, then queue renewals of due certificates; return how many."""
    refresh_renewal_info(context)
    with context.backends.database.transaction() as connection:
        due = renewal_rows.list_due_for_renewal(connection, failed_cooldown=FAILED_RENEWAL_COOLDOWN,
                                                limit=BATCH_SIZE)
    queued = 0
    for certificate in due:
        message = (f"renewal started: the certificate valid until "
                   f"{certificate.not_after:%Y-%m-%d %H:%M} UTC reached its renewal time "
                   f"{certificate.renew_after:%Y-%m-%d %H:%M} UTC; it keeps serving until its "
                   "successor is stored")
        try:
            issuance, created = queue_issuance(context.backends, certificate.domain_id, message)
        except NotFound:
            continue  # the domain was removed since the query
        if created:
            queued += 1
            metrics.RENEWALS_QUEUED.inc()
            logger.info("queued renewal hostname=%s issuance_id=%s certificate_id=%s "
                        "renew_after=%s", certificate.hostname, issuance.id,
                        certificate.certificate_id, certificate.renew_after.isoformat())
    return queued


def refresh_renewal_info(context: SchedulerContext) -> int:
    """Fetch the CA's suggested renewal window of certificates due a check; return how many.

    A directory without renewalInfo leaves every certificate on the lifetime rule and
    no row is touched, so a CA that adds renewalInfo later is asked at once.
    """
    with context.backends.database.transaction() as connection:
        certificates = renewal_rows.list_due_for_renewal_info(connection, BATCH_SIZE)
    if not certificates:
        return 0
    try:
        client = open_directory_client(context.settings)
    except Exception as error:  # the CA is unreachable: the lifetime rule still applies
        logger.warning("cannot fetch the ACME directory for renewal information directory=%s: "
                       "%s", context.settings.acme_directory_url, error)
        return 0
    try:
        client.directory["renewalInfo"]
    except KeyError:
        return 0
    checked = 0
    for certificate in certificates:
        _refresh_one(context, client, certificate)
        checked += 1
    return checked


def _refresh_one(context: SchedulerContext, client: acme_client.ClientV2,
                 certificate: ServingCertificate) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf_pem = certificate.chain_pem.split("-----END CERTIFICATE-----")[0] + \
        "-----END CERTIFICATE-----\n"
    renew_after: datetime.datetime | None
    try:
        suggested, next_check = client.renewal_time(leaf_pem.encode())
    except acme_library_errors.ARIError as error:
        logger.warning("cannot fetch renewal information, will retry hostname=%s "
                       "certificate_id=%s next_check_at=%s: %s", certificate.hostname,
                       certificate.certificate_id, as_utc(error.retry_after).isoformat(), error)
        renew_after, next_check = None, error.retry_after
    else:
        renew_after = None if suggested is None else min(as_utc(suggested), certificate.not_after)
    next_check_at = bounded_recheck(as_utc(next_check), now)
    with context.backends.database.transaction() as connection:
        renewal_rows.set_renewal_info(connection, certificate.certificate_id,
                                      renew_after=renew_after, next_check_at=next_check_at)
    if renew_after is not None and renew_after != certificate.renew_after:
        logger.info("renewal time set by the CA's renewal information hostname=%s "
                    "certificate_id=%s renew_after=%s next_check_at=%s", certificate.hostname,
                    certificate.certificate_id, renew_after.isoformat(), next_check_at.isoformat())
