"""The HTTP-01 responder: serves key authorizations and self-check bodies from Redis.

It imports nothing of the api or the worker and reads Redis only, so it starts fast
and keeps serving the CA while everything else restarts. This module owns the
listening sockets and the processes; protocol.py reads requests and writes responses,
routing.py maps them to Redis keys and redis_link.py fetches those keys.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket

from service.config import ConfigError, Settings
from service.redis_keys import RedisKeys
from service.responder.limits import ConnectionLimits
from service.responder.protocol import ResponderProtocol
from service.responder.redis_link import RedisLink, RedisTarget
from service.responder.routing import Responder

logger = logging.getLogger(__name__)

# Sized for bursts: the CA sends several requests per challenge at once.
LISTEN_BACKLOG = 4096
REDIS_TIMEOUT_SECONDS = 2.0


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
    keys = RedisKeys(settings.redis_prefix)
    link = RedisLink(RedisTarget.from_url(settings.redis_url), timeout=REDIS_TIMEOUT_SECONDS)
    link.start()
    responder = Responder(link, keys)
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
    await link.close()


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
        logger.info("responder stopped")
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
