"""The responder against hostile clients, over real sockets to real responder processes.

Responders here get short timeouts or small connection limits through their
settings, so each case runs in about a second. Clients use several loopback source
addresses (127.0.0.2, 127.0.0.3, ...) to stand for different machines.
"""

from __future__ import annotations

import re
import secrets
import select
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis

import leak_scan
from devtools import stack
from devtools.pebble import free_port
from service.redis_keys import RedisKeys, http01_value

HOST = "shop.example.com"


@pytest.fixture(scope="module")
def start_responder(processes: stack.Processes) -> Iterator[Callable[..., int]]:
    """Start responders with extra settings; return a function that gives the port."""
    started = []

    def start(**settings: str) -> int:
        port = free_port()
        name = f"responder-hardening-{len(started)}"
        process = processes.start(name, "responder", extra_env={
            "CERTSVC_RESPONDER_ADDRESS": f"127.0.0.1:{port}", **settings})
        stack.wait_for_port("127.0.0.1", port, process=process)
        started.append(name)
        return port

    yield start
    for name in started:
        processes.stop(name)


@pytest.fixture(scope="module")
def quick_port(start_responder) -> int:
    """A responder with a 1 s head timeout and a 2 s idle timeout."""
    return start_responder(CERTSVC_RESPONDER_HEAD_TIMEOUT_SECONDS="1",
                           CERTSVC_RESPONDER_IDLE_TIMEOUT_SECONDS="2")


@pytest.fixture(scope="module")
def token(redis_prefix: str) -> Iterator[tuple[str, str]]:
    """An http-01 token published for HOST, and its key authorization."""
    client = redis.Redis.from_url(stack.REDIS_URL)
    value = secrets.token_urlsafe(32)
    key_authorization = f"{value}.{secrets.token_urlsafe(32)}"
    leak_scan.watch("key authorization published by the responder hardening tests",
                    key_authorization)
    client.set(RedisKeys(redis_prefix).http01(value), http01_value(HOST, key_authorization),
               ex=600)
    yield value, key_authorization
    client.close()


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=15, source_address=(source, 0))


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _exchange(port: int, raw: bytes, source: str = "127.0.0.1") -> bytes:
    """Send raw, end the sending side, and return everything the responder answers."""
    with _connect(port, source) as sock:
        sock.sendall(raw)
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the responder closed the connection already, for example over a limit
        return _read_all(sock)


