"""The HTTP-01 responder: serves key authorizations and self-check bodies from Redis.

It imports nothing of the api or the worker and reads Redis only, so it starts fast
and keeps serving the CA while everything else restarts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import resource
import signal
import socket
import time

import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from service.config import ConfigError, Settings
from service.redis_keys import SELF_CHECK_TOKEN, RedisKeys, parse_http01_value
from service.responder import http

logger = logging.getLogger(__name__)

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
HEALTH_PATH = "/.well-known/certsvc/health"
# Tokens are base64url (RFC 8555 section 8.1 requires at least 128 bits of entropy).
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
# Sized for bursts: the CA sends several requests per challenge at once.
LISTEN_BACKLOG = 4096
REDIS_TIMEOUT_SECONDS = 2.0
REJECTION_LOG_INTERVAL_SECONDS = 10.0


class Responder:
    """Request routing and the Redis lookups behind it."""

    def __init__(self, redis_client: redis_asyncio.Redis, keys: RedisKeys) -> None:
        self.redis = redis_client
        self.keys = keys

    async def handle(self, request: http.Request) -> bytes:
        """Return the complete response bytes for a parsed request."""
        head_only = request.method == "HEAD"
        keep_alive = request.keep_alive
        if request.method not in ("GET", "HEAD"):
            return http.response(405, b"only GET and HEAD are allowed\n", head_only=head_only,
                                 keep_alive=keep_alive, headers=(("Allow", "GET, HEAD"),))
        try:
            if request.path.startswith(CHALLENGE_PREFIX):
                status, body = await self._challenge(request)
            elif request.path == HEALTH_PATH:
                status, body = 200, b"ok\n"
            else:
                return await self._other_path(request)
        except (RedisError, OSError, asyncio.TimeoutError) as error:
            logger.warning("redis lookup failed host=%s path=%s: %s", request.host,
                           request.path[:100], error)
            return http.response(503, b"temporarily unavailable\n", head_only=head_only,
                                 keep_alive=False, headers=(("Retry-After", "1"),))
        return http.response(status, body, head_only=head_only, keep_alive=keep_alive)

    async def _challenge(self, request: http.Request) -> tuple[int, bytes]:
        token = request.path[len(CHALLENGE_PREFIX):]
        if token == SELF_CHECK_TOKEN:
            if not request.host:
                return 404, b"not found\n"
            body = await self.redis.get(self.keys.self_check_body(request.host))
            return (200, body) if body is not None else (404, b"not found\n")
        if not _TOKEN.match(token):
            return 404, b"not found\n"
        value = await self.redis.get(self.keys.http01(token))
        if value is None:
            return 404, b"not found\n"
        hostname, key_authorization = parse_http01_value(value.decode("ascii"))
        # A token is served only for the host it was issued for.
        if hostname != request.host:
            logger.info("token requested for another host token=%s host=%s", token, request.host)
            return 404, b"not found\n"
        logger.debug("served http-01 token hostname=%s token=%s", hostname, token)
        return 200, key_authorization.encode("ascii")

    async def _other_path(self, request: http.Request) -> bytes:
        head_only = request.method == "HEAD"
        if request.host and await self.redis.exists(self.keys.force_https(request.host)):
            location = f"https://{request.host}{request.target}"
            return http.response(308, b"", head_only=head_only, keep_alive=request.keep_alive,
                                 headers=(("Location", location),))
        return http.response(404, b"not found\n", head_only=head_only,
                             keep_alive=request.keep_alive)


class ConnectionLimits:
    """Open connections of one responder process, in total and per client address."""

    def __init__(self, maximum: int, per_address: int) -> None:
        self.maximum = maximum
        self.per_address = per_address
        self.total = 0
        self.by_address: dict[str, int] = {}
        self.rejected = 0
        self._last_report = 0.0

    def admit(self, address: str) -> bool:
        """Count a new connection from address, unless a limit is reached."""
        count = self.by_address.get(address, 0)
        if self.total >= self.maximum or count >= self.per_address:
            self._report_rejection(address)
            return False
        self.total += 1
        self.by_address[address] = count + 1
        return True

    def release(self, address: str) -> None:
        self.total -= 1
        count = self.by_address[address] - 1
        if count:
            self.by_address[address] = count
        else:
            del self.by_address[address]

    def _report_rejection(self, address: str) -> None:
        # A flood rejects thousands of connections; log the count every few seconds.
        self.rejected += 1
        now = time.monotonic()
        if now - self._last_report >= REJECTION_LOG_INTERVAL_SECONDS:
            logger.warning("rejecting connections over the limit address=%s open=%d "
                           "open_from_address=%d rejected_since_last_report=%d", address,
                           self.total, self.by_address.get(address, 0), self.rejected)
            self.rejected = 0
            self._last_report = now


class ResponderProtocol(asyncio.Protocol):
    """One client connection: read a request head, answer it, repeat while kept alive.

    Each connection has one timer: the head timeout from a request's first byte, the
    idle timeout between requests. While a response waits for the client to read
    it, no further request of the connection is read or answered.
    """

    def __init__(self, responder: Responder, limits: ConnectionLimits, *,
                 head_timeout: float, idle_timeout: float) -> None:
        self.responder = responder
        self.limits = limits
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.address: str | None = None
        self.busy = False
        self.writing_paused = False
        self.timer: asyncio.TimerHandle | None = None
        self.idle = False
        """Whether the timer is the idle timeout (else the head timeout)."""
        self.eof = False
        """Whether the client has finished sending; buffered requests are still answered."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        address = client_key(peer[0]) if peer else "unknown"
        if not self.limits.admit(address):
            self.transport.write(http.response(503, b"too many connections\n", keep_alive=False,
                                               headers=(("Retry-After", "1"),)))
            self.transport.close()
            return
        self.address = address
        self._arm_timer(self.head_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.address is not None:
            self.limits.release(self.address)
            self.address = None
        self.transport = None

    def pause_writing(self) -> None:
        self.writing_paused = True

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.transport is not None and not self.busy:
            self.transport.resume_reading()
            self._arm_timer(self.head_timeout if self.buffer else self.idle_timeout,
                            idle=not self.buffer)
            if self.buffer or self.eof:
                self._next_request()

    def eof_received(self) -> bool:
        self.eof = True
        if not self.busy and not self.writing_paused:
            self._next_request()
        # Keep the connection open for the answers to requests still buffered.
        return True

    def data_received(self, data: bytes) -> None:
        if self.address is None:
            return  # rejected over the limit and closing
        if self.idle and not self.buffer and not self.busy:
            # The first byte of a request starts its head timeout.
            self._arm_timer(self.head_timeout)
        self.buffer += data
        if not self.busy and not self.writing_paused:
            self._next_request()

    def _next_request(self) -> None:
        if self.transport is None:
            return
        end = http.find_head_end(self.buffer)
        if end < 0:
            try:
                http.check_partial_head(self.buffer)
            except http.BadRequest as error:
                self._fail(error)
                return
            if self.eof:
                self.transport.close()
            return
        head = bytes(self.buffer[:end])
        del self.buffer[:end]
        try:
            request = http.parse_head(head)
        except http.BadRequest as error:
            self._fail(error)
            return
        self.busy = True
        self.transport.pause_reading()
        if self.timer is not None:
            self.timer.cancel()
        asyncio.ensure_future(self._answer(request))

    async def _answer(self, request: http.Request) -> None:
        try:
            payload = await asyncio.wait_for(self.responder.handle(request),
                                             REDIS_TIMEOUT_SECONDS * 2)
        except asyncio.TimeoutError:
            payload = http.response(503, b"temporarily unavailable\n", keep_alive=False)
            request = http.Request(request.method, request.target, request.path, request.host,
                                   keep_alive=False)
        if self.transport is None:
            return
        self.transport.write(payload)
        self.busy = False
        if not request.keep_alive:
            self.transport.close()
            return
        self._arm_timer(self.head_timeout if self.buffer else self.idle_timeout,
                        idle=not self.buffer)
        if self.writing_paused:
            return  # resume_writing continues once the client reads
        self.transport.resume_reading()
        if self.buffer or self.eof:
            self._next_request()

    def _fail(self, error: http.BadRequest) -> None:
        if self.transport is None:
            return
        self.transport.write(http.response(error.status, f"{error}\n".encode(), keep_alive=False))
        self.transport.close()

    def _arm_timer(self, seconds: float, *, idle: bool = False) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.idle = idle
        self.timer = asyncio.get_running_loop().call_later(seconds, self._timed_out)

    def _timed_out(self) -> None:
        if self.transport is None or self.busy:
            return
        if self.writing_paused:
            # The client stopped reading its responses; drop what is still queued.
            self.transport.abort()
            return
        if self.buffer:
            self.transport.write(http.response(408, b"request timed out\n", keep_alive=False))
        self.transport.close()


def client_key(address: str) -> str:
    """Return what the per-client connection cap counts for an address: the address
    itself for IPv4, its /64 network for IPv6, where one client holds a whole /64."""
    if ":" not in address:
        return address
    try:
        parsed = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address
    if parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(ipaddress.IPv6Network(f"{parsed}/64", strict=False))


def _listening_socket(address: str, reuse_port: bool) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"cannot listen on CERTSVC_RESPONDER_ADDRESS={address}: {error.strerror}; stop "
            "the process that uses the port or choose another address") from None
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


