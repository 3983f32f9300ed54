"""Logging configuration shared by every certsvc process."""

from __future__ import annotations

import logging
import sys

from service.text import escape_control_characters

LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"

# Libraries whose debug output carries request and response bodies (JWS payloads,
# challenge objects), kept at INFO so that no key material reaches the log.
_QUIET_LIBRARIES = ("acme", "urllib3", "requests", "josepy")


class SingleLineFormatter(logging.Formatter):
    """Formats each message on one line, with line breaks and other control characters
    escaped, so that text from a request or an uploaded certificate cannot start a
    forged log line. A traceback still follows on lines of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_control_characters(record.message)
        return super().formatMessage(record)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SingleLineFormatter(LOG_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))
