"""The ends of an issuance attempt, each one Postgres transaction: a stored certificate, a
retry, a delay for a CA rate limit, or failure for good."""

from __future__ import annotations

import datetime
import logging
import uuid

import psycopg
import redis
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from service import metrics
from service.certificate_details import chain_to_pem, describe, seal_private_key
from service.sealed_columns import certificate_key_associated_data
from service.event_types import EventType
from service.force_https import sync_mirror_quietly
from service.queueing import enqueue_issuance, new_job_id
from service.store import certificates as certificate_rows
from service.store import domains as domain_rows
from service.store import events as event_rows
from service.store import issuances as issuance_rows
from service.store.certificates import NewCertificate
from service.store.records import IssuanceRecord
from worker.acme_errors import RETRY_LATER
from worker.context import WorkerContext
from worker.errors import IssuanceCancelled, IssuanceError, SelfCheckFailed
from worker.rate_limit_guard import RateLimitDelay
from worker.renewal_timing import renew_after_by_lifetime

logger = logging.getLogger(__name__)


def lock_current_attempt(connection: psycopg.Connection, issuance: IssuanceRecord) -> IssuanceRecord:
    """Lock the issuance row, raising IssuanceCancelled unless this attempt still owns it.

    The attempt number is a fencing token: once the lost-job recovery has handed the
    issuance to a newer attempt, an older one that is somehow still running cannot
    write its outcome.
    """
    current = issuance_rows.lock_issuance(connection, issuance.id)
    if current is None or current.finished or current.attempt != issuance.attempt:
        raise IssuanceCancelled()
    return current


def store_certificate(context: WorkerContext, issuance: IssuanceRecord,
                      chain: list[x509.Certificate],
                      private_key: ec.EllipticCurvePrivateKey) -> uuid.UUID:
    """Store the certificate and make it the domain's active one, in one transaction.

    Until this commits, the domain's previous certificate (if any) keeps serving.
    """
    details = describe(chain[0])
    certificate_id = uuid.uuid4()
    sealed_key = seal_private_key(context.backends.keyring, private_key,
                                  certificate_key_associated_data(issuance.domain_id))
    with context.backends.database.transaction() as connection:
        lock_current_attempt(connection, issuance)
        certificate_rows.insert_certificate(connection, NewCertificate(
            id=certificate_id, domain_id=issuance.domain_id, source="LETS_ENCRYPT",
            hostnames=details.hostnames, chain_pem=chain_to_pem(chain),
            private_key_sealed=sealed_key, key_type=details.key_type,
            not_before=details.not_before, not_after=details.not_after,
            issuer=details.issuer, serial_number=details.serial_number,
            sha256_fingerprint=details.sha256_fingerprint, warnings=[],
            issuance_id=issuance.id,
            renew_after=renew_after_by_lifetime(details.not_before, details.not_after),
        ))
        domain_rows.update_domain(connection, issuance.domain_id, status="ACTIVE",
                                  certificate_id=certificate_id, last_error="")
        finished = issuance_rows.update_issuance(
            connection, issuance.id, state="SUCCEEDED", certificate_id=certificate_id, error="",
            order_key_sealed=None)
        event_rows.add_event(
            connection, issuance.domain_id, EventType.ISSUANCE_SUCCEEDED,
            f"certificate issued by {details.issuer}, serial {details.serial_number}, "
            f"valid until {details.not_after:%Y-%m-%d %H:%M} UTC", issuance.id)
        domain = domain_rows.get_domain_by_id(connection, issuance.domain_id)
    _count_end(finished, "succeeded")
    logger.info("issuance succeeded hostname=%s issuance_id=%s attempt=%d certificate_id=%s",
                issuance.hostname, issuance.id, issuance.attempt, certificate_id)
    if domain is not None:
        sync_mirror_quietly(context.backends, domain)
    return certificate_id


