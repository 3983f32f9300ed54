"""Fresh responses from the responder over real HTTP, right after writes, under
concurrency and across Redis outages, with a redis-server of the test's own that the
tests may stop, freeze and restart. Requests go out on kept-alive connections.
"""

from __future__ import annotations

import concurrent.futures
import secrets
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

import leak_scan

from devtools import stack
from devtools.pebble import free_port
from devtools.private_servers import PrivateRedis
from service.redis_keys import RedisKeys, http01_value

HOST = "fresh.example.com"


class KeptAliveClient:
    """One HTTP/1.1 connection that sends requests one at a time."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.pending = b""

    def get_token(self, token: str, host: str = HOST) -> tuple[int, dict[str, str], bytes]:
        self.sock.sendall(f"GET /.well-known/acme-challenge/{token} HTTP/1.1\r\n"
                          f"Host: {host}\r\n\r\n".encode())
        while b"\r\n\r\n" not in self.pending:
            self._receive()
        head, _, self.pending = self.pending.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers["content-length"])
        while len(self.pending) < length:
            self._receive()
        body, self.pending = self.pending[:length], self.pending[length:]
        return int(lines[0].split()[1]), headers, body

    def _receive(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the responder closed the connection")
        self.pending += chunk

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def responder_on(processes: stack.Processes) -> Iterator[Callable[[PrivateRedis], int]]:
    """Start a responder that reads the given private Redis and return its port."""
    started = []

    def start(server: PrivateRedis) -> int:
        port = free_port()
        name = f"responder-fresh-{port}"
        process = processes.start(name, "responder", extra_env={
            "CERTSVC_REDIS_URL": server.url, "CERTSVC_RESPONDER_ADDRESS": f"127.0.0.1:{port}"})
        stack.wait_for_port("127.0.0.1", port, process=process)
        started.append(name)
        return port

    yield start
    for name in started:
        processes.stop(name)


def _publish(client: redis.Redis, keys: RedisKeys, token: str | None = None,
             host: str = HOST) -> tuple[str, str]:
    token = token or secrets.token_urlsafe(32)
    key_authorization = f"{token}.{secrets.token_urlsafe(32)}"
    leak_scan.watch("key authorization published by the responder freshness tests",
                    key_authorization)
    client.set(keys.http01(token), http01_value(host, key_authorization), ex=600)
    return token, key_authorization


def _wait_for_status(client_factory: Callable[[], KeptAliveClient], token: str, status: int,
                     timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Request token on fresh connections until the response has status, and return it."""
    deadline = time.monotonic() + timeout
    while True:
        client = client_factory()
        try:
            answer = client.get_token(token)
        except (ConnectionError, OSError):
            answer = (0, {}, b"")
        finally:
            client.close()
        if answer[0] == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_token_written_after_404_served(private_redis, responder_on, redis_prefix) -> None:
    port = responder_on(private_redis)
    keys = RedisKeys(redis_prefix)
    writer = redis.Redis.from_url(private_redis.url)
    client = KeptAliveClient(port)
    answers = []
    for _ in range(50):
        token = secrets.token_urlsafe(32)
        before = client.get_token(token)[0]
        again = client.get_token(token)[0]
        _, key_authorization = _publish(writer, keys, token)
        status, _, body = client.get_token(token)
        answers.append((before, again, status, body == key_authorization.encode()))
    client.close()
    writer.close()

    assert answers == [(404, 404, 200, True)] * 50


def test_deleted_token_no_longer_served(private_redis, responder_on, redis_prefix) -> None:
    port = responder_on(private_redis)
    keys = RedisKeys(redis_prefix)
    writer = redis.Redis.from_url(private_redis.url)
    client = KeptAliveClient(port)
    answers = []
    for _ in range(50):
        token, _ = _publish(writer, keys)
        served = [client.get_token(token)[0], client.get_token(token)[0]]
        writer.delete(keys.http01(token))
        answers.append((*served, client.get_token(token)[0]))
    client.close()
    writer.close()

    assert answers == [(200, 200, 404)] * 50, answers


def test_rewritten_token_serves_new_value(private_redis, responder_on, redis_prefix) -> None:
    port = responder_on(private_redis)
    keys = RedisKeys(redis_prefix)
    writer = redis.Redis.from_url(private_redis.url)
    client = KeptAliveClient(port)
    token, first = _publish(writer, keys)
    first_body = client.get_token(token)[2]
    _, second = _publish(writer, keys, token, host="moved.example.com")
    old_host_status = client.get_token(token)[0]
    new_host_status, _, new_host_body = client.get_token(token, host="moved.example.com")
    client.close()
    writer.close()

    assert first_body == first.encode()
    assert old_host_status == 404
    assert new_host_status == 200
    assert new_host_body == second.encode()


