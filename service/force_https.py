"""Force HTTPS: the per-domain flag in Postgres and its Redis mirror for the responder.

The responder redirects plain HTTP to HTTPS for a host while the key
RedisKeys.force_https(host) exists. That key exists only while the redirect is in
effect: the flag is on and the domain has a certificate that has not expired, so a
user cannot send visitors to an HTTPS site that has no certificate. The key expires
with the certificate. The api rebuilds the whole mirror at start and the scheduler
rebuilds it periodically, so a lost or stale key is corrected from Postgres.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import uuid

import redis

from service.backends import Backends
from service.callers import Caller
from service.domains import find_visible_domain
from service.errors import Unavailable
from service.event_types import EventType
from service.redis_keys import RedisKeys
from service.store import domains as domain_rows
from service.store import events as event_rows
from service.store.database import Database
from service.store.records import DomainRecord

logger = logging.getLogger(__name__)

# Keys are scanned and deleted in batches of this size during a rebuild.
_SCAN_BATCH = 500


def redirect_effective(domain: DomainRecord, now: datetime.datetime | None = None) -> bool:
    """Return whether the responder should redirect the domain to HTTPS now."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return (domain.force_https and not domain.wildcard
            and domain.certificate_not_after is not None and domain.certificate_not_after > now)


def not_effective_warning(domain: DomainRecord, now: datetime.datetime | None = None) -> str:
    """Return the sentence that explains why a requested redirect is not served, or ""."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if not domain.force_https or redirect_effective(domain, now):
        return ""
    if domain.wildcard:
        return (f"Force HTTPS is on but not in effect: the responder redirects single host "
                f"names, not the wildcard {domain.hostname}; turn it on for each host name")
    if domain.certificate_not_after is None:
        return (f"Force HTTPS is on but not in effect: {domain.hostname} has no certificate "
                "yet, and redirecting visitors to HTTPS would lock them out; the redirect "
                "starts once a certificate is issued or uploaded")
    return (f"Force HTTPS is on but not in effect: the certificate of {domain.hostname} "
            f"expired at {domain.certificate_not_after:%Y-%m-%d %H:%M} UTC; the redirect "
            "starts again once a valid certificate is in place")


def sync_mirror(client: redis.Redis, keys: RedisKeys, domain: DomainRecord) -> None:
    """Make the domain's Redis key match its record. Raises redis.RedisError."""
    key = keys.force_https(domain.hostname)
    if redirect_effective(domain) and domain.certificate_not_after is not None:
        client.set(key, "1", exat=int(domain.certificate_not_after.timestamp()))
    else:
        client.delete(key)


def sync_mirror_quietly(backends: Backends, domain: DomainRecord) -> None:
    """Sync one domain's key; on a Redis failure log it, and the next rebuild repairs it."""
    try:
        sync_mirror(backends.redis, backends.keys, domain)
    except redis.RedisError as error:
        logger.warning("could not update the force-https mirror hostname=%s: %s (the next "
                       "rebuild repairs it)", domain.hostname, error)


def sync_mirrors_for(backends: Backends, domain_id: uuid.UUID) -> None:
    """Sync the mirror of a domain whose certificate changed, and of the host names a
    wildcard domain's certificate serves."""
    try:
        with backends.database.transaction() as connection:
            domain = domain_rows.get_domain_by_id(connection, domain_id)
            covered = ([] if domain is None or not domain.wildcard
                       else domain_rows.list_hosts_served_by_wildcard(connection, domain))
    except Unavailable as error:
        logger.warning("could not read domains to sync the force-https mirror domain_id=%s: %s "
                       "(the next rebuild repairs it)", domain_id, error)
        return
    for record in ([domain] if domain is not None else []) + covered:
        sync_mirror_quietly(backends, record)


def set_force_https(backends: Backends, caller: Caller, hostname_text: str,
                    force_https: bool) -> DomainRecord:
    """Store the flag, record the change in the timeline and update the mirror."""
    with backends.database.transaction() as connection:
        domain = find_visible_domain(connection, caller, hostname_text)
        locked = domain_rows.lock_domain_row(connection, domain.id) or domain
        if locked.force_https != force_https:
            domain_rows.update_domain(connection, domain.id, force_https=force_https)
            event_rows.add_event(connection, domain.id, EventType.FORCE_HTTPS_CHANGED,
                                 _change_message(locked, force_https))
        domain = domain_rows.get_domain_by_id(connection, domain.id) or locked
    sync_mirror_quietly(backends, domain)
    logger.info("set force https hostname=%s force_https=%s effective=%s", domain.hostname,
                force_https, redirect_effective(domain))
    return domain


def _change_message(domain: DomainRecord, force_https: bool) -> str:
    if not force_https:
        return "Force HTTPS turned off: plain HTTP is served without a redirect"
    if redirect_effective(dataclasses.replace(domain, force_https=True)):
        return "Force HTTPS turned on: plain HTTP requests are redirected to HTTPS"
    return ("Force HTTPS turned on; the redirect starts once the domain has a valid "
            "certificate")


def rebuild_mirror(database: Database, client: redis.Redis, keys: RedisKeys) -> int:
    """Rewrite every force-https key from Postgres and delete stale ones; return the count.

    Raises redis.RedisError or service.errors.Unavailable when a backend is down.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    with database.transaction() as connection:
        domains = domain_rows.list_force_https_domains(connection)
    effective = [domain for domain in domains if redirect_effective(domain, now)]
    wanted = {keys.force_https(domain.hostname) for domain in effective}

    # NOTE: a SetForceHttps or a new certificate between the read above and these
    # writes can be undone here, and stays so until the next rebuild.
    with client.pipeline(transaction=False) as pipeline:
        for domain in effective:
            if domain.certificate_not_after is not None:
                pipeline.set(keys.force_https(domain.hostname), "1",
                             exat=int(domain.certificate_not_after.timestamp()))
        pipeline.execute()
    stale = []
    for key in client.scan_iter(match=keys.force_https("*"), count=_SCAN_BATCH):
        if key.decode() not in wanted:
            stale.append(key)
    for start in range(0, len(stale), _SCAN_BATCH):
        client.delete(*stale[start:start + _SCAN_BATCH])
    client.set(keys.force_https_mirror_marker, now.isoformat())
    logger.info("rebuilt force-https mirror redirects=%d removed=%d", len(effective), len(stale))
    return len(effective)


def rebuild_mirror_quietly(database: Database, client: redis.Redis, keys: RedisKeys) -> None:
    """Rebuild the mirror, logging instead of raising when a backend is down."""
    try:
        rebuild_mirror(database, client, keys)
    except (redis.RedisError, Unavailable) as error:
        logger.warning("could not rebuild the force-https mirror: %s", error)
