"""One GET request of the self-check, sent to a chosen address with bounded reads.

The connection goes to the address the caller resolved, while the Host header and
the TLS server name carry the URL's host, as a validating CA does. An HTTPS peer's
certificate is not verified: Let's Encrypt ignores it on a redirect hop too.
"""

from __future__ import annotations

import dataclasses
import http.client
import socket
import ssl
import threading
import urllib.parse

from service.validation.addresses import IPAddress

USER_AGENT = "certsvc-selfcheck/0.1"
# At most this much of a body is read; the self-check body is 43 characters and a
# larger answer only needs a look at its first bytes.
MAX_BODY_BYTES = 4096
# http.client caps each header line at 64 KiB and the count at 100 headers.


class NetworkError(Exception):
    """No HTTP response arrived: the connection failed, timed out or was closed."""

    def __init__(self, description: str, *, timed_out: bool = False) -> None:
        super().__init__(description)
        self.timed_out = timed_out


class ProtocolError(Exception):
    """Something answered, but not with a usable HTTP response (or the TLS handshake failed)."""


@dataclasses.dataclass(frozen=True)
class FetchedResponse:
    status: int
    location: str
    """The Location header; empty when absent."""
    content_type: str
    body: bytes
    """At most MAX_BODY_BYTES of the body."""


def fetch(url: urllib.parse.SplitResult, address: IPAddress, timeout_seconds: float
          ) -> FetchedResponse:
    """GET url from address within timeout_seconds, or raise NetworkError or ProtocolError."""
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    target = (url.path or "/") + (f"?{url.query}" if url.query else "")
    connection = _PinnedConnection(host, port, address, timeout_seconds,
                                   tls=url.scheme == "https")
    # A slow server could stretch every read to the socket timeout; the watchdog ends
    # the whole exchange when the time is up.
    watchdog = threading.Timer(timeout_seconds, connection.abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.request("GET", target, headers={"User-Agent": USER_AGENT, "Accept": "*/*",
                                                   "Connection": "close"})
        response = connection.getresponse()
        body = response.read(MAX_BODY_BYTES)
        if connection.aborted:
            # The watchdog cut a slow body short: what arrived is not the whole answer.
            raise NetworkError("timed out", timed_out=True)
        return FetchedResponse(status=response.status,
                               location=response.getheader("Location", "") or "",
                               content_type=response.getheader("Content-Type", "") or "",
                               body=body)
    except ssl.SSLError as error:
        if connection.aborted:
            raise NetworkError("timed out", timed_out=True) from None
        raise ProtocolError(f"the TLS handshake failed ({error.reason or error})") from None
    except (TimeoutError, socket.timeout):
        raise NetworkError("timed out", timed_out=True) from None
    except ConnectionRefusedError:
        raise NetworkError("refused the connection") from None
    except (http.client.RemoteDisconnected, http.client.IncompleteRead, ConnectionResetError,
            BrokenPipeError):
        if connection.aborted:
            raise NetworkError("timed out", timed_out=True) from None
        raise NetworkError("closed the connection without an answer") from None
    except http.client.HTTPException as error:
        if connection.aborted:
            raise NetworkError("timed out", timed_out=True) from None
        raise ProtocolError(f"sent a malformed HTTP response ({type(error).__name__})") from None
    except OSError as error:
        if connection.aborted:
            raise NetworkError("timed out", timed_out=True) from None
        raise NetworkError(f"could not be reached ({error.strerror or error})") from None
    finally:
        watchdog.cancel()
        connection.close()


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to a fixed address, whatever the URL's host resolves to."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float, *,
                 tls: bool) -> None:
        super().__init__(host, port, timeout=timeout)
        self.default_port = 443 if tls else 80  # so the Host header omits the usual port
        self._address = address
        self._tls = tls
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self.aborted = False

    def connect(self) -> None:
        sock = socket.create_connection((str(self._address), self.port), self.timeout)
        if self._tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=self.host)
        with self._lock:
            self.sock = sock
            # http.client drops self.sock once a response says "Connection: close" and
            # keeps reading through its own file object, so abort needs this reference.
            self._socket = sock
            if self.aborted:
                self._shutdown()

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._socket is not None:
            try:
                self._socket.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
