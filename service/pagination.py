"""Page sizes and opaque page tokens of the List RPCs."""

from __future__ import annotations

import base64
import binascii
import re

from service.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 100
# A domain page token carries a hostname in normal form.
MAX_TOKEN_HOSTNAME_LENGTH = 255
_TOKEN_HOSTNAME = re.compile(r"^[a-z0-9.*-]*$")
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    """Return the page size to use, raising InvalidArgument outside 0..MAX_PAGE_SIZE."""
    if requested < 0 or requested > MAX_PAGE_SIZE:
        raise InvalidArgument.for_field(
            "page_size", f"page_size must be between 0 and {MAX_PAGE_SIZE}; got {requested}"
        )
    return requested or DEFAULT_PAGE_SIZE


def _encode(kind: str, value: str) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")


def _decode(kind: str, token: str) -> str | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    found_kind, separator, value = text.partition(":")
    if found_kind != kind or not separator:
        raise _invalid_token()
    return value


def _invalid_token() -> InvalidArgument:
    return InvalidArgument.for_field(
        "page_token", "page_token is invalid; pass the next_page_token of the previous page"
    )


def encode_domain_token(last_hostname: str) -> str:
    return _encode("domain", last_hostname)


def decode_domain_token(token: str) -> str:
    """Return the hostname after which the page starts; empty for the first page."""
    hostname = _decode("domain", token) or ""
    if len(hostname) > MAX_TOKEN_HOSTNAME_LENGTH or not _TOKEN_HOSTNAME.match(hostname):
        raise _invalid_token()
    return hostname


def encode_event_token(last_event_id: int) -> str:
    return _encode("event", str(last_event_id))


def decode_event_token(token: str) -> int | None:
    value = _decode("event", token)
    if value is None:
        return None
    # Event ids are Postgres bigints: at most 19 ASCII digits.
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise _invalid_token()
    return int(value)
