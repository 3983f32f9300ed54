"""Keeping below the CA's rate limits with the ledger of orders and failed validations."""

from __future__ import annotations

import dataclasses
import datetime

import psycopg

from service.rate_limits import RateLimit
from service.store import ledger as ledger_rows
from service.store import locks
from service.store.ledger import LedgerEntry


@dataclasses.dataclass(frozen=True)
class RateLimitDelay:
    """A new order must wait until `until`, because a limit would be exceeded before then."""

    until: datetime.datetime
    reason: str


def reserve_order(connection: psycopg.Connection, limits: tuple[RateLimit, ...],
                  entry: LedgerEntry, now: datetime.datetime) -> RateLimitDelay | None:
    """Add an order to the ledger unless a limit would be exceeded; return the delay if one is.

    With limits, the check and the insert happen under the directory's ledger lock, so
    concurrent workers cannot all take the last free slot.
    """
    if limits:
        locks.lock_ledger_transaction(connection, entry.directory_url)
    delays = [delay for limit in limits
              if (delay := _delay_for(connection, limit, entry, now)) is not None]
    if delays:
        return max(delays, key=lambda delay: delay.until)
    ledger_rows.add_entry(connection, entry)
    return None


def _delay_for(connection: psycopg.Connection, limit: RateLimit, entry: LedgerEntry,
               now: datetime.datetime) -> RateLimitDelay | None:
    # Let's Encrypt exempts renewals from its per-registered-domain certificate limit.
    renewals_exempt = limit.kind == "order" and limit.scope == "registered_domain"
    if renewals_exempt and entry.renewal:
        return None
    value = {"account": entry.account_id, "registered_domain": entry.registered_domain,
             "hostname": entry.hostname}[limit.scope]
    if value is None:
        return None
    times = ledger_rows.entry_times(connection, directory_url=entry.directory_url,
                                    kind=limit.kind, scope=limit.scope, value=value,
                                    since=now - limit.window, exclude_renewals=renewals_exempt)
    if len(times) < limit.limit:
        return None
    # A slot frees up when enough of the counted entries have left the window.
    until = times[len(times) - limit.limit] + limit.window
    subject = "this ACME account" if limit.scope == "account" else str(value)
    return RateLimitDelay(
        until=until,
        reason=(f"waiting for the CA's rate limit: {len(times)} "
                f"{'new orders' if limit.kind == 'order' else 'failed validations'} for "
                f"{subject} reached the limit of {limit.describe()}; the next attempt is at "
                f"{until:%Y-%m-%d %H:%M:%S} UTC"),
    )
