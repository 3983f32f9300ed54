"""Hostname normal form and the rules names must follow."""

from __future__ import annotations

import pytest

from service.validation.hostname import HostnameError, covers, normalize_hostname


@pytest.mark.parametrize(("typed", "ascii_name", "unicode_name", "wildcard"), [
    ("shop.example.com", "shop.example.com", "shop.example.com", False),
    ("Shop.EXAMPLE.com", "shop.example.com", "shop.example.com", False),
    ("shop.example.com.", "shop.example.com", "shop.example.com", False),
    ("  shop.example.com  ", "shop.example.com", "shop.example.com", False),
    ("café.example.com", "xn--caf-dma.example.com", "café.example.com", False),
    ("XN--CAF-DMA.example.com", "xn--caf-dma.example.com", "café.example.com", False),
    ("faß.de", "xn--fa-hia.de", "faß.de", False),
    ("ＳＨＯＰ.example.com", "shop.example.com", "shop.example.com", False),
    ("*.Example.com", "*.example.com", "*.example.com", True),
    ("shop.example.co.uk", "shop.example.co.uk", "shop.example.co.uk", False),
    ("me.github.io", "me.github.io", "me.github.io", False),
    ("a" * 63 + ".com", "a" * 63 + ".com", "a" * 63 + ".com", False),
    ("*.Example.com.", "*.example.com", "*.example.com", True),
    ("shop。example。com", "shop.example.com", "shop.example.com", False),
    ("*.café.example.com", "*.xn--caf-dma.example.com", "*.café.example.com", True),
])
def test_normal_form(typed: str, ascii_name: str, unicode_name: str, wildcard: bool) -> None:
    hostname = normalize_hostname(typed)

    assert hostname.ascii == ascii_name
    assert hostname.unicode == unicode_name
    assert hostname.wildcard is wildcard


@pytest.mark.parametrize(("typed", "words"), [
    ("", ["empty"]),
    ("   ", ["empty"]),
    ("https://shop.example.com/", ["URL", "scheme", "host name only"]),
    ("http://shop.example.com", ["scheme", "shop.example.com"]),
    ("shop.example.com/path", ["path", "host name only"]),
    ("shop.example.com:8443", ["port", "host name only"]),
    ("user@shop.example.com", ["host name only"]),
    ("shop_1.example.com", ["underscore"]),
    ("a" * 64 + ".example.com", ["64", "63"]),
    (".".join(["a" * 60] * 5), ["253"]),
    ("-shop.example.com", ["hyphen"]),
    ("shop-.example.com", ["hyphen"]),
    ("shop..example.com", ["empty label"]),
    (".shop.example.com", ["empty label"]),
    ("a.*.example.com", ["wildcard", "first label"]),
    ("*shop.example.com", ["wildcard"]),
    ("192.0.2.1", ["IP address"]),
    ("[2001:db8::1]", ["IP address"]),
    ("[::1]:443", ["IP address"]),
    ("co.uk", ["public suffix"]),
    ("*.co.uk", ["wildcard", "public suffix"]),
    ("github.io", ["public suffix"]),
    ("printer.office.local", [".local", "reserved"]),
    ("db.corp.internal", [".internal", "reserved"]),
    ("nas.home.arpa", [".arpa", "reserved"]),
    ("2001:db8::1", ["IP address"]),
    ("localhost", ["single label"]),
    ("shop.123", ["digits"]),
    ("ab--cd.example.com", ["third and fourth"]),
    ("xn--zz.example.com", ["punycode"]),
    ("☃.example.com", ["not"]),
    ("shop example.com", ["white space"]),
    ("shop.example.com:", ["port", "host name only"]),
    ("*.com", ["single label"]),
    ("**.example.com", ["wildcard"]),
    ("shop.*", ["wildcard", "first label"]),
    ("ftp://shop.example.com", ["scheme", "host name only"]),
    ("shop.example.com?x=1", ["host name only"]),
])
def test_rejection_names_rule(typed: str, words: list[str]) -> None:
    with pytest.raises(HostnameError) as raised:
        normalize_hostname(typed)

    message = str(raised.value)
    for word in words:
        assert word.lower() in message.lower(), message


@pytest.mark.parametrize(("pattern", "hostname", "expected"), [
    ("shop.example.com", "shop.example.com", True),
    ("*.example.com", "shop.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "a.b.example.com", False),
    ("*.example.com", "*.example.com", True),
    ("shop.example.com", "*.example.com", False),
    ("SHOP.example.com", "shop.example.com", True),
    ("other.example.net", "shop.example.com", False),
])
def test_covers(pattern: str, hostname: str, expected: bool) -> None:
    assert covers(pattern, hostname) is expected