async def serve_socket(settings: Settings, sock: socket.socket,
                       stop: asyncio.Event | None = None) -> None:
    """Serve on an already listening socket until stop is set (or forever)."""
    redis_client = redis_asyncio.Redis.from_url(
        settings.redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS, max_connections=256)
    responder = Responder(redis_client, RedisKeys(settings.redis_prefix))
    limits = ConnectionLimits(settings.responder_max_connections,
                              settings.responder_max_connections_per_address)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: ResponderProtocol(responder, limits,
                                  head_timeout=settings.responder_head_timeout_seconds,
                                  idle_timeout=settings.responder_idle_timeout_seconds),
        sock=sock, backlog=LISTEN_BACKLOG)
    stop = stop or asyncio.Event()
    async with server:
        await stop.wait()
    await redis_client.aclose()


def _run_process(settings: Settings, sock: socket.socket) -> None:
    try:
        import uvloop
    except ImportError:
        uvloop = None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve_socket(settings, sock, stop)

    if uvloop is not None:
        uvloop.run(main())
    else:
        asyncio.run(main())


def serve(settings: Settings, processes: int = 1) -> None:
    """Run the responder in processes processes sharing one port (SO_REUSEPORT)."""
    address = settings.responder_address
    _raise_file_limit(settings.responder_max_connections)
    logger.info("responder listening address=%s processes=%d max_connections=%d "
                "max_connections_per_address=%d", address, processes,
                settings.responder_max_connections,
                settings.responder_max_connections_per_address)
    if processes <= 1:
        _run_process(settings, _listening_socket(address, reuse_port=False))
        return
    children = []
    for _ in range(processes):
        sock = _listening_socket(address, reuse_port=True)
        pid = os.fork()
        if pid == 0:
            _run_process(settings, sock)
            os._exit(0)
        sock.close()
        children.append(pid)

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        os.waitpid(child, 0)
    logger.info("responder stopped")


def _raise_file_limit(connections: int) -> None:
    """Raise the open-file limit to its hard limit; warn if connections would not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:
            logger.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, error)
    # Redis connections, the listening socket and the interpreter need some too.
    if soft != resource.RLIM_INFINITY and soft < connections + 300:
        logger.warning("the open-file limit %d is too low for CERTSVC_RESPONDER_MAX_CONNECTIONS="
                       "%d; raise it (ulimit -n) or lower the setting", soft, connections)