def test_concurrent_clients_get_own_tokens(private_redis, responder_on, redis_prefix) -> None:
    port = responder_on(private_redis)
    keys = RedisKeys(redis_prefix)
    writer = redis.Redis.from_url(private_redis.url)
    expected: dict[str, str | None] = {}
    for number in range(2000):
        if number % 4 == 0:
            expected[secrets.token_urlsafe(32)] = None
        else:
            token, key_authorization = _publish(writer, keys)
            expected[token] = key_authorization
    writer.close()
    tokens = list(expected)
    shares = [tokens[start::40] for start in range(40)]

    def fetch(share: list[str]) -> list[str]:
        wrong = []
        client = KeptAliveClient(port)
        for token in share:
            status, _, body = client.get_token(token)
            key_authorization = expected[token]
            if key_authorization is None and status != 404:
                wrong.append(f"{token}: {status} for an unknown token")
            elif key_authorization is not None and (status, body) != (
                    200, key_authorization.encode()):
                wrong.append(f"{token}: {status} {body[:20]!r}")
        client.close()
        return wrong

    # 40 connections wait for pipelined Redis replies at the same time.
    with concurrent.futures.ThreadPoolExecutor(len(shares)) as pool:
        wrong = [line for found in pool.map(fetch, shares) for line in found]

    assert wrong == []


def test_redis_restart_503_then_recovers(private_redis, responder_on, redis_prefix) -> None:
    port = responder_on(private_redis)
    keys = RedisKeys(redis_prefix)
    writer = redis.Redis.from_url(private_redis.url)
    token, key_authorization = _publish(writer, keys)
    writer.close()
    client = KeptAliveClient(port)
    before = client.get_token(token)[:3:2]
    client.close()

    private_redis.stop()
    down_status, down_headers, _ = _wait_for_status(lambda: KeptAliveClient(port), token, 503)
    private_redis.start()  # empty: the restart lost every key
    after_restart = _wait_for_status(lambda: KeptAliveClient(port), token, 404)[0]
    writer = redis.Redis.from_url(private_redis.url)
    _publish(writer, keys, token)
    writer.close()
    client = KeptAliveClient(port)
    republished = client.get_token(token)[0]
    client.close()

    assert before == (200, key_authorization.encode())
    assert down_status == 503
    assert down_headers["retry-after"] == "1"
    assert down_headers["connection"] == "close"
    # A value kept from before the restart would have given 200.
    assert after_restart == 404
    assert republished == 200


def test_frozen_redis_503_then_recovers(private_redis, responder_on, redis_prefix) -> None:
    port = responder_on(private_redis)
    keys = RedisKeys(redis_prefix)
    writer = redis.Redis.from_url(private_redis.url)
    token, key_authorization = _publish(writer, keys)
    writer.close()
    assert private_redis.process is not None

    private_redis.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        client = KeptAliveClient(port)
        frozen_status = client.get_token(token)[0]
        waited = time.monotonic() - started
        client.close()
    finally:
        private_redis.process.send_signal(signal.SIGCONT)
    recovered = _wait_for_status(lambda: KeptAliveClient(port), token, 200)

    assert frozen_status == 503
    assert waited < 6
    assert recovered[0] == 200
    assert recovered[2] == key_authorization.encode()


def test_acknowledged_writes_seen_under_load(private_redis, responder_on, redis_prefix) -> None:
    """32 clients each write, overwrite and delete their own tokens and request them
    right after Redis acknowledges each write: every answer matches the write."""
    port = responder_on(private_redis)
    keys = RedisKeys(redis_prefix)

    def cycle(rounds: int) -> list[str]:
        wrong = []
        writer = redis.Redis.from_url(private_redis.url)
        client = KeptAliveClient(port)
        for _ in range(rounds):
            token = secrets.token_urlsafe(32)
            if client.get_token(token)[0] != 404:
                wrong.append(f"{token}: not 404 before the write")
            _, key_authorization = _publish(writer, keys, token)
            status, _, body = client.get_token(token)
            if (status, body) != (200, key_authorization.encode()):
                wrong.append(f"{token}: {status} right after the write")
            writer.delete(keys.http01(token))
            if client.get_token(token)[0] != 404:
                wrong.append(f"{token}: served right after the delete")
        client.close()
        writer.close()
        return wrong

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        wrong = [line for found in pool.map(cycle, [40] * 32) for line in found]

    assert wrong == []
