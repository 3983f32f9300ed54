"""Text from uploads and requests in logs and messages: one line, control characters escaped."""

from __future__ import annotations

import logging
import sys

from cryptography import x509
from cryptography.x509.oid import NameOID

from service.logging_setup import LOG_FORMAT, SingleLineFormatter
from service.text import escape_control_characters
from service.validation.chain import describe_name

FORGED = "evil\n2026-12-05 00:00:00,000 ERROR 1 fake: injected\x1b[31m\u2028"


def _record(message: str, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord("certsvc.test", logging.INFO, __file__, 1, "rejected: %s",
                             (message,), exc_info)


def test_message_kept_on_one_line() -> None:
    text = SingleLineFormatter(LOG_FORMAT).format(_record(FORGED))

    assert "\n" not in text
    assert "\x1b" not in text
    assert "\u2028" not in text
    assert "evil\\n2026-12-05" in text
    assert "\\x1b[31m" in text


def test_traceback_still_follows() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        exc_info = sys.exc_info()

    text = SingleLineFormatter(LOG_FORMAT).format(_record("plain", exc_info))

    assert text.splitlines()[0].endswith("rejected: plain")
    assert "Traceback (most recent call last):" in text
    assert text.rstrip().endswith("ValueError: broken")


def test_plain_text_unchanged() -> None:
    assert escape_control_characters("CN=shop.example.com, O=Shop") == (
        "CN=shop.example.com, O=Shop")


def test_certificate_name_escaped() -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, FORGED)])

    described = describe_name(name)

    assert "\n" not in described
    assert "\x1b" not in described
    assert described.startswith('"CN=evil\\n')
