"""Names of the Redis keys and RQ queues that the api, the workers and the responder share.

Redis holds only what can be rebuilt from Postgres or is short-lived: http-01 key
authorizations, self-check bodies and mirrored Force HTTPS flags.
"""

from __future__ import annotations

# How long a key authorization stays in Redis; an order's authorizations are answered
# and validated well within this time.
HTTP01_TOKEN_TTL_SECONDS = 3600
# The self-check path's last segment, served by the responder with a per-host body.
SELF_CHECK_TOKEN = "_g_selfcheck_"
SELF_CHECK_BODY_TTL_SECONDS = 7 * 24 * 3600


class RedisKeys:
    """Key names under one prefix (CERTSVC_REDIS_PREFIX)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def http01(self, token: str) -> str:
        """Key whose value is "<hostname> <key authorization>" for an http-01 token."""
        return f"{self.prefix}:http01:{token}"

    def http01_tokens_of(self, hostname: str) -> str:
        """Set of the http-01 tokens written for a hostname, so they can be deleted with it."""
        return f"{self.prefix}:http01-tokens:{hostname}"

    def self_check_body(self, hostname: str) -> str:
        return f"{self.prefix}:selfcheck:{hostname}"

    def force_https(self, hostname: str) -> str:
        """Key that exists (value "1") while the responder redirects the hostname to HTTPS."""
        return f"{self.prefix}:forcehttps:{hostname}"

    @property
    def force_https_mirror_marker(self) -> str:
        """Key written after each full rebuild of the Force HTTPS mirror; its absence means
        Redis lost the mirror (a restart without persistence) and it needs a rebuild."""
        return f"{self.prefix}:forcehttps-mirror-built"

    @property
    def issuance_queue(self) -> str:
        """The RQ queue of issuance jobs."""
        return f"{self.prefix}-issuance"


def http01_value(hostname: str, key_authorization: str) -> str:
    """Encode what the responder needs for a token: the host it belongs to and the body."""
    return f"{hostname} {key_authorization}"


def parse_http01_value(value: str) -> tuple[str, str]:
    """Split a stored http-01 value into (hostname, key authorization)."""
    hostname, _, key_authorization = value.partition(" ")
    return hostname, key_authorization
