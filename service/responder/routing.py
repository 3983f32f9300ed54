"""Request routing: which Redis key a request needs and the response built from its value."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable

from service.log_limits import RepeatedEvent
from service.redis_keys import SELF_CHECK_TOKEN, RedisKeys
from service.responder import http
from service.responder.redis_link import RedisLink, RedisUnavailable

logger = logging.getLogger(__name__)

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
HEALTH_PATH = "/.well-known/certsvc/health"
# Tokens are base64url (RFC 8555 section 8.1 requires at least 128 bits of entropy).
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
FAILURE_LOG_INTERVAL_SECONDS = 10.0

NOT_FOUND = http.CannedResponse(404, b"not found\n")
HEALTHY = http.CannedResponse(200, b"ok\n")
METHOD_NOT_ALLOWED = http.CannedResponse(405, b"only GET and HEAD are allowed\n",
                                         (("Allow", "GET, HEAD"),))
UNAVAILABLE = http.CannedResponse(503, b"temporarily unavailable\n", (("Retry-After", "1"),))

# The result of respond() for a request it can handle at once: the response bytes and
# whether the connection stays open after them.
Response = tuple[bytes, bool]
ResponseCallback = Callable[[bytes, bool], None]


class Http01Entry:
    """The decoded value of an http-01 token key, with its usual response prebuilt."""

    __slots__ = ("hostname", "key_authorization", "response")

    def __init__(self, hostname: bytes, key_authorization: bytes) -> None:
        self.hostname = hostname
        """The host the token was issued for, lowercase as the workers write it."""
        self.key_authorization = key_authorization
        self.response = http.ok_response(key_authorization)
        """The response to a GET that keeps the connection open."""


def decode_http01(value: bytes | None) -> Http01Entry | None:
    """Split a stored "<hostname> <key authorization>" value (see redis_keys.http01_value)."""
    if value is None:
        return None
    if not value.isascii():
        logger.warning("ignoring an http-01 value that is not ASCII")
        return None
    hostname, _, key_authorization = value.partition(b" ")
    return Http01Entry(hostname, key_authorization)


def decode_self_check_body(value: bytes | None) -> bytes | None:
    return value


def decode_force_https(value: bytes | None) -> bool:
    return value is not None


class Responder:
    """The router of parsed requests: each response is built after a Redis lookup."""

    def __init__(self, link: RedisLink, keys: RedisKeys) -> None:
        self.link = link
        self.loop = asyncio.get_running_loop()
        self.http01_prefix = keys.http01("").encode()
        self.self_check_prefix = keys.self_check_body("").encode()
        self.force_https_prefix = keys.force_https("").encode()
        self._failures = RepeatedEvent(FAILURE_LOG_INTERVAL_SECONDS)

    def respond(self, request: http.Request, done: ResponseCallback) -> Response | None:
        """Return the response to request, or None when it waits for Redis. In that case
        done is called with the response later."""
        head_only = request.method == "HEAD"
        keep_alive = request.keep_alive
        if request.method not in ("GET", "HEAD"):
            return METHOD_NOT_ALLOWED.pick(head_only=head_only, keep_alive=keep_alive), keep_alive
        path = request.path
        if path.startswith(CHALLENGE_PREFIX):
            token = path[len(CHALLENGE_PREFIX):]
            if token == SELF_CHECK_TOKEN:
                if not request.host:
                    return NOT_FOUND.pick(head_only=head_only, keep_alive=keep_alive), keep_alive
                return self._lookup(self.self_check_prefix + request.host.encode(),
                                    decode_self_check_body, self._self_check_response, request,
                                    done)
            if not _TOKEN.match(token):
                return NOT_FOUND.pick(head_only=head_only, keep_alive=keep_alive), keep_alive
            return self._lookup(self.http01_prefix + token.encode(), decode_http01,
                                self._challenge_response, request, done)
        if path == HEALTH_PATH:
            return HEALTHY.pick(head_only=head_only, keep_alive=keep_alive), keep_alive
        if not request.host:
            return NOT_FOUND.pick(head_only=head_only, keep_alive=keep_alive), keep_alive
        return self._lookup(self.force_https_prefix + request.host.encode(), decode_force_https,
                            self._other_path_response, request, done)

    def _lookup(self, key: bytes, decode: Callable[[bytes | None], object],
                build: Callable[[http.Request, object], Response], request: http.Request,
                done: ResponseCallback) -> Response | None:
        def finish(result: object) -> None:
            if isinstance(result, RedisUnavailable):
                done(*self._unavailable(request, result))
            else:
                done(*build(request, result))

        try:
            self.link.lookup(key, decode, finish)
        except RedisUnavailable as error:
            return self._unavailable(request, error)
        return None

    def _challenge_response(self, request: http.Request, entry: object) -> Response:
        head_only = request.method == "HEAD"
        keep_alive = request.keep_alive
        if entry is None:
            return NOT_FOUND.pick(head_only=head_only, keep_alive=keep_alive), keep_alive
        assert isinstance(entry, Http01Entry)
        # A token is served only for the host it was issued for.
        if entry.hostname != request.host.encode():
            logger.info("token requested for another host token=%s host=%s",
                        request.path[len(CHALLENGE_PREFIX):], request.host)
            return NOT_FOUND.pick(head_only=head_only, keep_alive=keep_alive), keep_alive
        logger.debug("served http-01 token hostname=%s token=%s", request.host,
                     request.path[len(CHALLENGE_PREFIX):])
        if keep_alive and not head_only:
            return entry.response, True
        return http.response(200, entry.key_authorization, head_only=head_only,
                             keep_alive=keep_alive), keep_alive

    def _self_check_response(self, request: http.Request, body: object) -> Response:
        head_only = request.method == "HEAD"
        keep_alive = request.keep_alive
        if body is None:
            return NOT_FOUND.pick(head_only=head_only, keep_alive=keep_alive), keep_alive
        assert isinstance(body, bytes)
        return http.response(200, body, head_only=head_only, keep_alive=keep_alive), keep_alive

    def _other_path_response(self, request: http.Request, force_https: object) -> Response:
        head_only = request.method == "HEAD"
        keep_alive = request.keep_alive
        if force_https:
            location = f"https://{request.host}{request.target}"
            return http.response(308, b"", head_only=head_only, keep_alive=keep_alive,
                                 headers=(("Location", location),)), keep_alive
        return NOT_FOUND.pick(head_only=head_only, keep_alive=keep_alive), keep_alive

    def _unavailable(self, request: http.Request, error: RedisUnavailable) -> Response:
        # During an outage every request fails; log the first and then a count every
        # FAILURE_LOG_INTERVAL_SECONDS.
        failures = self._failures.occurred()
        if failures is not None:
            logger.warning("redis lookup failed host=%s path=%s failures_since_last_report=%d: "
                           "%s", request.host, request.path[:100], failures, error)
        return UNAVAILABLE.pick(head_only=request.method == "HEAD", keep_alive=False), False
