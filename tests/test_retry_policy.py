"""Retry schedule, renewal timing, expiry thresholds and CA error wording: pure functions."""

from __future__ import annotations

import datetime
import random
import socket

import pytest
import requests
from acme import errors as acme_library_errors
from acme import messages

from service.domain_warnings import renewal_warnings
from service.store.records import DomainRecord
from worker import acme_errors, outcomes
from worker.errors import PermanentIssuanceError, TransientIssuanceError
from worker.expiry_warnings import threshold_for
from worker.renewal_timing import bounded_recheck, renew_after_by_lifetime
from worker.retry_policy import JITTER, RetryPolicy

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)
POLICY = RetryPolicy(first_delay_seconds=60, max_delay_seconds=3600, max_attempts=8,
                     max_retry_after_seconds=6 * 3600)


@pytest.mark.parametrize(("attempt", "seconds"), [
    (1, 60), (2, 120), (3, 240), (6, 1920), (7, 3600), (8, 3600), (500, 3600),
])
def test_delay_doubles_up_to_ceiling(attempt: int, seconds: float) -> None:
    assert POLICY.delay_seconds(attempt) == seconds


def test_delay_jitter_stays_in_bounds() -> None:
    delays = [(POLICY.next_attempt_at(3, TransientIssuanceError("x"), NOW) - NOW).total_seconds()
              for _ in range(200)]

    assert min(delays) >= 240 * (1 - JITTER)
    assert max(delays) <= 240 * (1 + JITTER)
    assert len({round(delay, 3) for delay in delays}) > 1


def test_retry_after_honoured() -> None:
    error = TransientIssuanceError("rate limited", retry_after=NOW + datetime.timedelta(hours=2))

    retry_at = POLICY.next_attempt_at(1, error, NOW)

    assert retry_at == NOW + datetime.timedelta(hours=2)


def test_retry_after_capped() -> None:
    error = TransientIssuanceError("rate limited", retry_after=NOW + datetime.timedelta(days=9))

    retry_at = POLICY.next_attempt_at(1, error, NOW)

    assert retry_at == NOW + datetime.timedelta(hours=6)


def test_short_retry_after_keeps_backoff() -> None:
    error = TransientIssuanceError("busy", retry_after=NOW + datetime.timedelta(seconds=1))

    retry_at = POLICY.next_attempt_at(4, error, NOW)

    assert retry_at >= NOW + datetime.timedelta(seconds=480 * (1 - JITTER))


def test_permanent_error_not_retried() -> None:
    assert POLICY.next_attempt_at(1, PermanentIssuanceError("rejected"), NOW) is None


def test_last_attempt_not_retried() -> None:
    assert POLICY.next_attempt_at(8, TransientIssuanceError("timeout"), NOW) is None
    assert POLICY.next_attempt_at(7, TransientIssuanceError("timeout"), NOW) is not None


@pytest.mark.parametrize("days", [90, 64, 45, 6])
def test_renewal_at_two_thirds_of_lifetime(days: int) -> None:
    not_before = NOW
    not_after = NOW + datetime.timedelta(days=days)
    lifetime = not_after - not_before
    rng = random.Random(7)

    times = [renew_after_by_lifetime(not_before, not_after, rng) for _ in range(300)]

    assert min(times) >= not_before + lifetime * (2 / 3 - 0.02)
    assert max(times) <= not_before + lifetime * (2 / 3 + 0.02)
    # Certificates issued in the same second spread over more than an hour.
    assert max(times) - min(times) > datetime.timedelta(hours=1) * days / 90


def test_renewal_info_recheck_bounded() -> None:
    assert bounded_recheck(NOW - datetime.timedelta(hours=1), NOW) == NOW + datetime.timedelta(minutes=1)
    assert bounded_recheck(NOW + datetime.timedelta(days=5), NOW) == NOW + datetime.timedelta(days=1)
    assert bounded_recheck(NOW + datetime.timedelta(hours=6), NOW) == NOW + datetime.timedelta(hours=6)


@pytest.mark.parametrize(("left", "threshold"), [
    (datetime.timedelta(days=30), None),
    (datetime.timedelta(days=14, seconds=1), None),
    (datetime.timedelta(days=14), 14),
    (datetime.timedelta(days=8), 14),
    (datetime.timedelta(days=7), 7),
    (datetime.timedelta(days=2), 7),
    (datetime.timedelta(hours=23), 1),
    (datetime.timedelta(0), 0),
    (datetime.timedelta(days=-3), 0),
])
def test_expiry_threshold_crossed(left: datetime.timedelta, threshold: int | None) -> None:
    assert threshold_for(left) == threshold


def _domain(**fields: object) -> DomainRecord:
    values = dict(id=None, hostname="shop.example.com", unicode_hostname="shop.example.com",
                  app_id="app-1", wildcard=False, status="ACTIVE", force_https=False,
                  last_error="", certificate_id=None, created_at=NOW, updated_at=NOW)
    values.update(fields)
    return DomainRecord(**values)


