"""A small, strict HTTP/1.1 request parser and response writer for the responder.

Only what an HTTP-01 validator and a browser following a redirect send is accepted:
GET or HEAD, no body, bounded request line and headers.
"""

from __future__ import annotations

import re
import typing

MAX_REQUEST_LINE_BYTES = 4096
MAX_HEAD_BYTES = 16384
MAX_HEADER_COUNT = 100

# A request target in origin form: visible ASCII only, so nothing in it can end a header
# line when the target is echoed into a redirect's Location.
_TARGET = re.compile(r"/[!-~]*")
# A request target in absolute form (http://host/path), which RFC 9112 section 3.2.2
# requires servers to accept; its host then replaces the Host header.
_ABSOLUTE_TARGET = re.compile(r"https?://(?P<authority>[^/?#@]+)(?P<rest>[/?][!-~]*)?",
                              re.IGNORECASE)
# A Host header: a DNS name (letters, digits, hyphens, dots) or a bracketed IPv6
# literal, then an optional port.
_HOST = re.compile(r"(?P<name>[a-z0-9.-]{1,254}|\[[0-9a-f:.]{2,45}\])(?::[0-9]{1,5})?")

# Host header values already parsed, because a validator sends the same few hosts
# again and again. Only valid values are stored, and the map is cleared when full.
MAX_CACHED_HOSTS = 4096
_normal_hosts: dict[bytes, str] = {}

_REASONS = {
    200: "OK", 308: "Permanent Redirect", 400: "Bad Request", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 414: "URI Too Long",
    431: "Request Header Fields Too Large", 503: "Service Unavailable",
}


