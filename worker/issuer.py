"""One issuance attempt, step by step: lock, check again, self-check, order (or resume the
order of an earlier attempt), validate, finalize, save."""

from __future__ import annotations

import datetime
import logging
import time
import uuid

import psycopg
from acme import messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from service import metrics
from service.certificate_details import seal_private_key
from service.encryption import UnsealError
from service.event_types import EventType
from service.queueing import enqueue_issuance
from service.sealed_columns import order_key_associated_data
from service.store import domains as domain_rows
from service.store import events as event_rows
from service.store import issuances as issuance_rows
from service.store import ledger as ledger_rows
from service.store import locks
from service.store.ledger import LedgerEntry
from service.store.records import DomainRecord, IssuanceRecord
from worker import acme_errors, outcomes
from worker.acme_client import AcmeSession
from worker.context import WorkerContext
from worker.errors import IssuanceCancelled, IssuanceError, SelfCheckFailed
from worker.issued_chain import parse_fullchain, verify_issued_chain
from worker.orders import OrderSteps, ValidationFailed
from service.validation.public_suffix import registered_domain
from worker.rate_limit_guard import RateLimitDelay, reserve_order
from worker.self_check_step import skip_self_check

logger = logging.getLogger(__name__)

# A job that finds the domain locked by another worker runs again after this delay.
LOCK_BUSY_RETRY_SECONDS = 3.0
# A job that comes this early for its issuance's next attempt still runs it, so that
# small clock differences between machines do not strand a retry.
DUE_TOLERANCE = datetime.timedelta(seconds=1)


class RateLimitReached(Exception):
    """A new order would exceed a CA rate limit; the delay says until when and why."""

    def __init__(self, delay: RateLimitDelay) -> None:
        super().__init__(delay.reason)
        self.delay = delay


