"""The responder's connection to Redis: pipelined lookups.

One connection per responder process carries the GETs of all its HTTP requests.
Lookups made during one pass of the event loop go out in one write, and the replies
are matched to them in order (Redis replies to the commands of a connection in the
order it received them). A lookup ends in a callback; no Task is created per request.

Every response is built from a GET sent after its request arrived, so a token
whose write Redis has acknowledged is served at once, and a deleted one is not
served again. Requests for the same key in one pass share a GET that is not sent
yet. A request never joins a GET already sent, because that reply may predate a write.
Values are not cached in the process: a cache kept fresh by CLIENT TRACKING
invalidations cannot promise this, because the invalidation and the writer's
acknowledgement travel on different connections (under load, stale answers were
measured right after acknowledged writes).

When the connection is lost, pending lookups fail, and the link reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import math
import socket
import ssl
import time
from collections.abc import Callable

from redis.connection import SSLConnection, parse_url

from service.responder.resp import (
    INCOMPLETE,
    ProtocolError,
    Push,
    ReplyError,
    encode_command,
    parse_reply,
)

logger = logging.getLogger(__name__)

# Reconnection backoff after a failed attempt, doubled per failure up to the maximum.
RECONNECT_FIRST_DELAY_SECONDS = 0.1
RECONNECT_MAX_DELAY_SECONDS = 2.0
FAILURE_LOG_INTERVAL_SECONDS = 10.0
RECEIVE_BYTES = 262144
CLIENT_NAME = "certsvc-responder"


async def _ready(add: Callable, remove: Callable, fd: int) -> None:
    """Wait until fd is readable (add=loop.add_reader) or writable (loop.add_writer)."""
    future = asyncio.get_running_loop().create_future()
    add(fd, lambda: future.done() or future.set_result(None))
    try:
        await future
    finally:
        remove(fd)


class RedisUnavailable(Exception):
    """A lookup failed: no connection to Redis, a lost connection or an error reply."""


@dataclasses.dataclass(frozen=True)
class RedisTarget:
    """Connection parameters from a redis://, rediss:// or unix:// URL."""

    host: str | None
    port: int
    path: str | None
    """The Unix socket path of a unix:// URL."""
    tls: bool
    db: int
    username: str | None
    password: str | None
    tls_ca_file: str | None = None
    """The ssl_ca_certs query parameter: PEM roots to trust in place of the system's."""
    tls_verify: bool = True
    """False when the ssl_cert_reqs query parameter is "none"."""
    tls_check_hostname: bool = True

    @classmethod
    def from_url(cls, url: str) -> RedisTarget:
        """Parse url with redis-py's rules, so the responder reads CERTSVC_REDIS_URL as
        the other processes do."""
        options = parse_url(url)
        connection_class = options.get("connection_class")
        verify = str(options.get("ssl_cert_reqs", "required")).lower() != "none"
        return cls(host=options.get("host", "localhost"), port=int(options.get("port", 6379)),
                   path=options.get("path"), tls=connection_class is SSLConnection,
                   db=int(options.get("db", 0)), username=options.get("username"),
                   password=options.get("password"), tls_ca_file=options.get("ssl_ca_certs"),
                   tls_verify=verify,
                   tls_check_hostname=verify and options.get("ssl_check_hostname", True))

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.tls_ca_file)
        context.check_hostname = self.tls_check_hostname
        if not self.tls_verify:
            context.verify_mode = ssl.CERT_NONE
        return context

    def describe(self) -> str:
        """Return the address for log lines, without credentials."""
        if self.path is not None:
            return f"unix:{self.path}"
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/{self.db}"


class _Lookup:
    """A GET of one key in flight, and the callbacks waiting for its value."""

    __slots__ = (
        "callbacks",
        "connection",
        "decode",
        "done",
        "key",
        "result",
    )

    def __init__(self, connection: _Connection, key: bytes,
                 decode: Callable[[bytes | None], object],
                 callback: Callable[[object], None]) -> None:
        self.connection = connection
        self.key = key
        self.decode = decode
        self.callbacks = [callback]
        self.done = False
        self.result: object = None
        """The decoded value or a RedisUnavailable, set when the reply arrives."""

    def reply(self, reply: object) -> None:
        self.connection.finish_lookup(self, reply)
        self.connection.finished.append(self)

    def fail(self, error: RedisUnavailable) -> None:
        if not self.done:
            self.done = True
            self.connection.link.notify(self.callbacks, error)


