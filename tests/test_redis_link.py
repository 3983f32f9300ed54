"""The responder's Redis link in this process, against a redis-server of the test's own.

Each test runs its own event loop with asyncio.run and its own link, whose keys
start with a prefix of the test.
"""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as redis_asyncio

from devtools.pebble import free_port
from devtools.private_servers import PrivateRedis
from pki_factory import Pki
from service.responder.redis_link import RedisLink, RedisTarget, RedisUnavailable, _Connection


@pytest.fixture(scope="module")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis-link"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> bytes:
    return f"link-test-{uuid.uuid4().hex[:8]}:".encode()


def _identity(value: bytes | None) -> bytes | None:
    return value


def _link(url: str, *, timeout: float = 2.0) -> RedisLink:
    return RedisLink(RedisTarget.from_url(url), timeout=timeout)


async def _started(link: RedisLink) -> RedisLink:
    link.start()
    await asyncio.wait_for(link.connected.wait(), 5)
    return link


async def _fetch(link: RedisLink, key: bytes) -> object:
    """Return the key's value from Redis through the link."""
    future = asyncio.get_running_loop().create_future()
    link.lookup(key, _identity, future.set_result)
    return await asyncio.wait_for(future, 5)


def test_pipelined_replies_matched(private_redis: PrivateRedis, prefix: bytes) -> None:
    keys = [prefix + b"k%d" % number for number in range(3000)]
    expected = {key: (b"value-of-" + key if number % 3 else None)
                for number, key in enumerate(keys)}
    writer = redis.Redis.from_url(private_redis.url)
    writer.mset({key: value for key, value in expected.items() if value is not None})
    writer.close()
    order = keys * 2
    random.Random(5).shuffle(order)

    async def run() -> list[tuple[bytes, object]]:
        link = await _started(_link(private_redis.url))
        loop = asyncio.get_running_loop()
        results: list[tuple[bytes, object]] = []
        done = loop.create_future()

        def collect(key: bytes):
            def callback(value: object) -> None:
                results.append((key, value))
                if len(results) == len(order) and not done.done():
                    done.set_result(None)
            return callback

        # All lookups start in one pass of the loop, so they share writes to Redis.
        # Lookups of a key whose GET is not sent yet wait for the same reply.
        for key in order:
            link.lookup(key, _identity, collect(key))
        assert len(link.connection.unsent_lookups) == len(keys)
        await asyncio.wait_for(done, 10)
        await link.close()
        return results

    results = asyncio.run(run())

    assert len(results) == len(order)
    wrong = [(key, value) for key, value in results if value != expected[key]]
    assert wrong == []


def test_writes_seen_by_next_lookup(private_redis: PrivateRedis, prefix: bytes) -> None:
    created, deleted, rewritten = prefix + b"created", prefix + b"deleted", prefix + b"rewritten"
    writer = redis.Redis.from_url(private_redis.url)
    writer.set(deleted, b"old", ex=60)
    writer.set(rewritten, b"old", ex=60)

    async def run() -> list[object]:
        link = await _started(_link(private_redis.url))
        seen = [await _fetch(link, created), await _fetch(link, deleted),
                await _fetch(link, rewritten)]
        writer.set(created, b"new", ex=60)
        writer.delete(deleted)
        writer.set(rewritten, b"new", ex=60)
        seen += [await _fetch(link, created), await _fetch(link, deleted),
                 await _fetch(link, rewritten)]
        await link.close()
        return seen

    seen = asyncio.run(run())
    writer.close()

    assert seen == [None, b"old", b"old", b"new", None, b"new"]


def test_killed_connection_reconnects(private_redis: PrivateRedis, prefix: bytes) -> None:
    key = prefix + b"kept"
    admin = redis.Redis.from_url(private_redis.url)
    admin.set(key, b"value", ex=60)

    async def run() -> tuple[object, object]:
        link = await _started(_link(private_redis.url))
        loop = asyncio.get_running_loop()
        await _fetch(link, key)
        pending = loop.create_future()
        link.lookup(prefix + b"never-answered", _identity, pending.set_result)
        # Kill the connection before the lookup is written to it.
        admin.client_kill_filter(_type="normal", skipme=True)
        failed = await asyncio.wait_for(pending, 5)
        await asyncio.wait_for(link.connected.wait(), 5)
        again = await _fetch(link, key)
        await link.close()
        return failed, again

    failed, again = asyncio.run(run())
    admin.close()

    assert isinstance(failed, RedisUnavailable)
    assert again == b"value"


def test_no_server_fails_fast(tmp_path: Path, prefix: bytes) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"

    async def run() -> tuple[object, bool]:
        link = _link(url, timeout=0.5)
        link.start()
        loop = asyncio.get_running_loop()
        first = loop.create_future()
        # Made while the first attempt is under way: waits for it, then fails.
        link.lookup(prefix + b"a", _identity, first.set_result)
        result = await asyncio.wait_for(first, 5)
        try:
            link.lookup(prefix + b"b", _identity, lambda value: None)
            raised = False
        except RedisUnavailable:
            raised = True
        await link.close()
        return result, raised

    result, raised = asyncio.run(run())

    assert isinstance(result, RedisUnavailable)
    assert raised