def record_failure(context: WorkerContext, issuance: IssuanceRecord, error: IssuanceError) -> None:
    """Schedule the next attempt of a retryable failure, or fail the issuance for good."""
    attempt = issuance.attempt
    policy = context.retry_policy
    message = str(error)
    retry_at = policy.next_attempt_at(attempt, error)
    queue = context.backends.issuance_queue()
    job_id = new_job_id(queue, issuance.id) if retry_at is not None else None
    with context.backends.database.transaction() as connection:
        try:
            lock_current_attempt(connection, issuance)
        except IssuanceCancelled:
            return
        if isinstance(error, SelfCheckFailed):
            event_rows.add_event(connection, issuance.domain_id, EventType.SELF_CHECK_FAILED,
                                 error.summary, issuance.id)
        if retry_at is not None:
            # The error shows in the domain's last_error, and as a warning while an older
            # certificate still serves it.
            domain_rows.update_domain(connection, issuance.domain_id, last_error=message)
            issuance_rows.update_issuance(connection, issuance.id, state="QUEUED", error=message,
                                          next_attempt_at=retry_at, job_id=job_id)
            event_rows.add_event(
                connection, issuance.domain_id, EventType.ISSUANCE_RETRY_SCHEDULED,
                f"attempt {attempt} of {policy.max_attempts} failed: {message}; next attempt "
                f"at {retry_at:%Y-%m-%d %H:%M:%S} UTC", issuance.id)
            final = None
        else:
            reason = _giving_up_reason(error, attempt, policy.max_attempts)
            domain = domain_rows.get_domain_by_id(connection, issuance.domain_id)
            if domain is not None:
                status = "ACTIVE" if domain.certificate_id is not None else "FAILED"
                domain_rows.update_domain(connection, domain.id, status=status, last_error=reason)
            final = issuance_rows.update_issuance(connection, issuance.id, state="FAILED",
                                                  error=reason, next_attempt_at=None,
                                                  order_key_sealed=None)
            event_rows.add_event(connection, issuance.domain_id, EventType.ISSUANCE_FAILED,
                                 reason, issuance.id)

    if isinstance(error, SelfCheckFailed):
        metrics.SELF_CHECK_FAILURES.labels(reason=error.reason or "unknown").inc()
    if final is not None:
        _count_end(final, "failed")
        logger.error("issuance failed, giving up hostname=%s issuance_id=%s attempt=%d: %s",
                     issuance.hostname, issuance.id, attempt, _final_text(error))
        return
    metrics.ISSUANCE_ATTEMPTS.labels(outcome="retry").inc()
    logger.warning("issuance attempt failed, will retry hostname=%s issuance_id=%s attempt=%d "
                   "next_attempt_at=%s job_id=%s: %s", issuance.hostname, issuance.id, attempt,
                   retry_at.isoformat(), job_id, message)
    _enqueue(context, issuance, retry_at, job_id)


def record_delay(context: WorkerContext, issuance: IssuanceRecord, delay: RateLimitDelay) -> None:
    """Put the issuance back in the queue until a CA rate limit has room; no attempt is spent."""
    queue = context.backends.issuance_queue()
    job_id = new_job_id(queue, issuance.id)
    with context.backends.database.transaction() as connection:
        try:
            lock_current_attempt(connection, issuance)
        except IssuanceCancelled:
            return
        issuance_rows.update_issuance(connection, issuance.id, state="QUEUED",
                                      attempt=issuance.attempt - 1, error=delay.reason,
                                      next_attempt_at=delay.until, job_id=job_id)
        event_rows.add_event(connection, issuance.domain_id, EventType.RATE_LIMIT_DELAYED,
                             delay.reason, issuance.id)
    metrics.ISSUANCE_ATTEMPTS.labels(outcome="delayed").inc()
    logger.warning("issuance delayed by a rate limit hostname=%s issuance_id=%s "
                   "next_attempt_at=%s job_id=%s: %s", issuance.hostname, issuance.id,
                   delay.until.isoformat(), job_id, delay.reason)
    _enqueue(context, issuance, delay.until, job_id)


def _enqueue(context: WorkerContext, issuance: IssuanceRecord, at: datetime.datetime,
             job_id: str) -> None:
    try:
        enqueue_issuance(context.backends.issuance_queue(), issuance.id, at=at, job_id=job_id)
    except redis.RedisError as error:
        # The row names the job, so the scheduler's lost-job recovery enqueues it later.
        logger.warning("could not enqueue the next attempt, the scheduler will recover it "
                       "hostname=%s issuance_id=%s job_id=%s: %s", issuance.hostname,
                       issuance.id, job_id, error)


def _final_text(error: IssuanceError) -> str:
    """Return the error's text without its promise of another attempt, for the last one."""
    return str(error).removesuffix(RETRY_LATER)


def _giving_up_reason(error: IssuanceError, attempt: int, max_attempts: int) -> str:
    if error.retryable:
        return (f"gave up after {attempt} attempts, the most allowed "
                f"(CERTSVC_RETRY_MAX_ATTEMPTS={max_attempts}); the last one failed: "
                f"{_final_text(error)}. Fix the cause and call RequestCertificate again")
    return (f"attempt {attempt} failed with an error that retrying cannot fix: {error}. "
            "Fix the cause and call RequestCertificate again")


def _count_end(issuance: IssuanceRecord, outcome: str) -> None:
    metrics.ISSUANCE_ATTEMPTS.labels(outcome=outcome).inc()
    metrics.ISSUANCES.labels(outcome=outcome).inc()
    elapsed = (issuance.updated_at - issuance.created_at).total_seconds()
    metrics.ISSUANCE_DURATION.labels(outcome=outcome).observe(max(elapsed, 0.0))
