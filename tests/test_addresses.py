"""The address policy of outgoing fetches."""

from __future__ import annotations

import ipaddress

import pytest

from service.validation.addresses import unreachable_reason


@pytest.mark.parametrize(("address", "words"), [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.9", "private"),
    ("192.168.1.1", "private"),
    ("fd00::1", "private"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("100.64.0.1", "reserved"),
])
def test_refused_addresses(address: str, words: str) -> None:
    assert words in unreachable_reason(ipaddress.ip_address(address), allow_private=False)


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "151.101.1.1"])
def test_public_addresses_allowed(address: str) -> None:
    assert unreachable_reason(ipaddress.ip_address(address), allow_private=False) == ""


def test_allow_private_allows_loopback() -> None:
    assert unreachable_reason(ipaddress.ip_address("127.0.0.1"), allow_private=True) == ""