class _CommandReply:
    """The reply of one command sent while connecting, delivered to a future."""

    __slots__ = ("future",)

    def __init__(self, future: asyncio.Future) -> None:
        self.future = future

    def reply(self, reply: object) -> None:
        if not self.future.done():
            self.future.set_result(reply)

    def fail(self, error: RedisUnavailable) -> None:
        if not self.future.done():
            self.future.set_exception(error)


class _Connection:
    """One connection to Redis over a non-blocking socket: commands written in
    batches, replies matched in order.

    It reads and writes the socket directly from loop callbacks, without an asyncio
    transport or a Task per command.
    """

    def __init__(self, link: RedisLink, sock: socket.socket) -> None:
        self.link = link
        self.loop = asyncio.get_running_loop()
        self.sock = sock
        self.fd = sock.fileno()
        self.open = True
        self.input = bytearray()
        self.output = bytearray()
        """Commands of this pass of the event loop, written together by flush()."""
        self.flush_scheduled = False
        self.unsent = bytearray()
        """Bytes the socket did not accept yet, sent when it is writable again."""
        self.expected: collections.deque[_Lookup | _CommandReply] = collections.deque()
        self.unsent_lookups: dict[bytes, _Lookup] = {}
        """Lookups in output, not written yet, by key: later requests of the pass join them."""
        self.finished: list[_Lookup] = []
        """Lookups whose replies data_received has parsed, notified once it has parsed
        everything it read, so that no callback runs on a half-parsed buffer."""
        self.replies = 0
        self.closed = self.loop.create_future()
        self.lost_error: RedisUnavailable | None = None
        self.loop.add_reader(self.fd, self.read)

    # Reading

    def read(self) -> None:
        while self.open:
            try:
                data = self.sock.recv(RECEIVE_BYTES)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError,
                    ssl.SSLWantWriteError):
                return
            except OSError as error:
                self.close(error)
                return
            if not data:
                self.close(None)
                return
            self.data_received(data)
            if len(data) < RECEIVE_BYTES:
                return

    def data_received(self, data: bytes) -> None:
        buffer = self.input
        buffer += data
        position = 0
        try:
            while position < len(buffer):
                reply, position_after = parse_reply(buffer, position)
                if reply is INCOMPLETE:
                    break
                position = position_after
                if type(reply) is Push:
                    continue  # no command of the link subscribes to pushes
                self.replies += 1
                self.expected.popleft().reply(reply)
        except (ProtocolError, ValueError, IndexError) as error:
            # IndexError: a reply that no command asked for.
            logger.error("invalid data from Redis, closing the connection: %s", error)
            self.close(error)
            return
        del buffer[:position]
        finished, self.finished = self.finished, []
        for lookup in finished:
            self.link.notify(lookup.callbacks, lookup.result)

    def close(self, error: BaseException | None) -> None:
        """Close the socket, fail every pending command and tell the link."""
        if not self.open:
            return
        self.open = False
        self.loop.remove_reader(self.fd)
        if self.unsent:
            self.loop.remove_writer(self.fd)
        self.sock.close()
        lost = RedisUnavailable(f"connection to Redis lost: {error or 'closed by the server'}")
        self.lost_error = lost
        self.link.connection_lost(self)
        finished, self.finished = self.finished, []
        for lookup in finished:
            self.link.notify(lookup.callbacks, lookup.result)
        expected, self.expected = self.expected, collections.deque()
        self.unsent_lookups.clear()
        for entry in expected:
            entry.fail(lost)
        if not self.closed.done():
            self.closed.set_result(None)

    # Commands

    def command(self, *arguments: bytes | str | int) -> asyncio.Future:
        """Send one command now and return a future of its reply (a ReplyError on error)."""
        future = self.loop.create_future()
        self.expected.append(_CommandReply(future))
        self.write(encode_command(*arguments))
        return future

    def lookup(self, key: bytes, decode: Callable[[bytes | None], object],
               callback: Callable[[object], None]) -> None:
        waiting = self.unsent_lookups.get(key)
        if waiting is not None:
            waiting.callbacks.append(callback)
            return
        lookup = _Lookup(self, key, decode, callback)
        self.unsent_lookups[key] = lookup
        self.expected.append(lookup)
        self.output += b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n" % (len(key), key)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def finish_lookup(self, lookup: _Lookup, reply: object) -> None:
        lookup.done = True
        if isinstance(reply, ReplyError):
            logger.warning("redis lookup failed key=%r: %s", lookup.key[:100], reply.message)
            lookup.result = RedisUnavailable(reply.message)
            return
        try:
            lookup.result = lookup.decode(reply)  # type: ignore[arg-type]
        except Exception as error:  # a bad value must not break the connection
            logger.exception("cannot decode the value of key=%r", lookup.key[:100])
            lookup.result = RedisUnavailable(f"cannot decode a value: {error}")

    def write(self, data: bytes) -> None:
        # Lookups already in output go first, so that replies stay in order.
        if self.output:
            self.flush()
        self._send(data)

    def flush(self) -> None:
        self.flush_scheduled = False
        self.unsent_lookups.clear()
        if self.output:
            data = bytes(self.output)
            self.output.clear()
            self._send(data)

    def _send(self, data: bytes) -> None:
        if not self.open:
            return
        if self.unsent:
            self.unsent += data
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            sent = 0
        except OSError as error:
            self.close(error)
            return
        if sent < len(data):
            self.unsent += data[sent:]
            self.loop.add_writer(self.fd, self._send_unsent)

    def _send_unsent(self) -> None:
        try:
            sent = self.sock.send(self.unsent)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        except OSError as error:
            self.close(error)
            return
        del self.unsent[:sent]
        if not self.unsent:
            self.loop.remove_writer(self.fd)

    def abort(self) -> None:
        self.close(ConnectionAbortedError("closed by the responder"))


