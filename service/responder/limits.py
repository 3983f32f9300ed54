"""Caps on the open connections of one responder process, in total and per client."""

from __future__ import annotations

import ipaddress
import logging

from service.log_limits import RepeatedEvent

logger = logging.getLogger(__name__)

REJECTION_LOG_INTERVAL_SECONDS = 10.0


class ConnectionLimits:
    """Open connections of one responder process, in total and per client address."""

    def __init__(self, maximum: int, per_address: int) -> None:
        self.maximum = maximum
        self.per_address = per_address
        self.total = 0
        self.by_address: dict[str, int] = {}
        self._rejections = RepeatedEvent(REJECTION_LOG_INTERVAL_SECONDS)

    def admit(self, address: str) -> bool:
        """Count a new connection from address, unless a limit is reached."""
        count = self.by_address.get(address, 0)
        if self.total >= self.maximum or count >= self.per_address:
            self._report_rejection(address)
            return False
        self.total += 1
        self.by_address[address] = count + 1
        return True

    def release(self, address: str) -> None:
        self.total -= 1
        count = self.by_address[address] - 1
        if count:
            self.by_address[address] = count
        else:
            del self.by_address[address]

    def _report_rejection(self, address: str) -> None:
        # A flood rejects thousands of connections; log the count every few seconds.
        rejected = self._rejections.occurred()
        if rejected is not None:
            logger.warning("rejecting connections over the limit address=%s open=%d "
                           "open_from_address=%d rejected_since_last_report=%d", address,
                           self.total, self.by_address.get(address, 0), rejected)


def client_key(address: str) -> str:
    """Return what the per-client connection cap counts for an address: the address
    itself for IPv4, its /64 network for IPv6, because one client is usually assigned a whole /64."""
    if ":" not in address:
        return address
    try:
        parsed = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.IPv6Network(f"{parsed}/64", strict=False))
