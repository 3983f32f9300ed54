"""One client connection of the responder: read request heads, respond in order."""

from __future__ import annotations

import asyncio
import math

from service.responder import http
from service.responder.limits import ConnectionLimits, client_key
from service.responder.routing import Responder

TOO_MANY_CONNECTIONS = http.response(503, b"too many connections\n", keep_alive=False,
                                     headers=(("Retry-After", "1"),))


class ResponderProtocol(asyncio.Protocol):
    """One client connection: read a request head, respond to it, repeat while kept alive.

    Each connection has one deadline: the head timeout from a request's first byte,
    the idle timeout between requests. While a response waits for Redis, or waits for
    the client to read it, no further request of the connection is read or answered.

    Each request head is parsed by http.parse_head and routed by Responder.respond.
    """

    def __init__(self, responder: Responder, limits: ConnectionLimits, *,
                 head_timeout: float, idle_timeout: float) -> None:
        self.responder = responder
        self.limits = limits
        self.head_timeout = head_timeout
        self.idle_timeout = idle_timeout
        self.loop = responder.loop
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.address: str | None = None
        self.busy = False
        """Whether a response is waiting for Redis."""
        self.writing_paused = False
        self.eof = False
        """Whether the client has finished sending; buffered requests still get responses."""
        self.deadline = math.inf
        self.idle = False
        """Whether the deadline is the idle timeout (else the head timeout)."""
        # The timer is moved only when the deadline comes closer; when it fires early,
        # it is set again for the current deadline. So a response costs no timer change.
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        address = client_key(peer[0]) if peer else "unknown"
        if not self.limits.admit(address):
            self.transport.write(TOO_MANY_CONNECTIONS)
            self.transport.close()
            return
        self.address = address
        self._set_deadline(self.head_timeout, idle=False)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
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
            self._set_deadline(self.head_timeout if self.buffer else self.idle_timeout,
                               idle=not self.buffer)
            if self.buffer or self.eof:
                self._serve_buffered()

    def eof_received(self) -> bool:
        self.eof = True
        if not self.busy and not self.writing_paused:
            self._serve_buffered()
        # Keep the connection open for the responses to requests still buffered.
        return True

    def data_received(self, data: bytes) -> None:
        if self.address is None:
            return  # rejected over the limit and closing
        if self.idle and not self.buffer and not self.busy:
            # The first byte of a request starts its head timeout.
            self._set_deadline(self.head_timeout, idle=False)
        self.buffer += data
        if not self.busy and not self.writing_paused:
            self._serve_buffered()

    def _serve_buffered(self) -> None:
        """Respond to the complete requests in the buffer until one has to wait."""
        while True:
            transport = self.transport
            if transport is None or transport.is_closing() or self.busy or self.writing_paused:
                return
            # RFC 9112 section 2.2: a server should ignore empty lines before a request line.
            skipped = 0
            while self.buffer.startswith(b"\r\n", skipped):
                skipped += 2
            if skipped:
                del self.buffer[:skipped]
            end = http.find_head_end(self.buffer)
            if end < 0:
                try:
                    http.check_partial_head(self.buffer)
                except http.BadRequest as error:
                    self._fail(error)
                    return
                if self.eof:
                    transport.close()
                return
            head = bytes(self.buffer[:end])
            del self.buffer[:end]
            try:
                request = http.parse_head(head)
            except http.BadRequest as error:
                self._fail(error)
                return
            response = self.responder.respond(request, self._send_delayed)
            if response is None:
                self.busy = True
                transport.pause_reading()
                return
            self._send(*response)

    def _send_delayed(self, payload: bytes, keep_alive: bool) -> None:
        """Send the response that waited for Redis, then go on with the connection."""
        if self.transport is None:
            return
        self.busy = False
        self._send(payload, keep_alive)
        if self.transport is None or self.transport.is_closing() or self.writing_paused:
            return  # resume_writing continues once the client reads
        self.transport.resume_reading()
        if self.buffer or self.eof:
            self._serve_buffered()

    def _send(self, payload: bytes, keep_alive: bool) -> None:
        transport = self.transport
        assert transport is not None
        transport.write(payload)
        if not keep_alive:
            transport.close()
            return
        if self.writing_paused:
            transport.pause_reading()
        self._set_deadline(self.head_timeout if self.buffer else self.idle_timeout,
                           idle=not self.buffer)

    def _fail(self, error: http.BadRequest) -> None:
        if self.transport is None:
            return
        self.transport.write(http.response(error.status, f"{error}\n".encode(), keep_alive=False))
        self.transport.close()

    def _set_deadline(self, seconds: float, *, idle: bool) -> None:
        self.deadline = self.loop.time() + seconds
        self.idle = idle
        if self.deadline < self.timer_at:
            if self.timer is not None:
                self.timer.cancel()
            self.timer = self.loop.call_at(self.deadline, self._timed_out)
            self.timer_at = self.deadline

    def _timed_out(self) -> None:
        self.timer = None
        self.timer_at = math.inf
        if self.transport is None or self.busy:
            return  # _send_delayed sets a new deadline
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self._timed_out)
            self.timer_at = self.deadline
            return
        if self.writing_paused:
            # The client stopped reading its responses; drop what is still queued.
            self.transport.abort()
            return
        if self.buffer:
            self.transport.write(http.response(408, b"request timed out\n", keep_alive=False))
        self.transport.close()
