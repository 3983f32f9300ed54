"""When to renew a certificate: relative to its lifetime, or inside the CA's renewal window."""

from __future__ import annotations

import datetime
import random

# Renew once this share of the lifetime has passed: day 60 of 90, day 30 of 45.
RENEWAL_FRACTION = 2 / 3
# The renewal time moves by up to this share of the lifetime either way (about 1.8
# days for 90-day certificates), so certificates issued in one burst renew apart.
JITTER_FRACTION = 0.02
# Bounds on when the CA's renewal information is fetched again, whatever its Retry-After.
MIN_RENEWAL_INFO_RECHECK = datetime.timedelta(minutes=1)
MAX_RENEWAL_INFO_RECHECK = datetime.timedelta(hours=24)


def renew_after_by_lifetime(not_before: datetime.datetime, not_after: datetime.datetime,
                            rng: random.Random | None = None) -> datetime.datetime:
    """Return the renewal time of a certificate: two thirds of its lifetime, plus jitter."""
    lifetime = not_after - not_before
    jitter = lifetime * JITTER_FRACTION * (rng or random).uniform(-1.0, 1.0)
    return not_before + lifetime * RENEWAL_FRACTION + jitter


def bounded_recheck(next_check: datetime.datetime,
                    now: datetime.datetime) -> datetime.datetime:
    """Return the next renewal information fetch, kept between one minute and a day from now."""
    return min(max(next_check, now + MIN_RENEWAL_INFO_RECHECK), now + MAX_RENEWAL_INFO_RECHECK)


def as_utc(value: datetime.datetime) -> datetime.datetime:
    """Return an aware UTC time; a naive value is taken as this machine's local time.

    certbot's acme library returns an aware suggested renewal time from renewal_time(),
    but a naive next-check time: local time for a Retry-After in seconds, UTC for an
    HTTP date. NOTE: on a machine whose clock is not UTC the second form is read off
    by the UTC offset. The recheck bounds keep the error under a day.
    """
    return value.astimezone(datetime.timezone.utc)
