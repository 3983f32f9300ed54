"""Queries on the domains table."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import psycopg
from psycopg.rows import class_row

from service.store.records import DomainRecord

# Domain columns plus the serving certificate's source, expiry and renewal time. A
# platform hostname is served by the newest platform certificate of its parent domain.
# A hostname without a certificate of its own is served by the certificate of the
# wildcard domain one label up in the same app, as GetCertificate does.
_SELECT = """
    SELECT d.id, d.hostname, d.unicode_hostname, d.app_id, d.wildcard, d.status,
           d.force_https, d.last_error, d.certificate_id, d.created_at, d.updated_at,
           d.platform,
           COALESCE(c.source, p.source, w.source) AS certificate_source,
           COALESCE(c.not_after, p.not_after, w.not_after) AS certificate_not_after,
           c.renew_after AS certificate_renew_after,
           w.hostname AS serving_wildcard
    FROM domains d LEFT JOIN certificates c ON c.id = d.certificate_id
    LEFT JOIN LATERAL (
        SELECT 'PLATFORM'::text AS source, pc.not_after FROM platform_certificates pc
        WHERE d.platform
          AND pc.platform_domain = substr(d.hostname, strpos(d.hostname, '.') + 1)
        ORDER BY pc.created_at DESC LIMIT 1
    ) p ON true
    LEFT JOIN LATERAL (
        SELECT wd.hostname, wc.source, wc.not_after
        FROM domains wd JOIN certificates wc ON wc.id = wd.certificate_id
        WHERE d.certificate_id IS NULL AND NOT d.wildcard AND NOT d.platform
          AND wd.hostname = '*.' || substr(d.hostname, strpos(d.hostname, '.') + 1)
          AND wd.app_id = d.app_id
    ) w ON true
"""


def insert_domain(connection: psycopg.Connection, *, hostname: str, unicode_hostname: str,
                  app_id: str, wildcard: bool, platform: bool = False, status: str = "PENDING",
                  last_error: str = "") -> tuple[DomainRecord, bool]:
    """Insert a domain unless its hostname exists; return the row and whether it is new."""
    inserted = connection.execute(
        """
        INSERT INTO domains (hostname, unicode_hostname, app_id, wildcard, platform, status,
                             last_error)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (hostname) DO NOTHING
        RETURNING id
        """,
        (hostname, unicode_hostname, app_id, wildcard, platform, status, last_error),
    ).fetchone()
    record = get_domain(connection, hostname)
    if record is None:
        # The conflicting row was removed between the insert and the select.
        return insert_domain(connection, hostname=hostname, unicode_hostname=unicode_hostname,
                             app_id=app_id, wildcard=wildcard, platform=platform,
                             status=status, last_error=last_error)
    return record, inserted is not None


def get_domain(connection: psycopg.Connection, hostname: str) -> DomainRecord | None:
    with connection.cursor(row_factory=class_row(DomainRecord)) as cursor:
        return cursor.execute(_SELECT + " WHERE d.hostname = %s", (hostname,)).fetchone()


def get_domain_by_id(connection: psycopg.Connection, domain_id: uuid.UUID) -> DomainRecord | None:
    with connection.cursor(row_factory=class_row(DomainRecord)) as cursor:
        return cursor.execute(_SELECT + " WHERE d.id = %s", (domain_id,)).fetchone()


def lock_domain_row(connection: psycopg.Connection, domain_id: uuid.UUID) -> DomainRecord | None:
    """Select a domain FOR UPDATE, so that concurrent writers of it queue behind this one.

    A transaction that also locks the domain's issuance locks the issuance first.
    """
    with connection.cursor(row_factory=class_row(DomainRecord)) as cursor:
        return cursor.execute(
            _SELECT + " WHERE d.id = %s FOR UPDATE OF d", (domain_id,)
        ).fetchone()


def list_domains(connection: psycopg.Connection, *, app_ids: list[str] | None,
                 after_hostname: str, limit: int) -> list[DomainRecord]:
    """Return up to limit domains after after_hostname in hostname order.

    app_ids None means every app; an empty list matches nothing.
    """
    with connection.cursor(row_factory=class_row(DomainRecord)) as cursor:
        if app_ids is None:
            return cursor.execute(
                _SELECT + " WHERE d.hostname > %s ORDER BY d.hostname LIMIT %s",
                (after_hostname, limit),
            ).fetchall()
        return cursor.execute(
            _SELECT + " WHERE d.app_id = ANY(%s) AND d.hostname > %s ORDER BY d.hostname LIMIT %s",
            (app_ids, after_hostname, limit),
        ).fetchall()


def list_hosts_served_by_wildcard(connection: psycopg.Connection,
                                  wildcard: DomainRecord) -> list[DomainRecord]:
    """Return the app's host names one label under a wildcard domain that have no
    certificate of their own."""
    base = wildcard.hostname[2:]
    with connection.cursor(row_factory=class_row(DomainRecord)) as cursor:
        return cursor.execute(
            _SELECT + " WHERE d.app_id = %s AND d.hostname LIKE %s AND NOT d.wildcard"
            " AND d.certificate_id IS NULL AND strpos(d.hostname, '.') = length(d.hostname)"
            " - length(%s)",
            # Normal-form host names contain no LIKE wildcards (% and _).
            (wildcard.app_id, "%." + base, base),
        ).fetchall()


def list_force_https_domains(connection: psycopg.Connection) -> list[DomainRecord]:
    """Return every domain whose Force HTTPS flag is on."""
    with connection.cursor(row_factory=class_row(DomainRecord)) as cursor:
        return cursor.execute(_SELECT + " WHERE d.force_https ORDER BY d.hostname").fetchall()


def delete_domain(connection: psycopg.Connection, domain_id: uuid.UUID) -> None:
    """Delete a domain; its certificates, issuances and events go with it."""
    connection.execute("UPDATE domains SET certificate_id = NULL WHERE id = %s", (domain_id,))
    connection.execute("DELETE FROM domains WHERE id = %s", (domain_id,))


def mark_issuing_unless_active(connection: psycopg.Connection, domain_id: uuid.UUID) -> None:
    """Show a domain without a serving certificate as ISSUING and clear its last error."""
    connection.execute(
        "UPDATE domains SET status = 'ISSUING', last_error = '', updated_at = now() "
        "WHERE id = %s AND status <> 'ACTIVE'",
        (domain_id,),
    )


def mark_many_issuing_unless_active(connection: psycopg.Connection,
                                    domain_ids: Sequence[uuid.UUID]) -> None:
    """Do what mark_issuing_unless_active does, for several domains in one statement."""
    connection.execute(
        "UPDATE domains SET status = 'ISSUING', last_error = '', updated_at = now() "
        "WHERE id = ANY(%s) AND status <> 'ACTIVE'",
        (list(domain_ids),),
    )


def update_domain(connection: psycopg.Connection, domain_id: uuid.UUID, **columns: object) -> None:
    """Set the given columns of a domain and its updated_at."""
    allowed = {"status", "force_https", "last_error", "certificate_id"}
    unknown = set(columns) - allowed
    if unknown:
        raise ValueError(f"cannot update domain columns {sorted(unknown)}")
    assignments = ", ".join(f"{name} = %s" for name in columns)
    connection.execute(
        f"UPDATE domains SET {assignments}, updated_at = now() WHERE id = %s",
        (*columns.values(), domain_id),
    )
