"""The ledger of orders and failed validations keeps issuance below the CA's rate limits."""

from __future__ import annotations

import concurrent.futures
import datetime
import threading
import time
import uuid

import psycopg
import pytest

from service.config import ConfigError, Settings
from service.rate_limits import (LETS_ENCRYPT_DIRECTORY_URL, RateLimit, RateLimitSyntaxError,
                                 parse_rate_limits)
from service.store.ledger import LedgerEntry
from stacks import isolated_stack
from service.validation.public_suffix import registered_domain
from worker.rate_limit_guard import reserve_order


@pytest.mark.parametrize(("hostname", "registered"), [
    ("shop.example.com", "example.com"),
    ("a.b.shop.example.co.uk", "example.co.uk"),
    ("example.co.uk", "example.co.uk"),
    ("blog.someone.github.io", "someone.github.io"),
    ("xn--fa-hia.de", "xn--fa-hia.de"),
    ("co.uk", "co.uk"),
])
def test_registered_domain_from_public_suffix_list(hostname: str, registered: str) -> None:
    assert registered_domain(hostname) == registered


def test_lets_encrypt_limits_by_default() -> None:
    limits = Settings.from_env({"CERTSVC_ACME_DIRECTORY_URL": LETS_ENCRYPT_DIRECTORY_URL}
                               ).acme_rate_limits

    by_name = {limit.name: limit for limit in limits}
    assert by_name["orders_per_account"].limit == 300
    assert by_name["orders_per_account"].window == datetime.timedelta(hours=3)
    assert by_name["orders_per_registered_domain"].limit == 50
    assert by_name["orders_per_registered_domain"].window == datetime.timedelta(days=7)
    assert by_name["orders_per_hostname"].limit == 5
    assert by_name["failed_validations_per_hostname"].window == datetime.timedelta(hours=1)


def test_no_limits_for_other_directories() -> None:
    assert Settings.from_env({"CERTSVC_ACME_DIRECTORY_URL": "https://127.0.0.1:14000/dir"}
                             ).acme_rate_limits == ()
    assert Settings.from_env({"CERTSVC_ACME_DIRECTORY_URL": LETS_ENCRYPT_DIRECTORY_URL,
                              "CERTSVC_ACME_RATE_LIMITS": "none"}).acme_rate_limits == ()


def test_limits_parsed() -> None:
    limits = parse_rate_limits("orders_per_registered_domain=2/1h, failed_validations_per_account=3/30m")

    assert limits == (
        RateLimit("order", "registered_domain", 2, datetime.timedelta(hours=1)),
        RateLimit("failed_validation", "account", 3, datetime.timedelta(minutes=30)),
    )
    assert limits[0].describe() == "2 new orders per registered domain in 1 h"


@pytest.mark.parametrize("text", ["orders=5/1h", "orders_per_domain=5/1h", "orders_per_account=5",
                                  "orders_per_account=0/1h", "orders_per_account=5/1w"])
def test_bad_limit_rejected(text: str) -> None:
    with pytest.raises(RateLimitSyntaxError):
        parse_rate_limits(text)
    with pytest.raises(ConfigError, match="CERTSVC_ACME_RATE_LIMITS"):
        Settings.from_env({"CERTSVC_ACME_RATE_LIMITS": text})


def test_last_slot_taken_once(database_url: str) -> None:
    directory = f"https://ca-{uuid.uuid4().hex[:8]}.test/dir"
    limits = (RateLimit("order", "registered_domain", 3, datetime.timedelta(hours=1)),)
    now = datetime.datetime.now(datetime.timezone.utc)
    barrier = threading.Barrier(8)

    def reserve(number: int):
        entry = LedgerEntry(directory_url=directory, account_id=None, kind="order",
                            hostname=f"h{number}.example.net", registered_domain="example.net")
        with psycopg.connect(database_url) as connection:
            barrier.wait()
            with connection.transaction():
                return reserve_order(connection, limits, entry, now)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        delays = list(pool.map(reserve, range(8)))

    allowed = [delay for delay in delays if delay is None]
    refused = [delay for delay in delays if delay is not None]
    assert len(allowed) == 3
    assert len(refused) == 5
    assert all("3 new orders for example.net" in delay.reason for delay in refused)
    assert all(delay.until > now + datetime.timedelta(minutes=59) for delay in refused)


def test_renewals_exempt_from_domain_limit(database_url: str) -> None:
    directory = f"https://ca-{uuid.uuid4().hex[:8]}.test/dir"
    limits = (RateLimit("order", "registered_domain", 1, datetime.timedelta(hours=1)),)
    now = datetime.datetime.now(datetime.timezone.utc)

    def entry(renewal: bool) -> LedgerEntry:
        return LedgerEntry(directory_url=directory, account_id=None, kind="order",
                           hostname="a.example.org", registered_domain="example.org",
                           renewal=renewal)

    with psycopg.connect(database_url) as connection:
        first = reserve_order(connection, limits, entry(False), now)
        renewal = reserve_order(connection, limits, entry(True), now)
        second_new = reserve_order(connection, limits, entry(False), now)

    assert first is None
    assert renewal is None
    assert second_new is not None


@pytest.mark.pebble
def test_order_delayed_before_limit(tmp_path) -> None:
    registered = f"r{uuid.uuid4().hex[:10]}.com"
    limited = [f"{label}.{registered}" for label in ("a", "b", "c")]
    other = f"www.r{uuid.uuid4().hex[:10]}.com"
    with isolated_stack(tmp_path, workers=1, extra_env={
            "CERTSVC_ACME_RATE_LIMITS": "orders_per_registered_domain=2/1h"}) as deployment:
        ids = deployment.add_and_request(limited[:2] + [other])
        assert set(deployment.wait_until_final(ids).values()) == {"SUCCEEDED"}

        [delayed_id] = deployment.add_and_request(limited[2:])
        delayed = _wait_for_delay(deployment, delayed_id)
        orders = deployment.query(
            "SELECT count(*) FROM acme_ledger WHERE registered_domain = %s AND kind = 'order'",
            registered)[0][0]
        events = [row[0] for row in deployment.query(
            "SELECT type FROM events WHERE issuance_id = %s", uuid.UUID(delayed_id))]

    state, attempt, error, next_attempt_at = delayed
    assert state == "QUEUED"
    assert attempt == 0
    assert f"2 new orders for {registered} reached the limit" in error
    assert next_attempt_at > datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=55)
    assert orders == 2
    assert "RATE_LIMIT_DELAYED" in events
    assert "ORDER_CREATED" not in events


def _wait_for_delay(deployment, issuance_id: str) -> tuple:
    deadline = time.monotonic() + 120
    while True:
        row = deployment.query(
            "SELECT state, attempt, error, next_attempt_at FROM issuances WHERE id = %s",
            uuid.UUID(issuance_id))[0]
        if "rate limit" in row[2]:
            return row
        if time.monotonic() > deadline:
            pytest.fail(f"issuance {issuance_id} was not delayed: {row}")
        time.sleep(0.1)
