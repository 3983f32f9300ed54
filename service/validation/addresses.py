"""Which IP addresses an outgoing fetch may reach. A pure function without I/O."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def unreachable_reason(address: IPAddress, *, allow_private: bool) -> str:
    """Return why the CA could not reach address (for example "a loopback address"), or "".

    Loopback, private, link-local and other non-public addresses are refused, so a
    domain's DNS records cannot make certsvc fetch from inside its own network. Tests
    set allow_private (CERTSVC_ALLOW_PRIVATE_TARGETS) to run servers on loopback.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if allow_private:
        return ""
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return ""
