"""Domain operations: add, look up, list and remove custom domains."""

from __future__ import annotations

import logging
import re

import psycopg
import redis

from service import pagination
from service.backends import Backends
from service.callers import Caller
from service.event_types import EventType
from service.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied
from service.platform import PENDING_REASON, is_platform_hostname
from service.self_check_body import ensure_self_check_body
from service.store import domains as domain_rows
from service.store import events as event_rows
from service.store import issuances as issuance_rows
from service.store import platform_certificates as platform_rows
from service.store.records import DomainRecord
from service.validation.hostname import Hostname, HostnameError, normalize_hostname

logger = logging.getLogger(__name__)

MAX_APP_ID_LENGTH = 128
_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")


def parse_hostname(text: str, field: str = "hostname") -> Hostname:
    """Normalize a hostname from a request, raising InvalidArgument naming the field."""
    try:
        return normalize_hostname(text)
    except HostnameError as error:
        raise InvalidArgument.for_field(field, f"invalid {field}: {error}") from None


def parse_app_id(text: str) -> str:
    if not text:
        raise InvalidArgument.for_field("app_id", "app_id is empty; pass the id of the app")
    if len(text) > MAX_APP_ID_LENGTH or not _APP_ID.match(text):
        raise InvalidArgument.for_field(
            "app_id",
            f"app_id {text[:MAX_APP_ID_LENGTH]!r} is invalid: use at most {MAX_APP_ID_LENGTH} "
            "letters, digits and the characters . _ : -",
        )
    return text


def find_visible_domain(connection: psycopg.Connection, caller: Caller,
                        hostname_text: str) -> DomainRecord:
    """Return the domain a caller names, or raise NotFound when it is absent or not theirs.

    A domain of another app is reported as not found, so callers cannot probe for it.
    """
    hostname = parse_hostname(hostname_text)
    domain = domain_rows.get_domain(connection, hostname.ascii)
    if domain is None or not caller.may_see_app(domain.app_id):
        raise NotFound(f"domain {hostname.ascii} not found; add it with AddDomain first")
    return domain


def add_domain(backends: Backends, caller: Caller, hostname_text: str,
               app_id_text: str) -> DomainRecord:
    """Attach a hostname to an app; adding it again for the same app returns it unchanged."""
    hostname = parse_hostname(hostname_text)
    app_id = parse_app_id(app_id_text)
    if not caller.may_see_app(app_id):
        raise PermissionDenied(f"you may not add domains to app {app_id}")

    platform_domain = backends.settings.platform_domain
    platform = is_platform_hostname(hostname, platform_domain)
    with backends.database.transaction() as connection:
        status, last_error = "PENDING", ""
        if platform:
            installed = platform_rows.is_installed(connection, platform_domain)
            status, last_error = ("ACTIVE", "") if installed else ("PENDING", PENDING_REASON)
        domain, created = domain_rows.insert_domain(
            connection, hostname=hostname.ascii, unicode_hostname=hostname.unicode,
            app_id=app_id, wildcard=hostname.wildcard, platform=platform, status=status,
            last_error=last_error,
        )
        if not created and domain.app_id != app_id:
            raise AlreadyExists(
                f"{hostname.ascii} is already attached to another app; remove it there before "
                "adding it here"
            )
        if created:
            event_rows.add_event(connection, domain.id, EventType.DOMAIN_ADDED,
                                 f"{hostname.ascii} was added to app {app_id}")
    if created:
        logger.info("added domain hostname=%s app_id=%s platform=%s", domain.hostname, app_id,
                    platform)
    if not hostname.wildcard:
        _create_self_check_body(backends, domain.hostname)
    return domain


def _create_self_check_body(backends: Backends, hostname: str) -> None:
    """Create the body the responder serves at the self-check path, so checks can start."""
    try:
        ensure_self_check_body(backends.redis, backends.keys, hostname)
    except redis.RedisError as error:
        # CheckDomain and the worker create it again before they fetch it.
        logger.warning("could not create the self-check body hostname=%s: %s", hostname, error)


def get_domain(backends: Backends, caller: Caller, hostname_text: str) -> DomainRecord:
    with backends.database.transaction() as connection:
        return find_visible_domain(connection, caller, hostname_text)


def list_domains(backends: Backends, caller: Caller, *, app_id: str, page_size: int,
                 page_token: str) -> tuple[list[DomainRecord], str]:
    """Return one page of domains in hostname order and the next page token."""
    limit = pagination.page_size(page_size)
    after = pagination.decode_domain_token(page_token)
    if app_id:
        app_ids: list[str] | None = [parse_app_id(app_id)] if caller.may_see_app(app_id) else []
    else:
        app_ids = None if caller.app_ids is None else sorted(caller.app_ids)
    with backends.database.transaction() as connection:
        rows = domain_rows.list_domains(connection, app_ids=app_ids, after_hostname=after,
                                        limit=limit + 1)
    next_token = pagination.encode_domain_token(rows[limit - 1].hostname) if len(rows) > limit else ""
    return rows[:limit], next_token


def remove_domain(backends: Backends, caller: Caller, hostname_text: str) -> None:
    """Delete a domain with its certificates, issuances and events, then its Redis keys."""
    with backends.database.transaction() as connection:
        domain = find_visible_domain(connection, caller, hostname_text)
        # The in-flight issuance is locked before the domain row, the order every writer
        # uses, because the delete cascades to it.
        issuance_rows.lock_in_flight(connection, domain.id)
        domain_rows.delete_domain(connection, domain.id)
        # Host names that a removed wildcard served have no certificate now, so their
        # Force HTTPS redirects must stop.
        uncovered = (domain_rows.list_hosts_served_by_wildcard(connection, domain)
                     if domain.wildcard else [])
    logger.info("removed domain hostname=%s app_id=%s", domain.hostname, domain.app_id)
    if backends.certificate_cache is not None:
        # The change notification would drop it too, a moment later; a caller that
        # asks for the certificate right after removing the domain must not get it.
        backends.certificate_cache.invalidate(domain.hostname)

    keys = backends.keys
    try:
        tokens = backends.redis.smembers(keys.http01_tokens_of(domain.hostname))
        names = [keys.http01(token.decode()) for token in tokens]
        backends.redis.delete(keys.self_check_body(domain.hostname), keys.force_https(domain.hostname),
                              keys.http01_tokens_of(domain.hostname), *names,
                              *(keys.force_https(host.hostname) for host in uncovered))
    except redis.RedisError as error:
        # Postgres no longer has the domain; the tokens expire on their own and the
        # Force HTTPS mirror is rebuilt from Postgres.
        logger.warning("could not delete redis keys of removed domain hostname=%s: %s",
                       domain.hostname, error)