class RedisLink:
    """Lookups of Redis keys for one responder process.

    lookup() sends a GET and calls back later with the decoded value or a
    RedisUnavailable. Requests that share a GET share its decoded value, so each key
    must always be looked up with the same decode function.
    """

    def __init__(self, target: RedisTarget, *, timeout: float) -> None:
        self.target = target
        self.timeout = timeout
        self.connection: _Connection | None = None
        """The connection lookups go to, once it is ready (handshake done)."""
        self.connecting = True
        """Whether a connection attempt is under way: lookups then wait for it."""
        self.queued: list[tuple[bytes, Callable[[bytes | None], object],
                                Callable[[object], None]]] = []
        """Lookups made while connecting, sent once the connection is ready."""
        self.maintainer: asyncio.Task | None = None
        self.closing = False
        self.connected = asyncio.Event()
        self._failures = 0
        self._last_failure_log = -math.inf

    def start(self) -> None:
        """Start connecting in the background, and reconnecting whenever the connection ends."""
        self.maintainer = asyncio.get_running_loop().create_task(self._maintain())

    async def close(self) -> None:
        self.closing = True
        if self.maintainer is not None:
            self.maintainer.cancel()
            try:
                await self.maintainer
            except asyncio.CancelledError:
                pass
        if self.connection is not None:
            self.connection.abort()
        self._fail_queued(RedisUnavailable("the responder is stopping"))

    def lookup(self, key: bytes, decode: Callable[[bytes | None], object],
               callback: Callable[[object], None]) -> None:
        """Fetch key from Redis and call callback with decode(value), or with a
        RedisUnavailable. Raise RedisUnavailable at once when Redis cannot be reached."""
        connection = self.connection
        if connection is not None:
            connection.lookup(key, decode, callback)
        elif self.connecting:
            self.queued.append((key, decode, callback))
        else:
            raise RedisUnavailable("no connection to Redis; reconnecting")

    def notify(self, callbacks: list[Callable[[object], None]], result: object) -> None:
        for callback in callbacks:
            try:
                callback(result)
            except Exception:  # one failed request must not keep the others waiting
                logger.exception("sending a response after a redis lookup failed")

    def connection_lost(self, connection: _Connection) -> None:
        if self.connection is not connection:
            return  # lost during its handshake; _maintain reports the failure
        self.connection = None
        self.connected.clear()
        self.connecting = not self.closing
        if not self.closing:
            logger.warning("lost the connection to redis address=%s; reconnecting",
                           self.target.describe())

    # Connecting

    async def _maintain(self) -> None:
        delay = RECONNECT_FIRST_DELAY_SECONDS
        while True:
            self.connecting = True
            try:
                connection = await self._connect()
            except (TimeoutError, OSError, RedisUnavailable) as error:
                self.connecting = False
                self._fail_queued(RedisUnavailable(f"cannot connect to Redis: {error}"))
                self._report_failure(error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY_SECONDS)
                continue
            delay = RECONNECT_FIRST_DELAY_SECONDS
            self._failures = 0
            self.connecting = False
            self.connection = connection
            self.connected.set()
            queued, self.queued = self.queued, []
            for key, decode, callback in queued:
                connection.lookup(key, decode, callback)
            await self._watch(connection)

    async def _connect(self) -> _Connection:
        sock = await asyncio.wait_for(self._open_socket(), self.timeout)
        connection = _Connection(self, sock)
        try:
            await self._handshake(connection)
        except BaseException:
            connection.abort()
            raise
        if not connection.open:
            raise connection.lost_error or RedisUnavailable("connection closed in the handshake")
        logger.info("connected to redis address=%s", self.target.describe())
        return connection

    async def _open_socket(self) -> socket.socket:
        """Connect a non-blocking socket to the target, with TLS for rediss:// URLs."""
        loop = asyncio.get_running_loop()
        target = self.target
        if target.path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, target.path)
            except BaseException:
                sock.close()
                raise
            return sock
        addresses = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address found for {target.host}")
        for family, kind, protocol, _, address in addresses:
            sock = socket.socket(family, kind, protocol)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
            except OSError as failure:
                sock.close()
                error = failure
                continue
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if target.tls:
                return await self._start_tls(sock)
            return sock
        raise error

    async def _start_tls(self, sock: socket.socket) -> socket.socket:
        loop = asyncio.get_running_loop()
        secured = self.target.tls_context().wrap_socket(sock, server_hostname=self.target.host,
                                      do_handshake_on_connect=False)
        try:
            while True:
                try:
                    secured.do_handshake()
                    return secured
                except ssl.SSLWantReadError:
                    await _ready(loop.add_reader, loop.remove_reader, secured.fileno())
                except ssl.SSLWantWriteError:
                    await _ready(loop.add_writer, loop.remove_writer, secured.fileno())
        except BaseException:
            secured.close()
            raise

    async def _handshake(self, connection: _Connection) -> None:
        """Select RESP3 where Redis has it (6 or later), authenticate and select the database."""
        target = self.target
        authentication: list[str] = []
        if target.password is not None:
            authentication = ["AUTH", target.username or "default", target.password]
        hello = await self._reply(connection.command("HELLO", "3", *authentication, "SETNAME",
                                                     CLIENT_NAME))
        if isinstance(hello, ReplyError):
            if not hello.message.startswith(("NOPROTO", "ERR unknown command")):
                raise RedisUnavailable(f"HELLO failed: {hello.message}")
            # Redis before 6 has no HELLO and speaks RESP2 only, which the parser reads too.
            if target.password is not None:
                auth_arguments = ([target.username] if target.username else []) + [target.password]
                await self._expect_ok(connection, "AUTH", *auth_arguments)
        if target.db:
            await self._expect_ok(connection, "SELECT", target.db)

    async def _expect_ok(self, connection: _Connection, *arguments: str | int) -> None:
        reply = await self._reply(connection.command(*arguments))
        if isinstance(reply, ReplyError):
            raise RedisUnavailable(f"{arguments[0]} failed: {reply.message}")

    async def _reply(self, future: asyncio.Future) -> object:
        return await asyncio.wait_for(future, self.timeout)

    async def _watch(self, connection: _Connection) -> None:
        """Wait until the connection ends. Abort it when replies are due and Redis has
        sent none for longer than the timeout."""
        interval = self.timeout / 4
        replies_seen = connection.replies
        stalled_since: float | None = None
        while not connection.closed.done():
            await asyncio.wait([connection.closed], timeout=interval)
            if not connection.expected or connection.replies != replies_seen:
                replies_seen = connection.replies
                stalled_since = None
                continue
            now = time.monotonic()
            if stalled_since is None:
                stalled_since = now
            elif now - stalled_since >= self.timeout:
                logger.warning("redis at %s sent no reply for %.1f s; reconnecting",
                               self.target.describe(), now - stalled_since)
                connection.abort()
                await connection.closed

    def _fail_queued(self, error: RedisUnavailable) -> None:
        queued, self.queued = self.queued, []
        self.notify([callback for _, _, callback in queued], error)

    def _report_failure(self, error: BaseException) -> None:
        # While Redis is down, attempts repeat every RECONNECT_MAX_DELAY_SECONDS. So log
        # the first failure and then one line per FAILURE_LOG_INTERVAL_SECONDS.
        self._failures += 1
        now = time.monotonic()
        if now - self._last_failure_log >= FAILURE_LOG_INTERVAL_SECONDS:
            logger.warning("cannot connect to redis address=%s (failed attempts: %d): %s",
                           self.target.describe(), self._failures, error or type(error).__name__)
            self._last_failure_log = now
