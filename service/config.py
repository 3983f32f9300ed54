"""Settings of every certsvc process, read once from CERTSVC_* environment variables."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from service.rate_limits import RateLimit, RateLimitSyntaxError, default_rate_limits, parse_rate_limits
from service.validation.hostname import HostnameError, normalize_hostname

DEV_INSECURE_WARNING = (
    "CERTSVC_DEV_INSECURE is set: development mode, not for production. Calls need no "
    "credentials, and without CERTSVC_MASTER_KEY or CERTSVC_MASTER_KEY_FILE private keys "
    "are sealed with a fixed, publicly known master key."
)


class ConfigError(Exception):
    """A CERTSVC_* variable is missing or malformed; the message names it and the fix."""


# Callers, certificate and key files stay far below this, so a larger file is a wrong path.
MAX_CONFIG_FILE_BYTES = 1024 * 1024


def read_config_file(variable: str, path: Path) -> bytes:
    """Read the file that variable names, raising ConfigError when it cannot be read or is
    larger than MAX_CONFIG_FILE_BYTES."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{variable} ({path}) cannot be read: {error.strerror}") from None
    if len(data) > MAX_CONFIG_FILE_BYTES:
        raise ConfigError(f"{variable} ({path}) is larger than {MAX_CONFIG_FILE_BYTES} bytes, "
                          "more than any credential file")
    return data


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """Typed configuration; field docs name the variable that sets each one."""

    database_url: str = "postgresql://127.0.0.1:5432/certsvc"
    """CERTSVC_DATABASE_URL: Postgres connection string."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """CERTSVC_REDIS_URL: Redis for queues, http-01 tokens and mirrored flags."""
    redis_prefix: str = "certsvc"
    """CERTSVC_REDIS_PREFIX: first part of every Redis key and RQ queue name, so that
    several deployments (or test runs) can share one Redis."""
    grpc_address: str = "127.0.0.1:50051"
    """CERTSVC_GRPC_ADDRESS: host:port of the gRPC api."""
    responder_address: str = "127.0.0.1:5002"
    """CERTSVC_RESPONDER_ADDRESS: host:port of the HTTP-01 responder."""
    metrics_address: str = "127.0.0.1:0"
    """CERTSVC_METRICS_ADDRESS: host:port for Prometheus metrics; port 0 turns them off."""
    acme_directory_url: str = "https://127.0.0.1:14000/dir"
    """CERTSVC_ACME_DIRECTORY_URL: the ACME directory (Let's Encrypt, staging or Pebble)."""
    acme_ca_bundle: Path | None = None
    """CERTSVC_ACME_CA_BUNDLE: extra PEM roots for the ACME server's HTTPS (Pebble)."""
    acme_email: str = ""
    """CERTSVC_ACME_EMAIL: contact address registered with the ACME account."""
    challenge_port: int = 5002
    """CERTSVC_CHALLENGE_PORT: HTTP port that the self-check fetches (Let's Encrypt: 80)."""
    challenge_https_port: int = 443
    """CERTSVC_CHALLENGE_HTTPS_PORT: HTTPS port a self-check redirect may go to."""
    dns_server: tuple[str, int] | None = None
    """CERTSVC_DNS_SERVER: host:port of the resolver for the self-check and CAA."""
    caa_identities: tuple[str, ...] = ("letsencrypt.org",)
    """CERTSVC_CAA_IDENTITIES: comma-separated CA identities a CAA issue record must allow."""
    allow_private_targets: bool = False
    """CERTSVC_ALLOW_PRIVATE_TARGETS: let outgoing fetches reach loopback and private addresses."""
    platform_domain: str = ""
    """CERTSVC_PLATFORM_DOMAIN: the platform's own domain, covered by its wildcard certificate."""
    trust_bundle: Path | None = None
    """CERTSVC_TRUST_BUNDLE: PEM roots that uploaded chains must reach."""
    master_key: bytes | None = None
    """CERTSVC_MASTER_KEY (base64) or CERTSVC_MASTER_KEY_FILE: 32-byte key sealing private keys."""
    previous_master_keys: tuple[bytes, ...] = ()
    """CERTSVC_PREVIOUS_MASTER_KEYS (comma-separated base64) or CERTSVC_PREVIOUS_MASTER_KEYS_FILE
    (one per line): older master keys that still open stored values but never seal new ones."""
    api_tokens_file: Path | None = None
    """CERTSVC_API_TOKENS_FILE: callers and their permissions."""
    tls_cert: Path | None = None
    """CERTSVC_TLS_CERT: PEM certificate chain of the api's TLS listener."""
    tls_key: Path | None = None
    """CERTSVC_TLS_KEY: PEM private key of the api's TLS listener."""
    tls_client_ca: Path | None = None
    """CERTSVC_TLS_CLIENT_CA: PEM roots for client certificates (mutual TLS)."""
    open_reflection: bool = True
    """CERTSVC_OPEN_REFLECTION: serve gRPC server reflection (the schema only) without credentials."""
    dev_insecure: bool = False
    """CERTSVC_DEV_INSECURE: development mode; never in production."""
    responder_max_connections: int = 4096
    """CERTSVC_RESPONDER_MAX_CONNECTIONS: open connections one responder process accepts."""
    responder_max_connections_per_address: int = 128
    """CERTSVC_RESPONDER_MAX_CONNECTIONS_PER_ADDRESS: open connections one responder process
    accepts from one client IP address."""
    responder_head_timeout_seconds: float = 10.0
    """CERTSVC_RESPONDER_HEAD_TIMEOUT_SECONDS: time a client has to send a complete request head."""
    responder_idle_timeout_seconds: float = 30.0
    """CERTSVC_RESPONDER_IDLE_TIMEOUT_SECONDS: time a kept-alive connection may stay idle."""
    log_level: str = "INFO"
    """CERTSVC_LOG_LEVEL: level of the root logger (DEBUG, INFO, WARNING, ERROR)."""
    check_deadline_seconds: float = 15.0
    """CERTSVC_CHECK_DEADLINE_SECONDS: time limit of one self-check, redirects included."""
    retry_first_delay_seconds: float = 60.0
    """CERTSVC_RETRY_FIRST_DELAY_SECONDS: wait after a first failed issuance attempt; each
    further failure doubles it."""
    retry_max_delay_seconds: float = 3600.0
    """CERTSVC_RETRY_MAX_DELAY_SECONDS: ceiling of the wait between two attempts."""
    retry_max_attempts: int = 8
    """CERTSVC_RETRY_MAX_ATTEMPTS: attempts of one issuance before it is FAILED."""
    retry_after_max_seconds: float = 6 * 3600.0
    """CERTSVC_RETRY_AFTER_MAX_SECONDS: longest Retry-After from the CA that is honoured."""
    acme_rate_limits: tuple[RateLimit, ...] = ()
    """CERTSVC_ACME_RATE_LIMITS: limits certsvc keeps below; by default the published ones
    of a known directory (Let's Encrypt production) and none for any other."""
    renewal_interval_seconds: float = 300.0
    """CERTSVC_RENEWAL_INTERVAL_SECONDS: how often the scheduler looks for certificates due
    for renewal or close to expiry."""
    renewal_max_per_run: int = 500
    """CERTSVC_RENEWAL_MAX_PER_RUN: max renewals that one run of the renewal sweep queues.
    Renewals wait in the same queue as requested certificates, so a larger number lets a
    backlog of renewals delay new certificates longer."""
    recovery_interval_seconds: float = 30.0
    """CERTSVC_RECOVERY_INTERVAL_SECONDS: how often the scheduler looks for issuances whose
    job was lost."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables, raising ConfigError on bad values."""
        env = _Environment(os.environ if environ is None else environ)
        return cls(
            database_url=env.text("CERTSVC_DATABASE_URL", cls.database_url),
            redis_url=env.text("CERTSVC_REDIS_URL", cls.redis_url),
            redis_prefix=env.text("CERTSVC_REDIS_PREFIX", cls.redis_prefix),
            grpc_address=env.address("CERTSVC_GRPC_ADDRESS", cls.grpc_address),
            responder_address=env.address("CERTSVC_RESPONDER_ADDRESS", cls.responder_address),
            metrics_address=env.address("CERTSVC_METRICS_ADDRESS", cls.metrics_address),
            acme_directory_url=env.text("CERTSVC_ACME_DIRECTORY_URL", cls.acme_directory_url),
            acme_ca_bundle=env.file("CERTSVC_ACME_CA_BUNDLE"),
            acme_email=env.text("CERTSVC_ACME_EMAIL", cls.acme_email),
            challenge_port=env.port("CERTSVC_CHALLENGE_PORT", cls.challenge_port),
            challenge_https_port=env.port("CERTSVC_CHALLENGE_HTTPS_PORT", cls.challenge_https_port),
            dns_server=env.dns_server("CERTSVC_DNS_SERVER"),
            caa_identities=env.names("CERTSVC_CAA_IDENTITIES", cls.caa_identities),
            allow_private_targets=env.flag("CERTSVC_ALLOW_PRIVATE_TARGETS"),
            platform_domain=env.platform_domain("CERTSVC_PLATFORM_DOMAIN"),
            trust_bundle=env.file("CERTSVC_TRUST_BUNDLE"),
            master_key=env.master_key(),
            previous_master_keys=env.previous_master_keys(),
            api_tokens_file=env.file("CERTSVC_API_TOKENS_FILE"),
            tls_cert=env.file("CERTSVC_TLS_CERT"),
            tls_key=env.file("CERTSVC_TLS_KEY"),
            tls_client_ca=env.file("CERTSVC_TLS_CLIENT_CA"),
            open_reflection=env.flag("CERTSVC_OPEN_REFLECTION", default=True),
            dev_insecure=env.flag("CERTSVC_DEV_INSECURE"),
            responder_max_connections=env.count("CERTSVC_RESPONDER_MAX_CONNECTIONS",
                                                cls.responder_max_connections),
            responder_max_connections_per_address=env.count(
                "CERTSVC_RESPONDER_MAX_CONNECTIONS_PER_ADDRESS",
                cls.responder_max_connections_per_address),
            responder_head_timeout_seconds=env.seconds("CERTSVC_RESPONDER_HEAD_TIMEOUT_SECONDS",
                                                       cls.responder_head_timeout_seconds),
            responder_idle_timeout_seconds=env.seconds("CERTSVC_RESPONDER_IDLE_TIMEOUT_SECONDS",
                                                       cls.responder_idle_timeout_seconds),
            log_level=env.choice("CERTSVC_LOG_LEVEL", cls.log_level,
                                 ("DEBUG", "INFO", "WARNING", "ERROR")),
            check_deadline_seconds=env.seconds("CERTSVC_CHECK_DEADLINE_SECONDS",
                                               cls.check_deadline_seconds),
            retry_first_delay_seconds=env.seconds("CERTSVC_RETRY_FIRST_DELAY_SECONDS",
                                                  cls.retry_first_delay_seconds),
            retry_max_delay_seconds=env.seconds("CERTSVC_RETRY_MAX_DELAY_SECONDS",
                                                cls.retry_max_delay_seconds),
            retry_max_attempts=env.count("CERTSVC_RETRY_MAX_ATTEMPTS", cls.retry_max_attempts),
            retry_after_max_seconds=env.seconds("CERTSVC_RETRY_AFTER_MAX_SECONDS",
                                                cls.retry_after_max_seconds),
            acme_rate_limits=env.rate_limits(
                "CERTSVC_ACME_RATE_LIMITS",
                env.text("CERTSVC_ACME_DIRECTORY_URL", cls.acme_directory_url)),
            renewal_interval_seconds=env.seconds("CERTSVC_RENEWAL_INTERVAL_SECONDS",
                                                 cls.renewal_interval_seconds),
            renewal_max_per_run=env.count("CERTSVC_RENEWAL_MAX_PER_RUN", cls.renewal_max_per_run),
            recovery_interval_seconds=env.seconds("CERTSVC_RECOVERY_INTERVAL_SECONDS",
                                                  cls.recovery_interval_seconds),
        )


class _Environment:
    """Typed reads of environment variables with messages that name the variable."""

    _TRUE = {"1", "true", "yes", "on"}
    _FALSE = {"", "0", "false", "no", "off"}

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str, default: str) -> str:
        value = self._environ.get(name, "")
        return value if value != "" else default

    def flag(self, name: str, default: bool = False) -> bool:
        value = self._environ.get(name, "").strip().lower()
        if value == "":
            return default
        if value in self._TRUE:
            return True
        if value in self._FALSE:
            return False
        raise ConfigError(f"{name}={value!r} is not a boolean; use 1 or 0")

    def count(self, name: str, default: int) -> int:
        value = self._environ.get(name, "").strip()
        if value == "":
            return default
        if not value.isdigit() or int(value) < 1:
            raise ConfigError(f"{name}={value!r} is not a positive whole number")
        return int(value)

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default).upper()
        if value not in allowed:
            raise ConfigError(f"{name}={value!r} is invalid; use one of {', '.join(allowed)}")
        return value

    def port(self, name: str, default: int) -> int:
        value = self._environ.get(name, "")
        if value == "":
            return default
        if not value.isdigit() or not 0 < int(value) < 65536:
            raise ConfigError(f"{name}={value!r} is not a TCP port (1-65535)")
        return int(value)

    def seconds(self, name: str, default: float) -> float:
        value = self._environ.get(name, "")
        if value == "":
            return default
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if not seconds > 0:
            raise ConfigError(f"{name}={value!r} is not a positive number of seconds")
        return seconds

    def rate_limits(self, name: str, directory_url: str) -> tuple[RateLimit, ...]:
        value = self._environ.get(name, "")
        if value.strip() == "":
            return default_rate_limits(directory_url)
        try:
            return parse_rate_limits(value)
        except RateLimitSyntaxError as error:
            raise ConfigError(f"{name}: {error}") from None

    def address(self, name: str, default: str) -> str:
        value = self.text(name, default)
        host, separator, port = value.rpartition(":")
        if not separator or not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(f"{name}={value!r} is not host:port (for example 127.0.0.1:8080)")
        return value

    def dns_server(self, name: str) -> tuple[str, int] | None:
        value = self._environ.get(name, "")
        if value == "":
            return None
        host, separator, port = value.rpartition(":")
        if not separator:
            host, port = value, "53"
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"{name}={value!r} is not host:port (for example 127.0.0.1:8053)")
        return host, int(port)

    def names(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._environ.get(name)
        if value is None or value.strip() == "":
            return default
        return tuple(part.strip().lower() for part in value.split(",") if part.strip())

    def platform_domain(self, name: str) -> str:
        value = self._environ.get(name, "").strip()
        if value == "":
            return ""
        try:
            # A hosting platform's own domain is often on the Public Suffix List
            # (meteorapp.com is), because many customers' names live under it.
            hostname = normalize_hostname(value.removeprefix("*."), allow_public_suffix=True)
        except HostnameError as error:
            raise ConfigError(f"{name}={value!r} is not a domain name: {error}") from None
        if hostname.wildcard:
            raise ConfigError(f"{name}={value!r}: name the domain without '*.', as in "
                              "meteorapp.com")
        return hostname.ascii

    def file(self, name: str) -> Path | None:
        value = self._environ.get(name, "")
        if value == "":
            return None
        path = Path(value)
        if not path.is_file():
            raise ConfigError(f"{name}={value!r}: no such file")
        return path

    def master_key(self) -> bytes | None:
        encoded = self._environ.get("CERTSVC_MASTER_KEY", "").strip()
        source = "CERTSVC_MASTER_KEY"
        key_file = self.file("CERTSVC_MASTER_KEY_FILE")
        if encoded and key_file:
            raise ConfigError("set CERTSVC_MASTER_KEY or CERTSVC_MASTER_KEY_FILE, not both")
        if key_file:
            encoded = key_file.read_text().strip()
            source = f"CERTSVC_MASTER_KEY_FILE ({key_file})"
        if not encoded:
            return None
        return decode_master_key(encoded, source)

    def previous_master_keys(self) -> tuple[bytes, ...]:
        listed = self._environ.get("CERTSVC_PREVIOUS_MASTER_KEYS", "").strip()
        key_file = self.file("CERTSVC_PREVIOUS_MASTER_KEYS_FILE")
        if listed and key_file:
            raise ConfigError(
                "set CERTSVC_PREVIOUS_MASTER_KEYS or CERTSVC_PREVIOUS_MASTER_KEYS_FILE, not both")
        if key_file:
            entries = key_file.read_text().split()
            source = f"CERTSVC_PREVIOUS_MASTER_KEYS_FILE ({key_file})"
        else:
            entries = [entry.strip() for entry in listed.split(",") if entry.strip()]
            source = "CERTSVC_PREVIOUS_MASTER_KEYS"
        return tuple(decode_master_key(entry, f"entry {number} of {source}")
                     for number, entry in enumerate(entries, start=1))


def decode_master_key(encoded: str, source: str) -> bytes:
    """Decode a base64 master key, raising ConfigError unless it is 32 bytes."""
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ConfigError(
            f"{source} is not valid base64; generate a key with: "
            "python -c 'import os, base64; print(base64.b64encode(os.urandom(32)).decode())'"
        ) from None
    if len(key) != 32:
        raise ConfigError(f"{source} decodes to {len(key)} bytes; a master key is 32 bytes")
    return key
