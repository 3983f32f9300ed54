"""Issuance operations: request a Let's Encrypt certificate and follow its progress."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

import psycopg
import redis
import rq

from service.backends import Backends, redis_unavailable_as_error
from service.callers import Caller
from service.domains import find_visible_domain
from service.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from service.event_types import EventType
from service.platform import platform_domain_of
from service.queueing import enqueue_issuance, new_job_id
from service.store import domains as domain_rows
from service.store import events as event_rows
from service.store import issuances as issuance_rows
from service.store.records import IssuanceRecord

logger = logging.getLogger(__name__)


def request_certificate(backends: Backends, caller: Caller, hostname_text: str) -> IssuanceRecord:
    """Queue an issuance for a domain, or return the one already in flight."""
    with backends.database.transaction() as connection:
        domain = find_visible_domain(connection, caller, hostname_text)
    if domain.platform:
        waiting = "" if domain.certificate_source == "PLATFORM" else (
            " (an operator has yet to install it with `certsvc platform-cert`)")
        raise FailedPrecondition(
            f"{domain.hostname} is already covered by the platform's wildcard certificate "
            f"*.{platform_domain_of(domain.hostname)}{waiting}, so it needs no Let's Encrypt "
            "certificate")
    if domain.wildcard:
        raise FailedPrecondition(
            f"{domain.hostname} is a wildcard domain: automatic Let's Encrypt certificates use "
            "HTTP-01 validation, which cannot prove control of a wildcard (that needs DNS-01). "
            "Upload a wildcard certificate with UploadCertificate instead."
        )
    # Fail before writing anything when the queue is unreachable.
    with redis_unavailable_as_error("queueing the issuance"):
        backends.redis.ping()
    if domain.certificate_source == "LETS_ENCRYPT":
        message = "renewal requested: a new certificate replaces the current one once issued"
    elif domain.certificate_source is not None:
        message = ("a Let's Encrypt certificate was requested; the current certificate keeps "
                   "serving until it is issued")
    else:
        message = "a Let's Encrypt certificate was requested"
    issuance, _created = queue_issuance(backends, domain.id, message,
                                        missing_domain=f"domain {hostname_text} was removed; "
                                                       "add it again first")
    return issuance


def queue_issuance(backends: Backends, domain_id: uuid.UUID, message: str, *,
                   missing_domain: str = "the domain was removed") -> tuple[IssuanceRecord, bool]:
    """Create and enqueue an issuance for a domain, or return the one in flight.

    Returns the issuance and whether it is new. The domain's status moves to ISSUING
    unless it is ACTIVE: an active certificate keeps serving until its successor is
    stored. The job id is written with the row, before the job is enqueued, so that
    the lost-job recovery can always tell which job to look for.
    """
    queue = backends.issuance_queue()
    # Lock order: the issuance before the domain row, as the worker does, so that a request
    # and a finishing attempt cannot deadlock.
    try:
        with backends.database.transaction() as connection:
            domain = domain_rows.get_domain_by_id(connection, domain_id)
            if domain is None:
                raise NotFound(missing_domain)
            issuance, created = issuance_rows.create_or_get_in_flight(connection, domain.id,
                                                                      domain.hostname)
            if created:
                issuance = issuance_rows.update_issuance(connection, issuance.id,
                                                         job_id=new_job_id(queue, issuance.id))
                event_rows.add_event(connection, domain.id, EventType.ISSUANCE_QUEUED, message,
                                     issuance.id)
                domain_rows.mark_issuing_unless_active(connection, domain.id)
    except psycopg.errors.ForeignKeyViolation:
        raise NotFound(missing_domain) from None
    if not created:
        return issuance, False

    try:
        enqueue_issuance(queue, issuance.id, job_id=issuance.job_id)
    except redis.RedisError as error:
        _withdraw(backends, issuance, domain.status)
        logger.warning("could not enqueue issuance_id=%s hostname=%s: %s",
                       issuance.id, issuance.hostname, error)
        raise Unavailable("Redis is unavailable, so the issuance was not queued; try again") from error
    logger.info("queued issuance issuance_id=%s hostname=%s job_id=%s",
                issuance.id, issuance.hostname, issuance.job_id)
    return issuance, True


def create_issuances(backends: Backends, queue: rq.Queue,
                     requests: Sequence[tuple[uuid.UUID, uuid.UUID, str]]) -> list[IssuanceRecord]:
    """Create QUEUED renewals of several domains in one transaction; return those created.

    requests contains (domain id, id of the certificate to replace, ISSUANCE_QUEUED event
    message) triples. Domains with an issuance in flight, removed ones, and those no
    longer served by that certificate (renewed or replaced since) get none. Events and domain statuses are
    written as queue_issuance writes them. Each row names its job in queue, so the
    lost-job recovery finds a row whose job the caller did not enqueue after the commit.
    A domain removed during the transaction fails it with ForeignKeyViolation, and the
    transaction runs once more without that domain.
    """
    try:
        return _write_issuances(backends, queue, requests)
    except psycopg.errors.ForeignKeyViolation:
        logger.info("a domain was removed while its issuance was written, so the %d "
                    "issuances are written again", len(requests))
        return _write_issuances(backends, queue, requests)


def _write_issuances(backends: Backends, queue: rq.Queue,
                     requests: Sequence[tuple[uuid.UUID, uuid.UUID, str]]
                     ) -> list[IssuanceRecord]:
    messages = {domain_id: message for domain_id, _, message in requests}
    new_issuances = []
    for domain_id, certificate_id, _ in requests:
        issuance_id = uuid.uuid4()
        new_issuances.append((issuance_id, domain_id, certificate_id,
                              new_job_id(queue, issuance_id)))
    with backends.database.transaction() as connection:
        created = issuance_rows.create_many_in_flight(connection, new_issuances)
        event_rows.add_events(connection, EventType.ISSUANCE_QUEUED,
                              [(issuance.domain_id, issuance.id, messages[issuance.domain_id])
                               for issuance in created])
        domain_rows.mark_many_issuing_unless_active(
            connection, [issuance.domain_id for issuance in created])
    return created


def _withdraw(backends: Backends, issuance: IssuanceRecord, previous_status: str) -> None:
    """Undo a just-created issuance whose job could not be queued."""
    with backends.database.transaction() as connection:
        current = issuance_rows.lock_issuance(connection, issuance.id)
        if current is None or current.state != "QUEUED" or current.attempt != 0:
            return
        issuance_rows.delete_issuance(connection, issuance.id)
        connection.execute("DELETE FROM events WHERE issuance_id = %s", (issuance.id,))
        domain_rows.update_domain(connection, issuance.domain_id, status=previous_status)


def get_issuance(backends: Backends, caller: Caller, issuance_id_text: str) -> IssuanceRecord:
    try:
        issuance_id = uuid.UUID(issuance_id_text)
    except ValueError:
        raise InvalidArgument.for_field(
            "id", f"issuance id {issuance_id_text[:64]!r} is not a UUID; pass the id of an Issuance"
        ) from None
    with backends.database.transaction() as connection:
        issuance = issuance_rows.get_issuance(connection, issuance_id)
        domain = None if issuance is None else domain_rows.get_domain_by_id(connection,
                                                                             issuance.domain_id)
    if issuance is None or domain is None or not caller.may_see_app(domain.app_id):
        raise NotFound(f"issuance {issuance_id} not found")
    return issuance
