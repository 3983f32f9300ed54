"""The HTTP-01 responder over real sockets, with tokens written to Redis."""

from __future__ import annotations

import secrets
import socket

import pytest

from service.redis_keys import RedisKeys, http01_value


def _exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(raw)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def _get(port: int, path: str, host: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    raw = _exchange(port, f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                    .encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _publish(redis_client, keys: RedisKeys, hostname: str) -> tuple[str, str]:
    token = secrets.token_urlsafe(32)
    key_authorization = f"{token}.{secrets.token_urlsafe(32)}"
    redis_client.set(keys.http01(token), http01_value(hostname, key_authorization), ex=60)
    return token, key_authorization


def test_serves_key_authorization(responder_port, redis_client, keys) -> None:
    token, key_authorization = _publish(redis_client, keys, "shop.example.com")

    status, headers, body = _get(responder_port, f"/.well-known/acme-challenge/{token}",
                                 "shop.example.com")

    assert status == 200
    assert body == key_authorization.encode()
    assert headers["content-type"].startswith("text/plain")
    assert headers["cache-control"] == "no-store"


def test_host_with_port_and_case(responder_port, redis_client, keys) -> None:
    token, key_authorization = _publish(redis_client, keys, "shop.example.com")

    status, _, body = _get(responder_port, f"/.well-known/acme-challenge/{token}",
                           "SHOP.example.com.:5002")

    assert status == 200
    assert body == key_authorization.encode()


def test_token_for_other_host_not_found(responder_port, redis_client, keys) -> None:
    token, _ = _publish(redis_client, keys, "shop.example.com")

    status, _, body = _get(responder_port, f"/.well-known/acme-challenge/{token}",
                           "other.example.net")

    assert status == 404
    assert token.encode() not in body


def test_head_has_no_body(responder_port, redis_client, keys) -> None:
    token, key_authorization = _publish(redis_client, keys, "shop.example.com")

    status, headers, body = _get(responder_port, f"/.well-known/acme-challenge/{token}",
                                 "shop.example.com", method="HEAD")

    assert status == 200
    assert headers["content-length"] == str(len(key_authorization))
    assert body == b""


@pytest.mark.parametrize(("path", "expected"), [
    ("/.well-known/acme-challenge/" + "A" * 43, 404),
    ("/.well-known/acme-challenge/../../etc/passwd", 404),
    ("/.well-known/acme-challenge/bad%20token", 404),
    ("/.well-known/acme-challenge/", 404),
    ("/index.html", 404),
    ("/.well-known/certsvc/health", 200),
])
def test_paths(responder_port, path: str, expected: int) -> None:
    status, _, _ = _get(responder_port, path, "shop.example.com")

    assert status == expected


def test_post_not_allowed(responder_port) -> None:
    status, headers, _ = _get(responder_port, "/.well-known/acme-challenge/x", "a.example.com",
                              method="POST")

    assert status == 405
    assert headers["allow"] == "GET, HEAD"


def test_long_request_line_414(responder_port) -> None:
    raw = _exchange(responder_port, b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a.example.com\r\n\r\n")

    assert raw.startswith(b"HTTP/1.1 414 ")


def test_large_headers_431(responder_port) -> None:
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 200) for i in range(100))

    raw = _exchange(responder_port, b"GET / HTTP/1.1\r\nHost: a.example.com\r\n" + headers + b"\r\n")

    assert raw.startswith(b"HTTP/1.1 431 ")


def test_keep_alive_serves_two_requests(responder_port, redis_client, keys) -> None:
    token, key_authorization = _publish(redis_client, keys, "shop.example.com")
    request = (f"GET /.well-known/acme-challenge/{token} HTTP/1.1\r\n"
               "Host: shop.example.com\r\n\r\n").encode()
    last = (f"GET /.well-known/acme-challenge/{token} HTTP/1.1\r\n"
            "Host: shop.example.com\r\nConnection: close\r\n\r\n").encode()

    raw = _exchange(responder_port, request + last)

    assert raw.count(b"HTTP/1.1 200 OK") == 2
    assert raw.count(key_authorization.encode()) == 2


def test_request_body_rejected(responder_port) -> None:
    raw = _exchange(responder_port, b"GET / HTTP/1.1\r\nHost: a.example.com\r\n"
                                    b"Content-Length: 5\r\n\r\nhello")

    assert raw.startswith(b"HTTP/1.1 400 ")


def test_absolute_form_target(responder_port, redis_client, keys) -> None:
    """RFC 9112 lets a client name the host in the request line; that host wins."""
    token, key_authorization = _publish(redis_client, keys, "shop.example.com")

    raw = _exchange(responder_port, (
        f"GET http://shop.example.com/.well-known/acme-challenge/{token} HTTP/1.1\r\n"
        "Host: other.example.net\r\nConnection: close\r\n\r\n").encode())

    assert raw.startswith(b"HTTP/1.1 200 ")
    assert raw.endswith(key_authorization.encode())


@pytest.mark.parametrize(("address", "key"), [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
])
def test_connection_cap_client_key(address: str, key: str) -> None:
    from service.responder.limits import client_key

    assert client_key(address) == key
