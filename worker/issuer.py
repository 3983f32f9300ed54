"""One issuance attempt, told as a story: lock, check again, order, validate, finalize, save."""

from __future__ import annotations

import datetime
import logging
import time
import uuid

import psycopg
import redis
import requests
from acme import challenges, messages
from acme import errors as acme_library_errors
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.certificate_details import chain_to_pem, describe, seal_private_key
from service.certificates import certificate_key_associated_data
from service.event_types import EventType
from service.force_https import sync_mirror_quietly
from service.queueing import enqueue_issuance
from service.redis_keys import HTTP01_TOKEN_TTL_SECONDS, http01_value
from service.self_check_body import ensure_self_check_body
from service.store import certificates as certificate_rows
from service.store import domains as domain_rows
from service.store import events as event_rows
from service.store import issuances as issuance_rows
from service.store import locks
from service.store.certificates import NewCertificate
from service.store.records import IssuanceRecord
from worker import acme_errors, retry_policy
from worker.acme_client import AcmeSession
from worker.context import WorkerContext
from worker.errors import (IssuanceCancelled, IssuanceError, PermanentIssuanceError,
                           SelfCheckFailed, TransientIssuanceError)
from worker.issued_chain import parse_fullchain, verify_issued_chain
from worker.selfcheck import run_self_check

logger = logging.getLogger(__name__)

# Limits of one attempt's waits on the CA.
VALIDATION_TIMEOUT_SECONDS = 90.0
FINALIZATION_TIMEOUT_SECONDS = 90.0
# A job that finds the domain locked by another worker runs again after this delay.
LOCK_BUSY_RETRY_SECONDS = 3.0


