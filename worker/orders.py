"""The ACME order of one issuance attempt: resume or place it, publish and answer the http-01
challenges, wait for validation, finalize and download the chain."""

from __future__ import annotations

import logging
import time
import uuid

import redis
import requests
from acme import challenges, messages
from acme import errors as acme_library_errors
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.redis_keys import HTTP01_TOKEN_TTL_SECONDS, RedisKeys, http01_value
from worker import acme_errors
from worker.acme_client import AcmeSession
from worker.errors import IssuanceError, PermanentIssuanceError, TransientIssuanceError

logger = logging.getLogger(__name__)

# Limits of one attempt's waits on the CA.
VALIDATION_TIMEOUT_SECONDS = 90.0
FINALIZATION_TIMEOUT_SECONDS = 90.0


class ValidationFailed(IssuanceError):
    """An authorization became invalid; wraps the classified error for the ledger's sake."""

    def __init__(self, error: IssuanceError) -> None:
        super().__init__(str(error), retry_after=error.retry_after)
        self.error = error
        self.retryable = error.retryable


class OrderSteps:
    """The ACME steps of one attempt for one hostname, on a worker's ACME session."""

    def __init__(self, session: AcmeSession, redis_client: redis.Redis, keys: RedisKeys,
                 hostname: str, issuance_id: uuid.UUID) -> None:
        self.session = session
        self.redis = redis_client
        self.keys = keys
        self.hostname = hostname
        self.issuance_id = issuance_id
        self.tokens: list[str] = []

    def resume(self, order_url: str,
               private_key: ec.EllipticCurvePrivateKey) -> messages.OrderResource | None:
        """Fetch an order an earlier attempt placed; None when it cannot be finished.

        An order survives a worker that stopped mid-attempt: the CA keeps it, and its
        key is sealed on the issuance row. It cannot be finished once it is invalid,
        or when the CA no longer has it (a new account, a CA that lost its state).
        """
        try:
            response = self.session.post_as_get(order_url)
            body = messages.Order.from_json(response.json())
            authorizations = [
                messages.AuthorizationResource(
                    body=messages.Authorization.from_json(self.session.post_as_get(url).json()),
                    uri=url)
                for url in body.authorizations
            ]
        except messages.Error as error:
            logger.info("cannot resume order, placing a new one hostname=%s issuance_id=%s "
                        "order_url=%s: %s", self.hostname, self.issuance_id, order_url,
                        acme_errors.problem_text(error))
            return None
        except acme_library_errors.ClientError as error:
            # A CA that lost its state (a restarted Pebble) answers a plain 404 without a
            # problem document for an order it no longer has.
            logger.info("cannot resume order, placing a new one hostname=%s issuance_id=%s "
                        "order_url=%s: %s", self.hostname, self.issuance_id, order_url, error)
            return None
        usable = (messages.STATUS_PENDING, messages.STATUS_VALID)
        if body.status == messages.STATUS_INVALID or any(
                authorization.body.status not in usable for authorization in authorizations):
            logger.info("order cannot be finished, placing a new one hostname=%s "
                        "issuance_id=%s order_url=%s status=%s", self.hostname, self.issuance_id,
                        order_url, body.status)
            return None
        return messages.OrderResource(body=body, uri=order_url, authorizations=authorizations,
                                      csr_pem=make_csr(private_key, self.hostname))

    def place(self, private_key: ec.EllipticCurvePrivateKey) -> messages.OrderResource:
        csr_pem = make_csr(private_key, self.hostname)
        return self.session.call(lambda client: client.new_order(csr_pem))

    def answer_challenges(self, order: messages.OrderResource) -> None:
        """Publish the key authorization of each pending http-01 challenge and answer it.

        A challenge that an earlier attempt answered (status processing) gets its key
        authorization published again, in case Redis lost it, but is not answered twice.
        """
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue  # the CA reused an earlier validation
            challenge = _http01_challenge(authorization, self.hostname)
            response, key_authorization = challenge.response_and_validation(
                self.session.account_key)
            token = challenge.chall.encode("token")
            self._publish_token(token, key_authorization)
            self.tokens.append(token)
            if challenge.status == messages.STATUS_PENDING:
                self.session.call(lambda client: client.answer_challenge(challenge, response))

    def wait_for_authorizations(self, order: messages.OrderResource) -> None:
        deadline = time.monotonic() + VALIDATION_TIMEOUT_SECONDS
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue
            final = self.session.poll_until(
                lambda: self.session.client.poll(authorization),
                lambda polled: polled.body.status not in (messages.STATUS_PENDING,
                                                          messages.STATUS_PROCESSING),
                deadline, f"validation of {self.hostname}")
            if final.body.status != messages.STATUS_VALID:
                error = acme_errors.from_validation_failure(
                    acme_library_errors.ValidationError([final]), self.hostname)
                if not error.retryable and not self._tokens_present():
                    error = TransientIssuanceError(
                        f"{error} (the key authorizations were missing from Redis when the CA "
                        "fetched them, probably because Redis restarted; certsvc retries with "
                        "a new order)")
                raise ValidationFailed(error)

    def finalize(self, order: messages.OrderResource) -> str:
        """Send the CSR, wait for the order to become valid, and download the chain."""
        deadline = time.monotonic() + FINALIZATION_TIMEOUT_SECONDS
        try:
            order = self.session.call(lambda client: client.begin_finalization(order))
        except messages.Error as error:
            # A resumed order may be finalized already (processing or valid).
            if error.code != "orderNotReady":
                raise
        final = self.session.poll_until(
            lambda: _order_status(self.session, order),
            lambda body: body.status in (messages.STATUS_VALID, messages.STATUS_INVALID)
            and (body.status == messages.STATUS_INVALID or body.certificate is not None),
            deadline, "the CA to issue the certificate")
        if final.status == messages.STATUS_INVALID:
            if final.error is not None:
                raise final.error
            raise PermanentIssuanceError("the CA marked the order invalid without a reason")
        return self.session.post_as_get(final.certificate).text

    def remove_tokens(self) -> None:
        if not self.tokens:
            return
        try:
            self.redis.delete(*(self.keys.http01(token) for token in self.tokens))
            self.redis.srem(self.keys.http01_tokens_of(self.hostname), *self.tokens)
        except redis.RedisError as error:
            logger.warning("could not remove http-01 tokens hostname=%s: %s (they expire "
                           "on their own)", self.hostname, error)

    def _publish_token(self, token: str, key_authorization: str) -> None:
        tokens_key = self.keys.http01_tokens_of(self.hostname)
        with self.redis.pipeline(transaction=True) as pipeline:
            pipeline.set(self.keys.http01(token), http01_value(self.hostname, key_authorization),
                         ex=HTTP01_TOKEN_TTL_SECONDS)
            pipeline.sadd(tokens_key, token)
            pipeline.expire(tokens_key, HTTP01_TOKEN_TTL_SECONDS)
            pipeline.execute()
        logger.debug("published http-01 token hostname=%s token=%s", self.hostname, token)

    def _tokens_present(self) -> bool:
        """Return whether Redis still has every key authorization this attempt published."""
        if not self.tokens:
            return True
        try:
            return self.redis.exists(*(self.keys.http01(t) for t in self.tokens)) == len(self.tokens)
        except redis.RedisError:
            return False


def make_csr(private_key: ec.EllipticCurvePrivateKey, hostname: str) -> bytes:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(private_key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


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
