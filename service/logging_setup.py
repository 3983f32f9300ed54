"""Logging configuration shared by every certsvc process."""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"
# Libraries whose debug output carries request and response bodies (JWS payloads,
# challenge objects), kept at INFO so that no key material reaches the log.
_QUIET_LIBRARIES = ("acme", "urllib3", "requests", "josepy")


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr, force=True)
    for name in _QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger().level))