def test_warning_for_expiring_upload() -> None:
    domain = _domain(certificate_source="CUSTOM",
                     certificate_not_after=NOW + datetime.timedelta(days=5))

    warnings = renewal_warnings(domain, NOW)

    assert len(warnings) == 1
    assert "expires on 2026-03-06" in warnings[0]
    assert "does not renew" in warnings[0]


def test_no_warning_while_renewal_pending() -> None:
    domain = _domain(certificate_source="LETS_ENCRYPT",
                     certificate_not_after=NOW + datetime.timedelta(days=3),
                     certificate_renew_after=NOW + datetime.timedelta(days=1))

    assert renewal_warnings(domain, NOW) == []


def test_warning_for_overdue_renewal() -> None:
    domain = _domain(certificate_source="LETS_ENCRYPT",
                     certificate_not_after=NOW + datetime.timedelta(days=10),
                     certificate_renew_after=NOW - datetime.timedelta(days=20),
                     last_error="self-check failed for shop.example.com: GET returned 404")

    warnings = renewal_warnings(domain, NOW)

    assert len(warnings) == 2
    assert "has not been renewed yet" in warnings[0]
    assert "renewing the certificate of shop.example.com failed: self-check failed" in warnings[1]


@pytest.mark.parametrize(("fields", "expected"), [
    ({"certificate_source": "LETS_ENCRYPT"},
     "renewing the certificate of shop.example.com failed: "),
    ({"certificate_source": "CUSTOM"},
     "requesting a Let's Encrypt certificate for shop.example.com failed, so the uploaded "
     "certificate still serves it: "),
    ({"serving_wildcard": "*.example.com", "status": "FAILED",
      "certificate_source": "LETS_ENCRYPT"},
     "requesting a certificate of its own for shop.example.com failed, so the certificate "
     "of *.example.com still serves it: "),
], ids=["renewal", "upload", "wildcard"])
def test_failed_request_warning_names_cause(fields: dict, expected: str) -> None:
    domain = _domain(last_error="self-check failed for shop.example.com: GET returned 404",
                     certificate_not_after=NOW + datetime.timedelta(days=60), **fields)

    warnings = renewal_warnings(domain, NOW)

    assert warnings == [expected + "self-check failed for shop.example.com: GET returned 404"]


def test_pending_wildcard_served_without_request_warning() -> None:
    # CheckDomain stores its self-check message in last_error of a PENDING domain.
    domain = _domain(status="PENDING", serving_wildcard="*.example.com",
                     certificate_source="LETS_ENCRYPT",
                     certificate_not_after=NOW + datetime.timedelta(days=60),
                     last_error="self-check failed for shop.example.com: GET returned 404")

    assert renewal_warnings(domain, NOW) == []


def test_problem_text_hides_key_authorization() -> None:
    key_authorization = ("LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0."
                         "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI")
    problem = messages.Error(typ="urn:ietf:params:acme:error:unauthorized",
                             detail=f'key authorization mismatch "{key_authorization}" != "x"')

    text = acme_errors.problem_text(problem)

    assert key_authorization not in text
    assert "<key authorization>" in text
    assert text.startswith("unauthorized: ")


@pytest.mark.parametrize(("typ", "detail", "retryable"), [
    ("unauthorized", "The key authorization file from the server did not match", False),
    ("unauthorized", "Non-200 status code from HTTP: http://a.example:5002/x returned 503", True),
    ("unauthorized", "Non-200 status code from HTTP: http://a.example:5002/x returned 404", False),
    ("connection", "connection refused", True),
    ("caa", "CAA record forbids issuance", False),
    ("rateLimited", "too many certificates", True),
    ("serverInternal", "oops", True),
])
def test_validation_problem_classified(typ: str, detail: str, retryable: bool) -> None:
    problem = messages.Error(typ=f"urn:ietf:params:acme:error:{typ}", detail=detail)
    challenge = messages.ChallengeBody(
        chall=None, status=messages.STATUS_INVALID, error=problem)  # type: ignore[arg-type]
    authorization = messages.AuthorizationResource(
        body=messages.Authorization(status=messages.STATUS_INVALID, challenges=[challenge]),
        uri="https://ca.example/authz/1")

    error = acme_errors.from_validation_failure(
        acme_library_errors.ValidationError([authorization]), "a.example")

    assert error.retryable is retryable


def test_unreachable_ca_names_address_and_reason() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    try:
        requests.get(f"http://127.0.0.1:{port}/dir", timeout=5)
    except requests.RequestException as raised:
        error = acme_errors.from_exception(raised, "shop.example.com")

    assert isinstance(error, TransientIssuanceError)
    assert f"cannot reach http://127.0.0.1:{port}/dir (Connection refused)" in str(error)


def test_giving_up_drops_retry_promise() -> None:
    error = TransientIssuanceError("cannot reach http://ca.invalid/dir (Connection refused)"
                                   + acme_errors.RETRY_LATER)

    reason = outcomes._giving_up_reason(error, 3, 3)

    assert "retries later" not in reason
    assert "gave up after 3 attempts" in reason
    assert "(Connection refused). Fix the cause" in reason
