"""Custom certificate uploads: validate, store with the key sealed, and make the upload active.

An uploaded certificate becomes the domain's active certificate with source CUSTOM.
Automatic renewal leaves such a domain alone; RequestCertificate switches it back to
Let's Encrypt, and the uploaded certificate serves until the new one is stored. An
upload cancels a Let's Encrypt issuance still in flight, so that the newer
instruction wins.
"""

from __future__ import annotations

import datetime
import logging
import uuid

from service.backends import Backends
from service.callers import Caller
from service.certificate_details import chain_to_pem, describe, seal_private_key
from service.certificates import CertificateView, certificate_warnings
from service.domains import find_visible_domain
from service.force_https import sync_mirrors_for
from service.sealed_columns import certificate_key_associated_data
from service.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from service.event_types import EventType
from service.platform import platform_domain_of
from service.store import certificates as certificate_rows
from service.store import domains as domain_rows
from service.store import events as event_rows
from service.store import issuances as issuance_rows
from service.store.certificates import NewCertificate
from service.trust_bundle import load_trust_anchors
from service.validation.certificate_upload import validate_upload
from service.validation.problems import Problem, UploadRejected

logger = logging.getLogger(__name__)

# Upper bound on the problem text of one rejection (see _invalid_argument).
MAX_PROBLEM_TEXT_CHARACTERS = 2500

SOURCE_CUSTOM = "CUSTOM"
CANCELLED_BY_UPLOAD = ("cancelled because a custom certificate was uploaded; call "
                       "RequestCertificate to switch back to Let's Encrypt")


def upload_certificate(backends: Backends, caller: Caller, hostname_text: str, chain_pem: str,
                       key_pem: str, passphrase: str) -> CertificateView:
    """Validate an upload and make it the domain's active certificate.

    Raises InvalidArgument listing every problem, most important first, with a field
    violation per problem. Neither the key nor the passphrase reaches a message or a log.
    """
    with backends.database.transaction() as connection:
        domain = find_visible_domain(connection, caller, hostname_text)
    if domain.platform:
        raise FailedPrecondition(
            f"{domain.hostname} is covered by the platform's wildcard certificate "
            f"*.{platform_domain_of(domain.hostname)}, which serves it in place of any uploaded "
            "certificate; upload a certificate for a domain of your own instead")
    anchors = load_trust_anchors(backends.settings.trust_bundle)
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        upload = validate_upload(domain.hostname, chain_pem, key_pem, passphrase, anchors, now)
    except UploadRejected as rejected:
        logger.info("rejected certificate upload hostname=%s problems=%d fields=%s",
                    domain.hostname, len(rejected.problems),
                    ",".join(sorted({problem.field for problem in rejected.problems})))
        raise _invalid_argument(domain.hostname, rejected) from None

    details = describe(upload.chain[0])
    certificate_id = uuid.uuid4()
    sealed_key = seal_private_key(backends.keyring, upload.private_key,
                                  certificate_key_associated_data(domain.id))
    with backends.database.transaction() as connection:
        # The issuance row is locked before the domain row, in the order the worker uses,
        # so that an upload and a finishing issuance cannot deadlock.
        in_flight = issuance_rows.lock_in_flight(connection, domain.id)
        if domain_rows.lock_domain_row(connection, domain.id) is None:
            raise NotFound(f"domain {domain.hostname} was removed during the upload; add it again")
        record = certificate_rows.insert_certificate(connection, NewCertificate(
            id=certificate_id, domain_id=domain.id, source=SOURCE_CUSTOM,
            hostnames=details.hostnames, chain_pem=chain_to_pem(upload.chain),
            private_key_sealed=sealed_key, key_type=details.key_type,
            not_before=details.not_before, not_after=details.not_after, issuer=details.issuer,
            serial_number=details.serial_number, sha256_fingerprint=details.sha256_fingerprint,
            warnings=upload.warnings,
        ))
        domain_rows.update_domain(connection, domain.id, status="ACTIVE",
                                  certificate_id=certificate_id, last_error="")
        if in_flight is not None:
            issuance_rows.update_issuance(connection, in_flight.id, state="FAILED",
                                          error=CANCELLED_BY_UPLOAD, next_attempt_at=None)
            event_rows.add_event(connection, domain.id, EventType.ISSUANCE_CANCELLED,
                                 CANCELLED_BY_UPLOAD, in_flight.id)
        event_rows.add_event(
            connection, domain.id, EventType.CERTIFICATE_UPLOADED,
            f"custom certificate uploaded: {', '.join(details.hostnames)}, issued by "
            f"{details.issuer}, valid until {details.not_after:%Y-%m-%d %H:%M} UTC, "
            f"SHA-256 {details.sha256_fingerprint}")
    # The change notification reaches this process's cache within milliseconds; dropping
    # the entry now makes the caller's next GetCertificate read the new certificate.
    if backends.certificate_cache is not None:
        backends.certificate_cache.invalidate(domain.hostname)
    # A redirect the user asked for takes effect now that a certificate serves the name.
    sync_mirrors_for(backends, domain.id)
    if in_flight is not None:
        logger.info("cancelled issuance for uploaded certificate hostname=%s issuance_id=%s",
                    domain.hostname, in_flight.id)
    logger.info("stored uploaded certificate hostname=%s certificate_id=%s key_type=%s "
                "not_after=%s warnings=%d", domain.hostname, certificate_id, details.key_type,
                details.not_after.isoformat(), len(upload.warnings))
    return CertificateView(record, "", certificate_warnings(record, now))


def _invalid_argument(hostname: str, rejected: UploadRejected) -> InvalidArgument:
    """Describe the problems, most important first, within the size gRPC clients accept.

    The message and the BadRequest details travel in response trailers, which gRPC's C
    core clients cap at 8 KiB by default, so the text stops at MAX_PROBLEM_TEXT_CHARACTERS
    and names how many problems were left out.
    """
    problems = rejected.problems
    shown: list[Problem] = []
    size = 0
    for problem in problems:
        if shown and size + len(problem.message) > MAX_PROBLEM_TEXT_CHARACTERS:
            break
        shown.append(problem)
        size += len(problem.message)
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    lines = [f"{index}. {problem.message}" for index, problem in enumerate(shown, start=1)]
    left_out = len(problems) - len(shown)
    if left_out:
        lines.append(f"... and {left_out} more; fix the problems above and upload again to see "
                     "the rest")
    message = f"the certificate upload for {hostname} was rejected with {count}:\n" + "\n".join(lines)
    return InvalidArgument(message, [FieldViolation(problem.field, problem.message)
                                     for problem in shown])