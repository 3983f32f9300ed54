"""Authentication of gRPC callers: bearer tokens and client certificates."""

from __future__ import annotations

import logging

import grpc

from service.api.principals import CallerRegistry, load_callers
from service.callers import DEVELOPMENT_OPERATOR, Caller
from service.config import ConfigError, Settings
from service.errors import Unauthenticated

logger = logging.getLogger(__name__)

# Longest authorization header value accepted; real tokens are about 43 characters.
MAX_AUTHORIZATION_LENGTH = 512


class Authenticator:
    """Turns a call's credentials into a Caller.

    A bearer token, when sent, decides who the caller is. Without one, a client
    certificate (mutual TLS) does. Without either, only development mode admits the
    call, as the development operator.
    """

    def __init__(self, settings: Settings, registry: CallerRegistry | None = None) -> None:
        self._dev_insecure = settings.dev_insecure
        if registry is None:
            registry = (load_callers(settings.api_tokens_file) if settings.api_tokens_file
                        else CallerRegistry.empty())
            for warning in registry.warnings:
                logger.warning("%s", warning)
        self.registry = registry

    def admits_anyone(self, settings: Settings, registry: CallerRegistry) -> bool:
        """Return whether some caller could authenticate with registry."""
        return self._dev_insecure or bool(registry.by_token_sha256) or bool(
            settings.tls_client_ca and registry.by_certificate_name)

    def check_usable(self, settings: Settings) -> None:
        """Raise ConfigError when no caller could ever authenticate."""
        if not self.admits_anyone(settings, self.registry):
            raise ConfigError(
                "no caller can authenticate: list principals with token hashes in "
                "CERTSVC_API_TOKENS_FILE, or set CERTSVC_TLS_CLIENT_CA and map client "
                "certificate names there; for development only, set CERTSVC_DEV_INSECURE=1"
            )

    def authenticate(self, context: grpc.ServicerContext) -> Caller:
        headers = [value for key, value in context.invocation_metadata() or ()
                   if key == "authorization"]
        if headers:
            return self._from_authorization(headers)
        names = _certificate_names(context)
        if names:
            caller = self.registry.caller_for_certificate(names)
            if caller is None:
                raise Unauthenticated(
                    f"the client certificate ({', '.join(names)}) is not mapped to exactly one "
                    "principal in CERTSVC_API_TOKENS_FILE; ask the operator to add its name")
            return caller
        if self._dev_insecure:
            return DEVELOPMENT_OPERATOR
        raise Unauthenticated(
            "this call carries no credentials; send an 'authorization: Bearer <token>' header "
            "or connect with a client certificate"
        )

    def _from_authorization(self, headers: list[str | bytes]) -> Caller:
        if len(headers) > 1:
            raise Unauthenticated("send one authorization header, not several")
        value = headers[0]
        if isinstance(value, bytes) or len(value) > MAX_AUTHORIZATION_LENGTH:
            raise Unauthenticated(
                f"the authorization header is malformed or longer than "
                f"{MAX_AUTHORIZATION_LENGTH} characters; send 'Bearer <token>'")
        scheme, _, token = value.strip().partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and not token:
            # As when a shell variable that should hold the token is unset.
            raise Unauthenticated("the authorization header carries an empty bearer token; "
                                  "send 'Bearer <token>', or in development mode leave the "
                                  "header out")
        if scheme.lower() != "bearer":
            raise Unauthenticated("the authorization header must be 'Bearer <token>'")
        caller = self.registry.caller_for_token(token)
        if caller is None:
            raise Unauthenticated("the bearer token is not valid; check the token or ask the "
                                  "operator for a new one")
        return caller


def _certificate_names(context: grpc.ServicerContext) -> list[str]:
    """Return the names of a verified client certificate that can map to a principal.

    DNS names come as they are and URIs with their scheme (spiffe://...), so a URI
    entry cannot pass for the host name it contains. The common name counts only when
    the certificate has no subjectAltName at all, as for TLS servers (RFC 6125).
    """
    auth = context.auth_context()
    if auth.get("transport_security_type") != [b"ssl"]:
        return []
    dns_names = [name.decode(errors="replace") for name in auth.get("peer_dns", [])]
    uris = [uri.decode(errors="replace") for uri in auth.get("peer_uri", [])]
    names = dns_names + [uri for uri in uris if "://" in uri]
    if not auth.get("x509_subject_alternative_name"):
        names += [name.decode(errors="replace") for name in auth.get("x509_common_name", [])]
    return names
