"""A domain's timeline: event types and the listing operation."""

from __future__ import annotations

from service import pagination
from service.backends import Backends
from service.callers import Caller
from service.domains import find_visible_domain
from service.store import events as event_rows
from service.store.records import EventRecord


def list_domain_events(backends: Backends, caller: Caller, hostname_text: str, *,
                       page_size: int, page_token: str) -> tuple[list[EventRecord], str]:
    """Return one page of a domain's events, newest first, and the next page token."""
    limit = pagination.page_size(page_size)
    before_id = pagination.decode_event_token(page_token)
    with backends.database.transaction() as connection:
        domain = find_visible_domain(connection, caller, hostname_text)
        rows = event_rows.list_events(connection, domain.id, before_id=before_id, limit=limit + 1)
    next_token = pagination.encode_event_token(rows[limit - 1].id) if len(rows) > limit else ""
    return rows[:limit], next_token
