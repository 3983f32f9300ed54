"""Credentials for the demo and the tests: master keys, bearer tokens, the callers file."""

from __future__ import annotations

import base64
import collections
import os
import secrets
from pathlib import Path
from typing import Any

import grpc

from service.api.principals import token_sha256


def new_master_key() -> str:
    """Return 32 random bytes in base64, the form CERTSVC_MASTER_KEY takes."""
    return base64.b64encode(os.urandom(32)).decode()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def write_callers_file(path: Path, principals: list[dict[str, Any]]) -> Path:
    """Write a CERTSVC_API_TOKENS_FILE; each principal may give plain "tokens" to hash."""
    lines = []
    for principal in principals:
        hashes = [token_sha256(token) for token in principal.get("tokens", [])]
        lines.append("[[principal]]")
        lines.append(f"name = {_toml(principal['name'])}")
        lines.append(f"apps = {_toml(principal.get('apps', '*'))}")
        lines.append(f"read_private_keys = {_toml(principal.get('read_private_keys', False))}")
        lines.append(f"token_sha256 = {_toml(hashes)}")
        lines.append(f"client_certificate_names = "
                     f"{_toml(principal.get('client_certificate_names', []))}")
        lines.append("")
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    return path


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                         "compression")), grpc.ClientCallDetails):
    pass


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds an authorization header to every call of a channel."""

    def __init__(self, token: str) -> None:
        self.header = ("authorization", f"Bearer {token}")

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [*(details.metadata or ()), self.header]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._details(client_call_details), request)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._details(client_call_details), request_iterator)


def with_bearer_token(channel: grpc.Channel, token: str) -> grpc.Channel:
    """Return a channel whose calls carry 'authorization: Bearer <token>'."""
    return grpc.intercept_channel(channel, _BearerToken(token))