async def _socketpair_connection() -> tuple[RedisLink, _Connection, socket.socket]:
    """Return a link whose connection talks to the returned socket, as a server."""
    link = _link("redis://127.0.0.1:1/0")
    ours, server = socket.socketpair()
    ours.setblocking(False)
    connection = _Connection(link, ours)
    link.connection = connection
    return link, connection, server


def test_lookup_never_joins_sent_get(prefix: bytes) -> None:
    """A lookup made after a GET of its key was sent gets a GET of its own, so its reply
    reflects writes made since. Lookups in one pass before the send share one GET."""
    key = prefix + b"racing"

    async def run() -> tuple[list[object], bytes, bytes]:
        _, connection, server = await _socketpair_connection()
        results: list[object] = []
        connection.lookup(key, _identity, lambda value: results.append(("first", value)))
        connection.lookup(key, _identity, lambda value: results.append(("joined", value)))
        connection.flush()
        first_commands = server.recv(65536)
        connection.lookup(key, _identity, lambda value: results.append(("later", value)))
        connection.flush()
        later_commands = server.recv(65536)
        server.sendall(b"$3\r\nold\r\n$3\r\nnew\r\n")
        deadline = time.monotonic() + 5
        while len(results) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        connection.close(None)
        server.close()
        return results, first_commands, later_commands

    results, first_commands, later_commands = asyncio.run(run())

    assert first_commands.count(b"GET") == 1
    assert later_commands.count(b"GET") == 1
    assert results == [("first", b"old"), ("joined", b"old"), ("later", b"new")]


def test_push_messages_ignored(prefix: bytes) -> None:
    """A RESP3 push between replies does not shift the matching of replies."""
    first, second = prefix + b"first", prefix + b"second"

    async def run() -> dict[bytes, object]:
        _, connection, server = await _socketpair_connection()
        results: dict[bytes, object] = {}
        connection.lookup(first, _identity, lambda value: results.__setitem__(first, value))
        connection.lookup(second, _identity, lambda value: results.__setitem__(second, value))
        connection.flush()
        connection.data_received(b"$3\r\none\r\n>2\r\n$7\r\nmessage\r\n$1\r\nx\r\n"
                                 b"$3\r\ntwo\r\n")
        connection.close(None)
        server.close()
        return results

    results = asyncio.run(run())

    assert results == {first: b"one", second: b"two"}


@pytest.fixture
def extra_redis(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start redis-servers with extra arguments, stopped when the test ends."""
    started: list[subprocess.Popen] = []

    def start(*arguments: str) -> subprocess.Popen:
        process = subprocess.Popen(
            ["redis-server", "--port", "0", "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp_path), *arguments],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        started.append(process)
        return process

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def _wait_until_ready(client: redis.Redis) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _round_trip(url: str, writer: redis.Redis, prefix: bytes) -> tuple[object, object]:
    """Write a key, look it up through a link to url, delete it and look it up again."""
    key = prefix + b"over-" + uuid.uuid4().hex.encode()
    writer.set(key, b"value", ex=60)

    async def run() -> tuple[object, object]:
        link = await _started(_link(url))
        first = await _fetch(link, key)
        writer.delete(key)
        second = await _fetch(link, key)
        await link.close()
        return first, second

    return asyncio.run(run())


def test_link_over_unix_socket(extra_redis, tmp_path: Path, prefix: bytes) -> None:
    path = tmp_path / "redis.sock"
    extra_redis("--unixsocket", str(path))
    writer = redis.Redis(unix_socket_path=str(path))
    _wait_until_ready(writer)

    first, second = _round_trip(f"unix://{path}?db=0", writer, prefix)
    writer.close()

    assert first == b"value"
    assert second is None


def test_link_over_tls(extra_redis, tmp_path: Path, prefix: bytes) -> None:
    pki = Pki.create("redis-link-tls")
    leaf = pki.leaf(["localhost"])
    (tmp_path / "chain.pem").write_text(pki.chain_pem(leaf))
    (tmp_path / "key.pem").write_text(leaf.key_pem())
    (tmp_path / "root.pem").write_text(pki.root.pem())
    port = free_port()
    extra_redis("--tls-port", str(port), "--tls-cert-file", str(tmp_path / "chain.pem"),
                "--tls-key-file", str(tmp_path / "key.pem"),
                "--tls-ca-cert-file", str(tmp_path / "root.pem"), "--tls-auth-clients", "no")
    writer = redis.Redis(host="localhost", port=port, ssl=True,
                         ssl_ca_certs=str(tmp_path / "root.pem"))
    _wait_until_ready(writer)

    first, second = _round_trip(f"rediss://localhost:{port}/0?ssl_ca_certs={tmp_path}/root.pem",
                                writer, prefix)
    writer.close()

    assert first == b"value"
    assert second is None
