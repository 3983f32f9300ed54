"""Translation of ACME and network failures into issuance errors with advice for the user."""

from __future__ import annotations

import datetime
import re

import requests
from acme import errors as acme_errors
from acme import messages

from worker.errors import IssuanceError, PermanentIssuanceError, TransientIssuanceError

# ACME problem types (RFC 8555 section 6.7) that repeat until the user or operator
# changes something, so retrying would only spend the CA's rate limits.
PERMANENT_PROBLEMS = frozenset({
    "badCSR", "badPublicKey", "badRevocationReason", "badSignatureAlgorithm", "caa",
    "incorrectResponse", "invalidContact", "malformed", "rejectedIdentifier",
    "unauthorized", "unsupportedContact", "unsupportedIdentifier", "userActionRequired",
    "externalAccountRequired", "compound",
})

# Ends the message of an error that another attempt may get past.
RETRY_LATER = "; certsvc retries later"
# Advice for the user, per ACME problem type found while validating a challenge.
_VALIDATION_ADVICE = {
    "connection": "the CA could not connect to port 80 of {host}; check that its A/AAAA "
                  "records point at this platform and that port 80 is open",
    "dns": "the CA could not resolve {host}; check its DNS records",
    "timeout": "the CA's request to {host} timed out; check that port 80 answers quickly",
    "unauthorized": "the CA fetched the challenge from {host} but got the wrong answer; "
                    "check that nothing in front of the site rewrites "
                    "/.well-known/acme-challenge/ paths",
    "incorrectResponse": "the CA fetched the challenge from {host} but got the wrong answer; "
                         "check that nothing in front of the site rewrites "
                         "/.well-known/acme-challenge/ paths",
    "caa": "a CAA record of {host} or a parent domain does not allow this CA to issue; add "
           "a CAA issue record for the CA or remove the restriction",
    "rejectedIdentifier": "the CA will not issue certificates for {host} (its policy forbids "
                          "the name)",
    "rateLimited": "the CA's rate limit for {host} was reached" + RETRY_LATER,
}


# An HTTP status 500-599 quoted in a validation problem's detail.
_SERVER_ERROR_STATUS = re.compile(r"\b5\d\d\b")
# The end of an OSError's text inside a requests error: "[Errno 111] Connection refused".
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")
# A key authorization: the challenge token, a dot and the account key's SHA-256
# thumbprint (43 base64url characters). Some CAs (Pebble among them) quote the expected
# one in their problem detail; it is not written to issuance errors or logs.
_KEY_AUTHORIZATION = re.compile(r"[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


def problem_text(problem: messages.Error) -> str:
    """Render a CA problem document as one line: type and detail, key authorizations removed."""
    detail = _KEY_AUTHORIZATION.sub("<key authorization>", problem.detail or problem.description or "")
    return f"{problem.code or problem.typ}: {detail}".strip(": ")


def from_problem(problem: messages.Error, hostname: str, *,
                 retry_after: datetime.datetime | None = None,
                 during: str = "") -> IssuanceError:
    """Classify a CA problem as permanent or transient and describe it for the user."""
    code = problem.code or ""
    advice = _VALIDATION_ADVICE.get(code, "").format(host=hostname)
    text = f"the CA returned {problem_text(problem)}"
    if during:
        text = f"{during}: {text}"
    if advice:
        text = f"{text}. {advice[0].upper()}{advice[1:]}"
    if code in PERMANENT_PROBLEMS:
        return PermanentIssuanceError(text)
    return TransientIssuanceError(text, retry_after=retry_after)


def from_validation_failure(error: acme_errors.ValidationError, hostname: str) -> IssuanceError:
    """Describe the failed challenges of an authorization."""
    problems = [challenge.error for authzr in error.failed_authzrs
                for challenge in authzr.body.challenges if challenge.error is not None]
    if not problems:
        return TransientIssuanceError(
            f"validation of {hostname} failed without a reason from the CA")
    classified = from_problem(problems[0], hostname, during="HTTP-01 validation failed")
    # A 5xx from the site (a responder that lost Redis returns 503) is temporary, even
    # though the CA reports it as unauthorized.
    if not classified.retryable and _SERVER_ERROR_STATUS.search(problems[0].detail or ""):
        return TransientIssuanceError(f"{classified}; the site returned a server error, "
                                      "so certsvc retries")
    return classified


def _network_reason(error: requests.RequestException) -> str:
    """Return the innermost cause of a requests error, such as "Connection refused"."""
    found = _ERRNO_TEXT.search(str(error))
    return found.group(1) if found else type(error).__name__


def from_exception(error: Exception, hostname: str,
                   retry_after: datetime.datetime | None = None) -> IssuanceError:
    """Classify any exception raised while talking to the CA."""
    if isinstance(error, IssuanceError):
        return error
    if isinstance(error, messages.Error):
        return from_problem(error, hostname, retry_after=retry_after)
    if isinstance(error, acme_errors.ValidationError):
        return from_validation_failure(error, hostname)
    if isinstance(error, acme_errors.TimeoutError):
        return TransientIssuanceError(f"the CA did not finish in time for {hostname}: {error}")
    if isinstance(error, requests.RequestException):
        url = error.request.url if error.request is not None else "the ACME server"
        return TransientIssuanceError(
            f"cannot reach {url} ({_network_reason(error)}){RETRY_LATER}")
    if isinstance(error, acme_errors.ClientError):
        return TransientIssuanceError(f"the ACME server sent an unexpected response: {error}")
    if isinstance(error, acme_errors.Error):
        return TransientIssuanceError(f"ACME error: {error}")
    return TransientIssuanceError(f"unexpected error: {type(error).__name__}: {error}")
