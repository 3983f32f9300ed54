"""The responder's request parser and response builders, in process."""

from __future__ import annotations

import pytest

from service.responder import http


@pytest.mark.parametrize("body", [b"", b"x", b"token.thumbprint" * 6, b"z" * 70_000])
def test_ok_response_matches_general_builder(body: bytes) -> None:
    assert http.ok_response(body) == http.response(200, body)


def test_request_parsed() -> None:
    head = (b"GET /.well-known/acme-challenge/abc?x=1 HTTP/1.1\r\n"
            b"Host: Shop.Example.COM.:80\r\nConnection: close\r\n\r\n")

    request = http.parse_head(head)

    assert request.method == "GET"
    assert request.target == "/.well-known/acme-challenge/abc?x=1"
    assert request.path == "/.well-known/acme-challenge/abc"
    assert request.host == "shop.example.com"
    assert request.keep_alive is False


def test_repeated_host_served_from_cache() -> None:
    head = b"GET / HTTP/1.1\r\nHost: Cache.Example.com\r\n\r\n"

    first = http.parse_head(head)
    second = http.parse_head(head)

    assert first.host == second.host == "cache.example.com"
    assert http._normal_hosts[b"Cache.Example.com"] == "cache.example.com"


def test_invalid_host_not_cached() -> None:
    with pytest.raises(http.BadRequest):
        http.parse_head(b"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n")

    assert b"bad host" not in http._normal_hosts


def test_host_cache_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http, "MAX_CACHED_HOSTS", 3)
    monkeypatch.setattr(http, "_normal_hosts", {})

    for number in range(7):
        http.parse_head(f"GET / HTTP/1.1\r\nHost: h{number}.example\r\n\r\n".encode())

    assert 0 < len(http._normal_hosts) <= 3
    assert http._normal_hosts[b"h6.example"] == "h6.example"