class IssuanceRunner:
    """Runs issuance attempts in a worker process."""

    def __init__(self, context: WorkerContext) -> None:
        self.context = context
        self.database = context.backends.database
        self.redis = context.backends.redis
        self.keys = context.backends.keys

    def run(self, issuance_id: uuid.UUID) -> None:
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
            logger.info("domain locked by another worker, retrying later hostname=%s "
                        "issuance_id=%s", issuance.hostname, issuance_id)
            enqueue_issuance(self.context.backends.issuance_queue(), issuance_id,
                             at=_utc_now() + datetime.timedelta(seconds=LOCK_BUSY_RETRY_SECONDS))
            return
        try:
            self._run_locked(issuance_id)
        finally:
            try:
                locks.unlock_domain(lock_connection, issuance.domain_id)
            except psycopg.Error:
                # Closing the session releases its advisory locks too.
                lock_connection.close()

    def _run_locked(self, issuance_id: uuid.UUID) -> None:
        # Check again under the lock: another worker may have finished it meanwhile.
        with self.database.transaction() as connection:
            issuance = issuance_rows.get_issuance(connection, issuance_id)
        if issuance is None or issuance.finished:
            return
        if issuance.next_attempt_at is not None and issuance.next_attempt_at > _utc_now():
            logger.info("issuance not due yet issuance_id=%s next_attempt_at=%s",
                        issuance_id, issuance.next_attempt_at.isoformat())
            return

        attempt = issuance.attempt + 1
        try:
            issuance = self._transition(
                issuance.id, "SELF_CHECK", EventType.ISSUANCE_STARTED,
                f"attempt {attempt} started", attempt=attempt, next_attempt_at=None)
            logger.info("starting issuance attempt hostname=%s issuance_id=%s attempt=%d",
                        issuance.hostname, issuance.id, attempt)
            issuance = self._self_check(issuance)
            self._obtain(issuance)
        except IssuanceCancelled:
            logger.info("issuance removed while running issuance_id=%s", issuance_id)
        except IssuanceError as error:
            self._record_failure(issuance, error)
        except Exception as error:  # a bug or an unclassified failure: retry, within limits
            logger.exception("issuance attempt failed unexpectedly hostname=%s issuance_id=%s "
                             "attempt=%d", issuance.hostname, issuance.id, attempt)
            self._record_failure(issuance, acme_errors.from_exception(error, issuance.hostname))

    def _self_check(self, issuance: IssuanceRecord) -> IssuanceRecord:
        """Run the self-check; move to ORDERING if it passes, raise SelfCheckFailed if not."""
        try:
            body = ensure_self_check_body(self.redis, self.keys, issuance.hostname)
        except redis.RedisError as error:
            raise TransientIssuanceError(
                f"Redis is unavailable, so the self-check of {issuance.hostname} could not "
                f"start ({error}); certsvc tries again") from error
        result = run_self_check(self.context.settings, issuance.hostname, body)
        if result.ok:
            return self._transition(issuance.id, "ORDERING", EventType.SELF_CHECK_PASSED,
                                    result.summary())
        # The domain shows why it is stuck while the retry waits.
        with self.database.transaction() as connection:
            current = issuance_rows.lock_issuance(connection, issuance.id)
            if current is None or current.finished:
                raise IssuanceCancelled()
            event_rows.add_event(connection, issuance.domain_id, EventType.SELF_CHECK_FAILED,
                                 result.summary(), issuance.id)
            domain_rows.update_domain(connection, issuance.domain_id, last_error=result.message)
        raise SelfCheckFailed(result.message)

    def _obtain(self, issuance: IssuanceRecord) -> None:
        hostname = issuance.hostname
        session = self.context.acme_session()
        private_key = ec.generate_private_key(ec.SECP256R1())
        csr_pem = _make_csr(private_key, hostname)

        try:
            order = session.call(lambda client: client.new_order(csr_pem))
            self._transition(issuance.id, "VALIDATING", EventType.ORDER_CREATED,
                             "the CA accepted the order", order_url=order.uri)
            tokens = self._answer_challenges(session, order, hostname)
            self._wait_for_authorizations(session, order, hostname)
            self._transition(issuance.id, "FINALIZING", EventType.CHALLENGE_VALIDATED,
                             f"the CA validated the http-01 challenge for {hostname}")
            fullchain_pem = self._finalize(session, order)
        except IssuanceError:
            raise
        except Exception as error:
            raise acme_errors.from_exception(error, hostname, session.network.retry_after()) from error

        chain = parse_fullchain(fullchain_pem, hostname)
        verify_issued_chain(chain, private_key, hostname)
        self._store(issuance, chain, private_key)
        self._remove_tokens(hostname, tokens)

    def _answer_challenges(self, session: AcmeSession, order: messages.OrderResource,
                           hostname: str) -> list[str]:
        """Publish the key authorization of each pending http-01 challenge and answer it."""
        tokens = []
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue  # the CA reused an earlier validation
            challenge = _http01_challenge(authorization, hostname)
            response, key_authorization = challenge.response_and_validation(session.account_key)
            token = challenge.chall.encode("token")
            self._publish_token(hostname, token, key_authorization)
            tokens.append(token)
            session.call(lambda client: client.answer_challenge(challenge, response))
        return tokens

    def _publish_token(self, hostname: str, token: str, key_authorization: str) -> None:
        tokens_key = self.keys.http01_tokens_of(hostname)
        with self.redis.pipeline(transaction=True) as pipeline:
            pipeline.set(self.keys.http01(token), http01_value(hostname, key_authorization),
                         ex=HTTP01_TOKEN_TTL_SECONDS)
            pipeline.sadd(tokens_key, token)
            pipeline.expire(tokens_key, HTTP01_TOKEN_TTL_SECONDS)
            pipeline.execute()
        logger.debug("published http-01 token hostname=%s token=%s", hostname, token)

    def _wait_for_authorizations(self, session: AcmeSession, order: messages.OrderResource,
                                 hostname: str) -> None:
        deadline = time.monotonic() + VALIDATION_TIMEOUT_SECONDS
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue
            final = session.poll_until(
                lambda: session.client.poll(authorization),
                lambda polled: polled.body.status != messages.STATUS_PENDING,
                deadline, f"validation of {hostname}")
            if final.body.status != messages.STATUS_VALID:
                raise acme_errors.from_validation_failure(
                    acme_library_errors.ValidationError([final]), hostname)

    def _finalize(self, session: AcmeSession, order: messages.OrderResource) -> str:
        """Send the CSR, wait for the order to become valid, and download the chain."""
        deadline = time.monotonic() + FINALIZATION_TIMEOUT_SECONDS
        try:
            order = session.client.begin_finalization(order)
        except messages.Error as error:
            if error.code != "orderNotReady":
                raise
        final = session.poll_until(
            lambda: _order_status(session, order),
            lambda body: body.status in (messages.STATUS_VALID, messages.STATUS_INVALID)
            and (body.status == messages.STATUS_INVALID or body.certificate is not None),
            deadline, "the CA to issue the certificate")
        if final.status == messages.STATUS_INVALID:
            if final.error is not None:
                raise final.error
            raise PermanentIssuanceError("the CA marked the order invalid without a reason")
        return session.post_as_get(final.certificate).text

    def _store(self, issuance: IssuanceRecord, chain: list[x509.Certificate],
               private_key: ec.EllipticCurvePrivateKey) -> None:
        """Store the certificate and make it the domain's active one, in one transaction."""
        details = describe(chain[0])
        certificate_id = uuid.uuid4()
        sealed_key = seal_private_key(self.context.backends.keyring, private_key,
                                      certificate_key_associated_data(issuance.domain_id))
        with self.database.transaction() as connection:
            current = issuance_rows.lock_issuance(connection, issuance.id)
            if current is None or current.finished:
                raise IssuanceCancelled()
            certificate_rows.insert_certificate(connection, NewCertificate(
                id=certificate_id, domain_id=issuance.domain_id, source="LETS_ENCRYPT",
                hostnames=details.hostnames, chain_pem=chain_to_pem(chain),
                private_key_sealed=sealed_key, key_type=details.key_type,
                not_before=details.not_before, not_after=details.not_after,
                issuer=details.issuer, serial_number=details.serial_number,
                sha256_fingerprint=details.sha256_fingerprint, warnings=[],
                issuance_id=issuance.id,
            ))
            domain_rows.update_domain(connection, issuance.domain_id, status="ACTIVE",
                                      certificate_id=certificate_id, last_error="")
            issuance_rows.update_issuance(connection, issuance.id, state="SUCCEEDED",
                                          certificate_id=certificate_id, error="")
            event_rows.add_event(
                connection, issuance.domain_id, EventType.ISSUANCE_SUCCEEDED,
                f"certificate issued by {details.issuer}, serial {details.serial_number}, "
                f"valid until {details.not_after:%Y-%m-%d %H:%M} UTC", issuance.id)
            domain = domain_rows.get_domain_by_id(connection, issuance.domain_id)
        logger.info("issuance succeeded hostname=%s issuance_id=%s certificate_id=%s",
                    issuance.hostname, issuance.id, certificate_id)
        if domain is not None:
            sync_mirror_quietly(self.context.backends, domain)

    def _remove_tokens(self, hostname: str, tokens: list[str]) -> None:
        if not tokens:
            return
        try:
            self.redis.delete(*(self.keys.http01(token) for token in tokens))
            self.redis.srem(self.keys.http01_tokens_of(hostname), *tokens)
        except redis.RedisError as error:
            logger.warning("could not remove http-01 tokens hostname=%s: %s (they expire "
                           "on their own)", hostname, error)

    def _record_failure(self, issuance: IssuanceRecord, error: IssuanceError) -> None:
        """Schedule the next attempt of a retryable failure, or fail the issuance for good."""
        attempt = issuance.attempt
        message = str(error)
        retry_at = retry_policy.next_attempt_at(attempt, error) if error.retryable else None
        with self.database.transaction() as connection:
            current = issuance_rows.lock_issuance(connection, issuance.id)
            if current is None or current.finished:
                return
            if retry_at is not None:
                issuance_rows.update_issuance(connection, issuance.id, state="QUEUED",
                                              error=message, next_attempt_at=retry_at)
                event_rows.add_event(
                    connection, issuance.domain_id, EventType.ISSUANCE_RETRY_SCHEDULED,
                    f"attempt {attempt} failed: {message}; next attempt at "
                    f"{retry_at:%Y-%m-%d %H:%M:%S} UTC", issuance.id)
            else:
                issuance_rows.update_issuance(connection, issuance.id, state="FAILED",
                                              error=message, next_attempt_at=None)
                domain = domain_rows.get_domain_by_id(connection, issuance.domain_id)
                if domain is not None:
                    status = "ACTIVE" if domain.certificate_id is not None else "FAILED"
                    domain_rows.update_domain(connection, domain.id, status=status,
                                              last_error=message)
                event_rows.add_event(connection, issuance.domain_id, EventType.ISSUANCE_FAILED,
                                     f"attempt {attempt} failed, giving up: {message}",
                                     issuance.id)
        if retry_at is not None:
            job_id = enqueue_issuance(self.context.backends.issuance_queue(), issuance.id,
                                      at=retry_at)
            with self.database.transaction() as connection:
                issuance_rows.update_issuance(connection, issuance.id, job_id=job_id)
            logger.warning("issuance attempt failed, will retry hostname=%s issuance_id=%s "
                           "attempt=%d next_attempt_at=%s: %s", issuance.hostname, issuance.id,
                           attempt, retry_at.isoformat(), message)
        else:
            logger.error("issuance failed, giving up hostname=%s issuance_id=%s attempt=%d: %s",
                         issuance.hostname, issuance.id, attempt, message)

    def _transition(self, issuance_id: uuid.UUID, state: str, event_type: EventType,
                    message: str, **columns: object) -> IssuanceRecord:
        """Move an issuance to state and record the event, in one transaction."""
        with self.database.transaction() as connection:
            current = issuance_rows.lock_issuance(connection, issuance_id)
            if current is None or current.finished:
                raise IssuanceCancelled()
            updated = issuance_rows.update_issuance(connection, issuance_id, state=state,
                                                    **columns)
            event_rows.add_event(connection, updated.domain_id, event_type, message, issuance_id)
        return updated


def _http01_challenge(authorization: messages.AuthorizationResource,
                      hostname: str) -> messages.ChallengeBody:
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01):
            return challenge
    offered = ", ".join(c.chall.typ for c in authorization.body.challenges)
    raise PermanentIssuanceError(
        f"the CA offered no http-01 challenge for {hostname} (offered: {offered})")


def _order_status(session: AcmeSession,
                  order: messages.OrderResource) -> tuple[messages.Order, requests.Response]:
    response = session.post_as_get(order.uri)
    return messages.Order.from_json(response.json()), response


def _make_csr(private_key: ec.EllipticCurvePrivateKey, hostname: str) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(private_key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