def _status(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def _statuses(raw: bytes) -> list[int]:
    return [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


def _get(path: str, host: str = HOST, close: bool = True) -> bytes:
    connection = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{connection}\r\n".encode()


# Slow clients

def test_unfinished_head_times_out(quick_port) -> None:
    with _connect(quick_port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: shop.exa")
        answer = _read_all(sock)

    assert _status(answer) == 408
    assert b"Connection: close" in answer


def test_trickling_head_cut_off(quick_port) -> None:
    head = b"GET / HTTP/1.1\r\n" + b"X-Slow: " + b"a" * 400 + b"\r\n\r\n"
    sent = 0
    with _connect(quick_port) as sock:
        answer = b""
        while sent < len(head):
            sock.sendall(head[sent:sent + 1])
            sent += 1
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                answer = _read_all(sock)
                break

    assert sent < len(head)
    assert _status(answer) == 408


def test_idle_keep_alive_closed(quick_port) -> None:
    with _connect(quick_port) as sock:
        sock.sendall(_get("/.well-known/certsvc/health", close=False))
        answer = _read_all(sock)

    assert answer.count(b"HTTP/1.1 ") == 1
    assert _status(answer) == 200


def test_stalled_reader_dropped_others_served(quick_port, redis_prefix) -> None:
    # Each answer carries a 64 KiB self-check body, so the answers to 200 pipelined
    # requests outgrow the kernel's socket buffers and the responder has to hold back.
    hostname = f"big-{uuid.uuid4().hex[:8]}.example.com"
    client = redis.Redis.from_url(stack.REDIS_URL)
    client.set(RedisKeys(redis_prefix).self_check_body(hostname), b"x" * 65536, ex=600)
    client.close()
    request = _get("/.well-known/acme-challenge/_g_selfcheck_", host=hostname, close=False)
    count = 200
    with socket.socket() as stalled:
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.settimeout(15)
        stalled.bind(("127.0.0.2", 0))
        stalled.connect(("127.0.0.1", quick_port))
        stalled.sendall(request * count)
        other = _exchange(quick_port, _get("/.well-known/certsvc/health"), "127.0.0.3")
        # Stay stalled past the responder's 2 s idle timeout before reading anything.
        time.sleep(3)
        answers = _read_all(stalled)

    assert _status(other) == 200
    assert 0 < answers.count(b"HTTP/1.1 200 OK") < count


# Connection limits

def test_per_address_limit(start_responder) -> None:
    port = start_responder(CERTSVC_RESPONDER_MAX_CONNECTIONS_PER_ADDRESS="4")
    held = [_connect(port, "127.0.0.2") for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(_get("/.well-known/certsvc/health", close=False))
            assert _status(sock.recv(4096)) == 200
        refused = _exchange(port, _get("/.well-known/certsvc/health"), "127.0.0.2")
        other_address = _exchange(port, _get("/.well-known/certsvc/health"), "127.0.0.3")
    finally:
        for sock in held:
            sock.close()
    again = _retry_until_served(port, "127.0.0.2")

    assert _status(refused) == 503
    assert b"too many connections" in refused
    assert b"Retry-After: 1" in refused
    assert _status(other_address) == 200
    assert _status(again) == 200


def _retry_until_served(port: int, source: str) -> bytes:
    """Connect until the responder has noticed closed connections and serves again."""
    deadline = time.monotonic() + 15
    while True:
        answer = _exchange(port, _get("/.well-known/certsvc/health"), source)
        if _status(answer) != 503 or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_global_limit(start_responder) -> None:
    port = start_responder(CERTSVC_RESPONDER_MAX_CONNECTIONS="6",
                           CERTSVC_RESPONDER_MAX_CONNECTIONS_PER_ADDRESS="3")
    held = [_connect(port, f"127.0.0.{10 + number // 3}") for number in range(6)]
    try:
        for sock in held:
            sock.sendall(_get("/.well-known/certsvc/health", close=False))
            assert _status(sock.recv(4096)) == 200
        refused = _exchange(port, _get("/.well-known/certsvc/health"), "127.0.0.20")
    finally:
        for sock in held:
            sock.close()

    assert _status(refused) == 503


def test_limit_rejections_logged(start_responder, processes) -> None:
    port = start_responder(CERTSVC_RESPONDER_MAX_CONNECTIONS_PER_ADDRESS="1")
    with _connect(port, "127.0.0.30") as held:
        held.sendall(_get("/.well-known/certsvc/health", close=False))
        held.recv(4096)
        for _ in range(5):
            _exchange(port, _get("/.well-known/certsvc/health"), "127.0.0.30")

    log = "".join(processes.log_text(name) for name in processes.running
                  if name.startswith("responder-hardening"))
    assert "rejecting connections over the limit address=127.0.0.30" in log


# Paths, reflection, Host headers, pipelining

@pytest.mark.parametrize("path", [
    "/.well-known/acme-challenge/../../etc/passwd",
    "/.well-known/acme-challenge/..%2f..%2fetc%2fpasswd",
    "/.well-known/acme-challenge/%2e%2e/%2e%2e/etc/passwd",
    "/.well-known/acme-challenge/....//....//etc/passwd",
    "/.well-known/certsvc/../acme-challenge/{token}",
    "//.well-known/acme-challenge/{token}",
    "/.well-known/acme-challenge/{token}/",
    "/.well-known/acme-challenge/{token}%00",
    "/.well-known/acme-challenge/{token}/../{token}",
    "/.well-known/acme-challenge/*",
    "/etc/passwd",
])
def test_path_tricks_not_found(quick_port, token, path: str) -> None:
    value, key_authorization = token

    answer = _exchange(quick_port, _get(path.format(token=value)))

    assert _status(answer) == 404
    assert key_authorization.encode() not in answer
    assert b"root:" not in answer


def test_token_served_exactly(quick_port, token) -> None:
    value, key_authorization = token

    answer = _exchange(quick_port, _get(f"/.well-known/acme-challenge/{value}"))

    assert _status(answer) == 200
    assert answer.endswith(b"\r\n\r\n" + key_authorization.encode())


@pytest.mark.parametrize("template", [
    "{marker} / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n",
    "GET /{marker} HTTP/1.1\r\nHost: shop.example.com\r\n\r\n",
    "GET /.well-known/acme-challenge/{marker} HTTP/1.1\r\nHost: shop.example.com\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: {marker}<>\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: shop.example.com\r\n{marker} broken header\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: shop.example.com\r\nX-{marker}: {marker}\r\n\r\n",
    "GET /{marker}" + "a" * 5000 + " HTTP/1.1\r\nHost: shop.example.com\r\n\r\n",
    "GET / HTTP/{marker}\r\nHost: shop.example.com\r\n\r\n",
    "GET /\x01{marker} HTTP/1.1\r\nHost: shop.example.com\r\n\r\n",
])
def test_input_never_reflected(quick_port, template: str) -> None:
    marker = f"zqx{uuid.uuid4().hex[:12]}"

    answer = _exchange(quick_port, template.format(marker=marker).encode())

    assert _status(answer) in (400, 404, 405, 414)
    assert marker.encode() not in answer


@pytest.mark.parametrize(("host_lines", "expected"), [
    ("", 400),
    ("Host: shop.example.com\r\nHost: other.example.com\r\n", 400),
    ("Host: user@shop.example.com\r\n", 400),
    ("Host: shop.example.com:http\r\n", 400),
    ("Host: shop example.com\r\n", 400),
    ("Host: \r\n", 400),
    ("Host: shop.example.com/evil\r\n", 400),
    ("Host: " + "a" * 300 + ".com\r\n", 400),
    ("Host: [::1]:5002\r\n", 404),
    ("Host: [::1\r\n", 400),
    ("Host: SHOP.EXAMPLE.COM.:80\r\n", 200),
    ("HOST:shop.example.com\r\n", 200),
])
def test_odd_host_headers(quick_port, token, host_lines: str, expected: int) -> None:
    value, _ = token
    raw = (f"GET /.well-known/acme-challenge/{value} HTTP/1.1\r\n{host_lines}"
           "Connection: close\r\n\r\n").encode()

    assert _status(_exchange(quick_port, raw)) == expected


@pytest.mark.parametrize("raw", [
    b"GET /.well-known/certsvc/health HTTP/1.1\nHost: shop.example.com\n\n",
    b"GET /.well-known/certsvc/health HTTP/1.1\r\nHost: shop.example.com\n",
    b"GET /.well-known/certsvc/health HTTP/1.1\rHost: shop.example.com\r\n",
    b"GET /.well-known/certsvc/health HTTP/1.1\r\nHost: shop.example.com\r\nX: a\rb\r\n\r\n",
], ids=["lf-only", "lf-after-crlf", "bare-cr", "bare-cr-in-complete-head"])
def test_stray_line_endings_answered_at_once(quick_port, raw: bytes) -> None:
    # The client keeps its sending side open, so a response before the 1 s head
    # timeout (which sends 408) can only be the 400 itself.
    with _connect(quick_port) as sock:
        sock.sendall(raw)
        answer = _read_all(sock)

    assert _status(answer) == 400
    assert b"Connection: close" in answer


def test_head_split_between_cr_and_lf_served(quick_port) -> None:
    with _connect(quick_port) as sock:
        sock.sendall(b"GET /.well-known/certsvc/health HTTP/1.1\r")
        time.sleep(0.1)
        sock.sendall(b"\nHost: shop.example.com\r")
        time.sleep(0.1)
        sock.sendall(b"\nConnection: close\r\n\r\n")
        answer = _read_all(sock)

    assert _status(answer) == 200


def test_empty_lines_before_request_ignored(quick_port) -> None:
    raw = b"\r\n\r\n" + _get("/.well-known/certsvc/health")

    answer = _exchange(quick_port, raw)

    assert _statuses(answer) == [200]


def test_non_ascii_host_rejected(quick_port) -> None:
    raw = "GET / HTTP/1.1\r\nHost: shöp.example.com\r\n\r\n".encode()

    assert _status(_exchange(quick_port, raw)) == 400


def test_http10_without_host_allowed(quick_port) -> None:
    answer = _exchange(quick_port, b"GET /.well-known/certsvc/health HTTP/1.0\r\n\r\n")

    assert _status(answer) == 200
    assert b"Connection: close" in answer


def test_pipelined_requests_in_order(quick_port, token) -> None:
    value, key_authorization = token
    path = f"/.well-known/acme-challenge/{value}"
    raw = (_get(path, close=False)
           + f"HEAD {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
           + _get("/missing", close=False)
           + _get("/.well-known/certsvc/health"))

    answer = _exchange(quick_port, raw)

    assert _statuses(answer) == [200, 200, 404, 200]
    assert answer.count(key_authorization.encode()) == 1
    assert answer.endswith(b"ok\n")


def test_pipelined_garbage_closes(quick_port, token) -> None:
    value, _ = token
    raw = (_get(f"/.well-known/acme-challenge/{value}", close=False)
           + b"\x16\x03\x01\x02\x00garbage\r\n\r\n"
           + _get("/.well-known/certsvc/health"))

    answer = _exchange(quick_port, raw)

    assert _statuses(answer) == [200, 400]
