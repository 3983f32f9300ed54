"""The renewal sweep: fetch ACME Renewal Information (RFC 9773) where the CA offers it, then
queue a renewal for each Let's Encrypt certificate past its renewal time."""

from __future__ import annotations

import datetime
import logging

from acme import client as acme_client
from acme import errors as acme_library_errors

from service import metrics
from service.issuance import queue_issuances
from service.store import renewals as renewal_rows
from service.store.renewals import DueCertificate, ServingCertificate
from worker.acme_client import open_directory_client
from worker.renewal_timing import as_utc, bounded_recheck
from worker.scheduler import SchedulerContext

logger = logging.getLogger(__name__)

# After a renewal issuance failed for good, the next one waits this long; the
# certificate keeps serving meanwhile and expiry warnings tell its owner.
FAILED_RENEWAL_COOLDOWN = datetime.timedelta(hours=6)
# Certificates whose renewal information one run fetches at most.
RENEWAL_INFO_PER_RUN = 500
# Renewals written in one transaction and enqueued in one Redis pipeline.
RENEWAL_BATCH_SIZE = 1000


def renew_due_certificates(context: SchedulerContext) -> int:
    """Refresh renewal information, then queue renewals of due certificates; return how many.

    At most settings.renewal_max_per_run renewals are queued per run. The due
    certificates are read from a server-side cursor and renewed RENEWAL_BATCH_SIZE at a
    time, each batch with one transaction and one Redis pipeline (queue_issuances).
    """
    refresh_renewal_info(context)
    queued = 0
    with context.backends.database.transaction() as connection:
        for due in renewal_rows.stream_due_for_renewal(
                connection, failed_cooldown=FAILED_RENEWAL_COOLDOWN,
                limit=context.settings.renewal_max_per_run, batch_size=RENEWAL_BATCH_SIZE):
            queued += _queue_renewals(context, due)
    return queued


def _queue_renewals(context: SchedulerContext, due: list[DueCertificate]) -> int:
    """Queue renewals of one batch of due certificates; return how many were created."""
    requests = [(certificate.domain_id, _renewal_message(certificate)) for certificate in due]
    created = queue_issuances(context.backends, requests)
    metrics.RENEWALS_QUEUED.inc(len(created))
    by_domain = {certificate.domain_id: certificate for certificate in due}
    for issuance in created:
        certificate = by_domain[issuance.domain_id]
        logger.info("queued renewal hostname=%s issuance_id=%s job_id=%s certificate_id=%s "
                    "renew_after=%s", issuance.hostname, issuance.id, issuance.job_id,
                    certificate.certificate_id, certificate.renew_after.isoformat())
    return len(created)


def _renewal_message(certificate: DueCertificate) -> str:
    return (f"renewal started: the certificate valid until "
            f"{certificate.not_after:%Y-%m-%d %H:%M} UTC reached its renewal time "
            f"{certificate.renew_after:%Y-%m-%d %H:%M} UTC; it keeps serving until its "
            "successor is stored")


def refresh_renewal_info(context: SchedulerContext) -> int:
    """Fetch the CA's suggested renewal window of certificates due a check; return how many.

    A directory without renewalInfo leaves every certificate on the lifetime rule and
    no row is touched, so a CA that adds renewalInfo later is asked at once.
    """
    with context.backends.database.transaction() as connection:
        certificates = renewal_rows.list_due_for_renewal_info(connection, RENEWAL_INFO_PER_RUN)
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
