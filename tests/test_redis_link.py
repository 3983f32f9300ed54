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
from service.responder.redis_link import RedisLink, RedisTarget, RedisUnavailable, TrackedCache

NOT_CACHED = object()


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


def _link(url: str, prefix: bytes, *, timeout: float = 2.0, max_entries: int = 10_000) -> RedisLink:
    return RedisLink(RedisTarget.from_url(url), [prefix], timeout=timeout,
                     cache=TrackedCache(max_entries, 1024))


async def _started(link: RedisLink) -> RedisLink:
    link.start()
    await asyncio.wait_for(link.connected.wait(), 5)
    return link


async def _fetch(link: RedisLink, key: bytes) -> object:
    """Return the key's value from the cache, or from Redis through the link."""
    loop = asyncio.get_running_loop()
    cached = link.cached(key, loop.time(), NOT_CACHED)
    if cached is not NOT_CACHED:
        return cached
    future = loop.create_future()
    link.lookup(key, _identity, future.set_result)
    return await asyncio.wait_for(future, 5)


async def _sync(link: RedisLink, prefix: bytes) -> None:
    """Wait for a reply sent after every write made so far: the invalidations of those
    writes arrive before it on the link's connection."""
    key = prefix + b"sync-" + uuid.uuid4().hex.encode()
    await _fetch(link, key)
    link.cache.invalidate([key])


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
        link = await _started(_link(private_redis.url, prefix))
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
        # Lookups of a key already in flight wait for the same reply.
        for key in order:
            link.lookup(key, _identity, collect(key))
        assert len(link.connection.in_flight) == len(keys)
        await asyncio.wait_for(done, 10)
        await link.close()
        return results

    results = asyncio.run(run())

    assert len(results) == len(order)
    wrong = [(key, value) for key, value in results if value != expected[key]]
    assert wrong == []


def test_missing_key_cached_until_written(private_redis: PrivateRedis, prefix: bytes) -> None:
    key = prefix + b"token"
    writer = redis.Redis.from_url(private_redis.url)

    async def run() -> tuple[object, object, object, object]:
        link = await _started(_link(private_redis.url, prefix))
        loop = asyncio.get_running_loop()
        before = await _fetch(link, key)
        cached_before = link.cached(key, loop.time(), NOT_CACHED)
        writer.set(key, b"written", ex=60)
        await _sync(link, prefix)
        cached_after = link.cached(key, loop.time(), NOT_CACHED)
        after = await _fetch(link, key)
        await link.close()
        return before, cached_before, cached_after, after

    before, cached_before, cached_after, after = asyncio.run(run())
    writer.close()

    assert before is None
    assert cached_before is None
    assert cached_after is NOT_CACHED
    assert after == b"written"


def test_deleted_and_rewritten_keys_dropped(private_redis: PrivateRedis, prefix: bytes) -> None:
    deleted, rewritten = prefix + b"deleted", prefix + b"rewritten"
    writer = redis.Redis.from_url(private_redis.url)
    writer.set(deleted, b"old", ex=60)
    writer.set(rewritten, b"old", ex=60)

    async def run() -> list[object]:
        link = await _started(_link(private_redis.url, prefix))
        seen = [await _fetch(link, deleted), await _fetch(link, rewritten)]
        writer.delete(deleted)
        writer.set(rewritten, b"new", ex=60)
        await _sync(link, prefix)
        seen += [await _fetch(link, deleted), await _fetch(link, rewritten)]
        await link.close()
        return seen

    seen = asyncio.run(run())
    writer.close()

    assert seen == [b"old", b"old", None, b"new"]


def test_expired_entry_not_served(private_redis: PrivateRedis, prefix: bytes) -> None:
    key = prefix + b"short-lived"
    writer = redis.Redis.from_url(private_redis.url)
    writer.set(key, b"value", px=300)
    writer.close()

    async def run() -> tuple[object, object]:
        link = await _started(_link(private_redis.url, prefix))
        loop = asyncio.get_running_loop()
        await _fetch(link, key)
        fresh = link.cached(key, loop.time(), NOT_CACHED)
        # Past the TTL the entry is stale even if Redis has not yet deleted the key
        # (and sent its invalidation).
        later = link.cached(key, loop.time() + 0.31, NOT_CACHED)
        await link.close()
        return fresh, later

    fresh, later = asyncio.run(run())

    assert fresh == b"value"
    assert later is NOT_CACHED


def test_cache_matches_redis_under_writes(private_redis: PrivateRedis, prefix: bytes) -> None:
    """Writers change keys while the link reads and caches them; once the writes
    stop and their invalidations are read, every cached value equals Redis's."""
    keys = [prefix + b"busy-%d" % number for number in range(40)]

    async def run() -> tuple[dict[bytes, object], dict[bytes, bytes | None], int]:
        link = await _started(_link(private_redis.url, prefix))
        loop = asyncio.get_running_loop()
        writer = redis_asyncio.Redis.from_url(private_redis.url)
        stop = loop.time() + 2.0
        lookups = 0

        async def write() -> None:
            generator = random.Random(7)
            while loop.time() < stop:
                key = generator.choice(keys)
                if generator.random() < 0.3:
                    await writer.delete(key)
                else:
                    await writer.set(key, b"%d" % generator.randrange(10**9), ex=60)

        async def read() -> None:
            nonlocal lookups
            generator = random.Random(11)
            while loop.time() < stop:
                await asyncio.gather(*(_fetch(link, generator.choice(keys)) for _ in range(20)))
                lookups += 20

        await asyncio.gather(write(), write(), read(), read())
        await _sync(link, prefix)
        cached = {key: link.cached(key, loop.time(), NOT_CACHED) for key in keys}
        actual = dict(zip(keys, await writer.mget(keys)))
        await writer.aclose()
        await link.close()
        return cached, actual, lookups

    cached, actual, lookups = asyncio.run(run())

    assert lookups > 1000
    stale = {key: (value, actual[key]) for key, value in cached.items()
             if value is not NOT_CACHED and value != actual[key]}
    assert stale == {}
    assert any(value is not NOT_CACHED for value in cached.values())