class IssuanceRunner:
    """Runs issuance attempts in a worker process."""

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.database = context.backends.database

    def run(self, issuance_id: uuid.UUID, job_id: str | None = None) -> None:
        """Run one attempt of an issuance unless it is finished or another worker has it."""
        with self.database.transaction() as connection:
            issuance = issuance_rows.get_issuance(connection, issuance_id)
        if issuance is None:
            logger.info("issuance not found, nothing to do issuance_id=%s", issuance_id)
            return
        if issuance.finished:
            logger.info("issuance already finished issuance_id=%s state=%s",
                        issuance_id, issuance.state)
            return

        lock_connection = self.context.lock_connection()
        if not locks.try_lock_domain(lock_connection, issuance.domain_id):
            self._on_lock_busy(issuance, job_id)
            return
        try:
            self._run_locked(issuance_id)
        finally:
            try:
                locks.unlock_domain(lock_connection, issuance.domain_id)
            except psycopg.Error:
                # Closing the session releases its advisory locks too.
                lock_connection.close()

    def _on_lock_busy(self, issuance: IssuanceRecord, job_id: str | None) -> None:
        if job_id is not None and issuance.job_id is not None and job_id != issuance.job_id:
            # A duplicate (a recovered job whose original turned up): the holder of the
            # lock, or the job the row names, carries the issuance on.
            logger.info("domain locked and this job is a duplicate, dropping it hostname=%s "
                        "issuance_id=%s job_id=%s", issuance.hostname, issuance.id, job_id)
            return
        retry_at = _utc_now() + datetime.timedelta(seconds=LOCK_BUSY_RETRY_SECONDS)
        logger.info("domain locked by another worker, retrying later hostname=%s "
                    "issuance_id=%s job_id=%s", issuance.hostname, issuance.id, job_id)
        enqueue_issuance(self.context.backends.issuance_queue(), issuance.id, at=retry_at)

    def _run_locked(self, issuance_id: uuid.UUID) -> None:
        started = time.monotonic()
        begun = self._begin_attempt(issuance_id)
        if begun is None:
            return
        issuance, domain = begun
        logger.info("starting issuance attempt hostname=%s issuance_id=%s attempt=%d",
                    issuance.hostname, issuance.id, issuance.attempt)
        try:
            self._attempt(issuance, domain)
        except IssuanceCancelled:
            logger.info("issuance removed or taken over while running issuance_id=%s attempt=%d",
                        issuance.id, issuance.attempt)
        except RateLimitReached as reached:
            outcomes.record_delay(self.context, issuance, reached.delay)
        except IssuanceError as error:
            outcomes.record_failure(self.context, issuance, error)
        except Exception as error:  # a bug or an unclassified failure: retry, within limits
            logger.exception("issuance attempt failed unexpectedly hostname=%s issuance_id=%s "
                             "attempt=%d", issuance.hostname, issuance.id, issuance.attempt)
            outcomes.record_failure(self.context, issuance,
                                    acme_errors.from_exception(error, issuance.hostname))
        finally:
            metrics.ATTEMPT_DURATION.observe(time.monotonic() - started)

    def _begin_attempt(self, issuance_id: uuid.UUID
                       ) -> tuple[IssuanceRecord, DomainRecord] | None:
        """Check again under the lock and start the next attempt, in one transaction.

        Returns None when there is nothing to do: the issuance finished meanwhile, its
        next attempt is not due, or its domain is gone.
        """
        policy = self.context.retry_policy
        with self.database.transaction() as connection:
            issuance = issuance_rows.lock_issuance(connection, issuance_id)
            if issuance is None or issuance.finished:
                return None
            due = issuance.next_attempt_at
            if due is not None and due > _utc_now() + DUE_TOLERANCE:
                logger.info("issuance not due yet issuance_id=%s next_attempt_at=%s",
                            issuance_id, due.isoformat())
                return None
            domain = domain_rows.get_domain_by_id(connection, issuance.domain_id)
            if domain is None:
                return None
            if issuance.attempt >= policy.max_attempts:
                # Only an attempt that was interrupted (its worker stopped) gets here.
                reason = (f"gave up after {issuance.attempt} attempts, the most allowed; the "
                          f"last one was interrupted. Last error: {issuance.error or 'none'}")
                domain_rows.update_domain(connection, domain.id, last_error=reason,
                                          status="ACTIVE" if domain.certificate_id else "FAILED")
                issuance_rows.update_issuance(connection, issuance.id, state="FAILED",
                                              error=reason, order_key_sealed=None)
                event_rows.add_event(connection, domain.id, EventType.ISSUANCE_FAILED, reason,
                                     issuance.id)
                logger.error("issuance failed, giving up hostname=%s issuance_id=%s attempt=%d: %s",
                             issuance.hostname, issuance.id, issuance.attempt, reason)
                return None
            attempt = issuance.attempt + 1
            first_state = "ORDERING" if self.context.self_check is skip_self_check else "SELF_CHECK"
            issuance = issuance_rows.update_issuance(connection, issuance.id, state=first_state,
                                                     attempt=attempt, next_attempt_at=None)
            event_rows.add_event(connection, domain.id, EventType.ISSUANCE_STARTED,
                                 f"attempt {attempt} started", issuance.id)
        return issuance, domain

    def _attempt(self, issuance: IssuanceRecord, domain: DomainRecord) -> None:
        hostname = issuance.hostname
        self._self_check(issuance)
        try:
            session = self.context.acme_session()
        except Exception as error:
            # An unreachable or broken directory is a fault of the CA or the network.
            raise acme_errors.from_exception(error, hostname) from error
        steps = OrderSteps(session, self.context.backends.redis, self.context.backends.keys,
                           hostname, issuance.id)
        try:
            order, private_key = self._resume_or_place(steps, session, issuance, domain)
            steps.answer_challenges(order)
            steps.wait_for_authorizations(order)
            self._transition(issuance, "FINALIZING", EventType.CHALLENGE_VALIDATED,
                             f"the CA validated the http-01 challenge for {hostname}")
            fullchain_pem = steps.finalize(order)
        except ValidationFailed as failure:
            self._record_failed_validation(session, issuance, domain)
            raise failure.error from failure
        except (IssuanceError, IssuanceCancelled, RateLimitReached):
            raise
        except Exception as error:
            raise acme_errors.from_exception(error, hostname,
                                             session.network.retry_after_for(error)) from error

        chain = parse_fullchain(fullchain_pem, hostname)
        verify_issued_chain(chain, private_key, hostname)
        outcomes.store_certificate(self.context, issuance, chain, private_key)
        steps.remove_tokens()

    def _self_check(self, issuance: IssuanceRecord) -> None:
        """Run the self-check, so that a domain that cannot pass validation spends no order."""
        if self.context.self_check is skip_self_check:
            return
        result = self.context.self_check(issuance.hostname)
        if not result.ok:
            message = result.message or f"the self-check of {issuance.hostname} failed"
            raise SelfCheckFailed(message, reason=result.reason or "unknown",
                                  summary=result.summary)
        self._transition(issuance, "ORDERING", EventType.SELF_CHECK_PASSED,
                         result.summary or "self-check passed")

    def _resume_or_place(self, steps: OrderSteps, session: AcmeSession,
                         issuance: IssuanceRecord, domain: DomainRecord
                         ) -> tuple[messages.OrderResource, ec.EllipticCurvePrivateKey]:
        """Resume the order an earlier attempt placed, or place a new one within the limits."""
        resumable_key = self._order_key(issuance)
        if issuance.order_url and resumable_key is not None:
            order = steps.resume(issuance.order_url, resumable_key)
            if order is not None:
                self._transition(issuance, "VALIDATING", EventType.ORDER_RESUMED,
                                 "resumed the order of an earlier attempt")
                logger.info("resumed order hostname=%s issuance_id=%s attempt=%d order_url=%s",
                            issuance.hostname, issuance.id, issuance.attempt, order.uri)
                return order, resumable_key

        settings = self.context.settings
        entry = LedgerEntry(directory_url=settings.acme_directory_url,
                            account_id=session.account_id, kind="order",
                            hostname=issuance.hostname,
                            registered_domain=registered_domain(issuance.hostname),
                            renewal=domain.certificate_source == "LETS_ENCRYPT",
                            issuance_id=issuance.id)
        limits = settings.acme_rate_limits
        if limits:
            with self.database.transaction() as connection:
                delay = reserve_order(connection, limits, entry, _utc_now())
            if delay is not None:
                raise RateLimitReached(delay)

        private_key = ec.generate_private_key(ec.SECP256R1())
        order = steps.place(private_key)
        sealed_key = seal_private_key(self.context.backends.keyring, private_key,
                                      order_key_associated_data(issuance.id))
        with self.database.transaction() as connection:
            outcomes.lock_current_attempt(connection, issuance)
            issuance_rows.update_issuance(connection, issuance.id, state="VALIDATING",
                                          order_url=order.uri, order_key_sealed=sealed_key)
            event_rows.add_event(connection, issuance.domain_id, EventType.ORDER_CREATED,
                                 "the CA accepted the order", issuance.id)
            if not limits:
                # Without limits the ledger only records; the order row joins this transaction.
                ledger_rows.add_entry(connection, entry)
        return order, private_key

    def _order_key(self, issuance: IssuanceRecord) -> ec.EllipticCurvePrivateKey | None:
        if not issuance.order_url:
            return None
        with self.database.transaction() as connection:
            sealed = issuance_rows.get_order_key(connection, issuance.id)
        if sealed is None:
            return None
        try:
            key_der = self.context.backends.keyring.unseal(
                sealed, order_key_associated_data(issuance.id))
        except UnsealError as error:
            logger.warning("cannot unseal the order key, placing a new order hostname=%s "
                           "issuance_id=%s: %s", issuance.hostname, issuance.id, error)
            return None
        key = serialization.load_der_private_key(key_der, password=None)
        return key if isinstance(key, ec.EllipticCurvePrivateKey) else None

    def _record_failed_validation(self, session: AcmeSession, issuance: IssuanceRecord,
                                  domain: DomainRecord) -> None:
        entry = LedgerEntry(directory_url=self.context.settings.acme_directory_url,
                            account_id=session.account_id, kind="failed_validation",
                            hostname=issuance.hostname,
                            registered_domain=registered_domain(issuance.hostname),
                            renewal=domain.certificate_source == "LETS_ENCRYPT",
                            issuance_id=issuance.id)
        with self.database.transaction() as connection:
            ledger_rows.add_entry(connection, entry)

    def _transition(self, issuance: IssuanceRecord, state: str, event_type: EventType,
                    message: str, **columns: object) -> IssuanceRecord:
        """Move an issuance to state and record the event, in one transaction."""
        with self.database.transaction() as connection:
            outcomes.lock_current_attempt(connection, issuance)
            updated = issuance_rows.update_issuance(connection, issuance.id, state=state,
                                                    **columns)
            event_rows.add_event(connection, updated.domain_id, event_type, message, issuance.id)
        return updated


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