class BadRequest(Exception):
    """The request cannot be served; status is the HTTP status of the error response."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class Request(typing.NamedTuple):
    """A parsed request head. A named tuple, because one is built per request and a
    frozen dataclass takes about twice as long to construct (CPython 3.11)."""

    method: str
    target: str
    path: str
    host: str
    """The Host header in lowercase without port and trailing dot; empty when absent."""
    keep_alive: bool


def find_head_end(buffer: bytes | bytearray) -> int:
    """Return the index just past the blank line ending the request head, or -1."""
    end = buffer.find(b"\r\n\r\n")
    return -1 if end < 0 else end + 4


def check_partial_head(buffer: bytes | bytearray) -> None:
    """Raise BadRequest when an unfinished head is already over a limit."""
    line_end = buffer.find(b"\r\n")
    if (line_end < 0 and len(buffer) > MAX_REQUEST_LINE_BYTES) or line_end > MAX_REQUEST_LINE_BYTES:
        raise BadRequest(414, "request line too long")
    if len(buffer) > MAX_HEAD_BYTES:
        raise BadRequest(431, "request headers too large")
    # A CR at the very end may still get its LF.
    _check_line_endings(buffer[:-1] if buffer.endswith(b"\r") else buffer)


def _check_line_endings(data: bytes | bytearray) -> None:
    """Raise BadRequest for a CR or LF that is not part of a CRLF pair.

    RFC 9112 section 2.2 lets a server reject them. Without this check, a head whose
    lines end in LF alone would never reach the blank line that ends it, and would
    wait for the head timeout instead of getting its response at once.
    """
    pairs = data.count(b"\r\n")
    if data.count(b"\n") != pairs or data.count(b"\r") != pairs:
        raise BadRequest(400, "malformed line ending: every line must end with CR LF")


def parse_head(head: bytes) -> Request:
    """Parse a complete request head (ending with a blank line)."""
    _check_line_endings(head)
    lines = head[:-4].split(b"\r\n")
    if len(lines[0]) > MAX_REQUEST_LINE_BYTES:
        raise BadRequest(414, "request line too long")
    if len(head) > MAX_HEAD_BYTES or len(lines) - 1 > MAX_HEADER_COUNT:
        raise BadRequest(431, "request headers too large")
    try:
        method_bytes, target_bytes, version = lines[0].split(b" ")
    except ValueError:
        raise BadRequest(400, "malformed request line") from None
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise BadRequest(400, "unsupported HTTP version")
    try:
        method = method_bytes.decode("ascii")
        target = target_bytes.decode("ascii")
    except UnicodeDecodeError:
        raise BadRequest(400, "non-ASCII request line") from None
    absolute_host = None
    if not target.startswith("/"):
        absolute = _ABSOLUTE_TARGET.fullmatch(target)
        if absolute is not None:
            absolute_host = _normal_host(absolute.group("authority").encode("ascii"))
            rest = absolute.group("rest") or "/"
            target = rest if rest.startswith("/") else "/" + rest
    if not _TARGET.fullmatch(target):
        raise BadRequest(400, "the request target must be a path of visible ASCII characters")

    host = ""
    seen_host = False
    connection = b""
    for line in lines[1:]:
        name, separator, value = line.partition(b":")
        if not separator or not name or name != name.strip():
            raise BadRequest(400, "malformed header")
        lowered = name.lower()
        if lowered == b"host":
            if seen_host:
                raise BadRequest(400, "more than one Host header")
            seen_host = True
            host = _normal_host(value.strip())
        elif lowered == b"connection":
            connection = value.strip().lower()
        elif lowered in (b"content-length", b"transfer-encoding"):
            if lowered == b"transfer-encoding" or value.strip() != b"0":
                raise BadRequest(400, "a request body is not accepted")
    if version == b"HTTP/1.1":
        # RFC 9112 section 3.2: an HTTP/1.1 request without Host is answered with 400.
        if not seen_host:
            raise BadRequest(400, "missing Host header")
        keep_alive = connection != b"close"
    else:
        keep_alive = connection == b"keep-alive"
    if absolute_host is not None:
        host = absolute_host
    path = target.split("?", 1)[0]
    return Request(method=method, target=target, path=path, host=host, keep_alive=keep_alive)


def _normal_host(value: bytes) -> str:
    """Return the host part of a Host header, lowercase, without port and trailing dot."""
    host = _normal_hosts.get(value)
    if host is None:
        host = _parse_host(value)
        if len(_normal_hosts) >= MAX_CACHED_HOSTS:
            _normal_hosts.clear()
        _normal_hosts[value] = host
    return host


def _parse_host(value: bytes) -> str:
    try:
        host = value.decode("ascii").lower()
    except UnicodeDecodeError:
        raise BadRequest(400, "non-ASCII Host header") from None
    match = _HOST.fullmatch(host)
    if match is None:
        raise BadRequest(400, "invalid Host header")
    return match.group("name").rstrip(".")


def response(status: int, body: bytes = b"", *, head_only: bool = False, keep_alive: bool = True,
             headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """Serialize a plain-text response that no cache may keep."""
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        "X-Content-Type-Options: nosniff",
        "Connection: keep-alive" if keep_alive else "Connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    return head if head_only else head + body


# The parts of a 200 response before and after its Content-Length header, for ok_response.
_OK_HEAD_START, _OK_HEAD_END = response(200).split(b"Content-Length: 0", 1)


def ok_response(body: bytes) -> bytes:
    """Return response(200, body) for a connection kept open, built from prebuilt parts."""
    return b"".join((_OK_HEAD_START, b"Content-Length: ", str(len(body)).encode("ascii"),
                     _OK_HEAD_END, body))


class CannedResponse:
    """A response serialized once in its four forms: for GET or HEAD, keeping or
    closing the connection."""

    __slots__ = ("keep_alive", "keep_alive_head", "close", "close_head")

    def __init__(self, status: int, body: bytes,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        self.keep_alive = response(status, body, headers=headers)
        self.keep_alive_head = response(status, body, head_only=True, headers=headers)
        self.close = response(status, body, keep_alive=False, headers=headers)
        self.close_head = response(status, body, head_only=True, keep_alive=False,
                                   headers=headers)

    def pick(self, *, head_only: bool, keep_alive: bool) -> bytes:
        if keep_alive:
            return self.keep_alive_head if head_only else self.keep_alive
        return self.close_head if head_only else self.close