def test_killed_connection_reconnects(private_redis: PrivateRedis, prefix: bytes) -> None:
    key = prefix + b"kept"
    admin = redis.Redis.from_url(private_redis.url)
    admin.set(key, b"value", ex=60)

    async def run() -> tuple[object, int, object]:
        link = await _started(_link(private_redis.url, prefix))
        loop = asyncio.get_running_loop()
        await _fetch(link, key)
        pending = loop.create_future()
        link.lookup(prefix + b"never-answered", _identity, pending.set_result)
        # Kill the connection before the lookup is written to it.
        admin.client_kill_filter(_type="normal", skipme=True)
        failed = await asyncio.wait_for(pending, 5)
        entries_after_loss = len(link.cache.entries)
        await asyncio.wait_for(link.connected.wait(), 5)
        again = await _fetch(link, key)
        await link.close()
        return failed, entries_after_loss, again

    failed, entries_after_loss, again = asyncio.run(run())
    admin.close()

    assert isinstance(failed, RedisUnavailable)
    assert entries_after_loss == 0
    assert again == b"value"


def test_no_server_fails_fast(tmp_path: Path, prefix: bytes) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"

    async def run() -> tuple[object, bool]:
        link = _link(url, prefix, timeout=0.5)
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


def test_invalidated_in_flight_not_cached(prefix: bytes) -> None:
    """An invalidation read between a lookup's GET and PTTL replies keeps its value out
    of the cache, but the waiting request still gets the value."""
    from service.responder.redis_link import _Connection

    key = prefix + b"racing"

    async def run() -> tuple[list[object], object, bytes]:
        link = _link("redis://127.0.0.1:1/0", prefix)
        ours, server = socket.socketpair()
        ours.setblocking(False)
        connection = _Connection(link, ours)
        link.connection = connection
        connection.caching = True
        results: list[object] = []
        connection.lookup(key, _identity, results.append)
        connection.flush()
        invalidation = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$%d\r\n%b\r\n" % (len(key), key)
        server.sendall(b"$3\r\nold\r\n" + invalidation + b":60000\r\n")
        link.read_pending()
        commands = server.recv(65536)
        connection.close(None)
        server.close()
        return results, link.cached(key, 0.0, NOT_CACHED), commands

    results, cached, commands = asyncio.run(run())

    assert commands.count(b"GET") == 1
    assert commands.count(b"PTTL") == 1
    assert results == [b"old"]
    assert cached is NOT_CACHED


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
        link = await _started(_link(url, prefix))
        first = await _fetch(link, key)
        writer.delete(key)
        await _sync(link, prefix)
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


def test_callback_reading_more_replies(prefix: bytes) -> None:
    """A lookup's callback that responds from the cache reads the replies that have
    arrived meanwhile; each lookup still gets its own value."""
    from service.responder.redis_link import _Connection

    first, second = prefix + b"first", prefix + b"second"

    async def run() -> dict[bytes, object]:
        link = _link("redis://127.0.0.1:1/0", prefix)
        ours, server = socket.socketpair()
        ours.setblocking(False)
        connection = _Connection(link, ours)
        link.connection = connection
        connection.caching = True
        results: dict[bytes, object] = {}

        def on_first(value: object) -> None:
            results[first] = value
            # What a response from the cache does first: read what has arrived.
            link.cached(prefix + b"other", 0.0, NOT_CACHED)

        connection.lookup(first, _identity, on_first)
        connection.lookup(second, _identity, lambda value: results.__setitem__(second, value))
        connection.flush()
        server.sendall(b"$3\r\ntwo\r\n:-1\r\n")
        connection.data_received(b"$3\r\none\r\n:-1\r\n")
        connection.close(None)
        server.close()
        return results

    results = asyncio.run(run())

    assert results == {first: b"one", second: b"two"}


def test_tracking_denied_serves_uncached(private_redis: PrivateRedis, prefix: bytes) -> None:
    """A user whose ACL forbids CLIENT TRACKING still gets values, read every time."""
    admin = redis.Redis.from_url(private_redis.url)
    user = f"no-tracking-{uuid.uuid4().hex[:8]}"
    admin.execute_command("ACL", "SETUSER", user, "on", ">secret", "~*", "+@all", "-client")
    key = prefix + b"uncached"
    admin.set(key, b"first", ex=60)
    url = f"redis://{user}:secret@127.0.0.1:{private_redis.port}/0"

    async def run() -> tuple[bool, object, object, int]:
        link = await _started(_link(url, prefix))
        first = await _fetch(link, key)
        admin.set(key, b"second", ex=60)
        second = await _fetch(link, key)
        caching = link.connection.caching
        entries = len(link.cache.entries)
        await link.close()
        return caching, first, second, entries

    caching, first, second, entries = asyncio.run(run())
    admin.execute_command("ACL", "DELUSER", user)
    admin.close()

    assert caching is False
    assert first == b"first"
    assert second == b"second"
    assert entries == 0
