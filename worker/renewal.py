"""The renewal sweep: fetch ACME Renewal Information (RFC 9773) where the CA offers it, then
queue a renewal for each Let's Encrypt certificate past its renewal time."""

from __future__ import annotations

import dataclasses
import datetime
import logging
from concurrent.futures import Future, ThreadPoolExecutor

import redis
from acme import client as acme_client
from acme import errors as acme_library_errors

from service import issuance, metrics, queueing
from service.backends import redis_unavailable_as_error
from service.errors import Unavailable
from service.store import renewals as renewal_rows
from service.store.records import IssuanceRecord
from service.store.renewals import DueCertificate, ServingCertificate
from worker.acme_client import open_directory_client
from worker.renewal_timing import as_utc, bounded_recheck
from worker.scheduler import SchedulerContext

logger = logging.getLogger(__name__)

# After a renewal issuance failed for good, the next one waits this long; the
# certificate keeps serving meanwhile and expiry warnings tell its owner.
FAILED_RENEWAL_COOLDOWN = datetime.timedelta(hours=6)
# The max number of certificates whose renewal information one run fetches.
RENEWAL_INFO_PER_RUN = 500
# Renewals written in one transaction and enqueued in one Redis pipeline.
RENEWAL_BATCH_SIZE = 1000


def renew_due_certificates(context: SchedulerContext) -> int:
    """Refresh renewal information, then queue renewals of due certificates; return how many.

    At most settings.renewal_max_per_run renewals are queued per run. The due
    certificates are read from a server-side cursor, RENEWAL_BATCH_SIZE at a time. Each
    batch's issuances are written in one transaction. After the commit, a background
    thread enqueues their jobs in one Redis pipeline while this thread writes the next
    batch, so at most two batches are held in memory.
    """
    refresh_renewal_info(context)
    backends = context.backends
    queue = backends.issuance_queue()
    queued = 0
    with backends.database.transaction() as connection, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="renewal-enqueue") as enqueuer:
        previous: _RenewalBatch | None = None
        try:
            for due in renewal_rows.stream_due_for_renewal(
                    connection, failed_cooldown=FAILED_RENEWAL_COOLDOWN,
                    limit=context.settings.renewal_max_per_run, batch_size=RENEWAL_BATCH_SIZE):
                # Write no rows while the queue is unreachable.
                with redis_unavailable_as_error("queueing renewals"):
                    backends.redis.ping()
                requests = [(certificate.domain_id, certificate.certificate_id,
                             _renewal_message(certificate)) for certificate in due]
                created = issuance.create_issuances(backends, queue, requests)
                if previous is not None:
                    finished, previous = previous, None
                    queued += _finish(finished)
                jobs = [(record.id, record.job_id) for record in created]
                previous = _RenewalBatch(due, created,
                                         enqueuer.submit(queueing.enqueue_issuances, queue, jobs))
        except BaseException:
            # The background thread still enqueues its batch, or the lost-job recovery
            # does. Count and log that batch before the error propagates.
            if previous is not None:
                try:
                    _finish(previous)
                except Unavailable:
                    pass  # _finish logged it, and the lost-job recovery enqueues the batch
                except Exception:
                    logger.exception("enqueueing the last batch of renewals failed while the "
                                     "sweep was failing")
            raise
        if previous is not None:
            queued += _finish(previous)
    return queued


@dataclasses.dataclass(frozen=True)
class _RenewalBatch:
    """Renewals written in one transaction, and the enqueueing of their jobs."""

    due: list[DueCertificate]
    created: list[IssuanceRecord]
    enqueued: Future[None]


def _finish(batch: _RenewalBatch) -> int:
    """Wait until a batch's jobs are enqueued, then count and log them; return how many."""
    try:
        batch.enqueued.result()
    except redis.RedisError as error:
        logger.warning("could not enqueue a batch of renewals, the lost-job recovery will "
                       "enqueue them count=%d first_issuance_id=%s: %s", len(batch.created),
                       batch.created[0].id if batch.created else "-", error)
        raise Unavailable("Redis is unavailable, so the renewals written in this run wait "
                          "for the lost-job recovery to enqueue them") from error
    metrics.RENEWALS_QUEUED.inc(len(batch.created))
    by_domain = {certificate.domain_id: certificate for certificate in batch.due}
    for record in batch.created:
        certificate = by_domain[record.domain_id]
        logger.info("queued renewal hostname=%s issuance_id=%s job_id=%s certificate_id=%s "
                    "renew_after=%s", record.hostname, record.id, record.job_id,
                    certificate.certificate_id, certificate.renew_after.isoformat())
    return len(batch.created)


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
