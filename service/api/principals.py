"""The callers file (CERTSVC_API_TOKENS_FILE): principals, their credentials and permissions.

The file is TOML with one [[principal]] table per caller:

    [[principal]]
    name = "dashboard"
    apps = ["app-1", "app-2"]        # or "*" for every app (an operator)
    read_private_keys = false
    token_sha256 = ["<64 hex digits>"]
    client_certificate_names = ["dashboard.internal.example"]

Tokens are stored as the SHA-256 of the token text. Tokens are random strings of 32
bytes or more, so a fast hash without salt is enough: nobody can guess such a token
from its hash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import tomllib
from pathlib import Path

from service.callers import Caller
from service.config import ConfigError, read_config_file
from service.domains import parse_app_id
from service.errors import InvalidArgument

_HASH = re.compile(r"^[0-9a-f]{64}$")
_KEYS = {"name", "apps", "read_private_keys", "token_sha256", "client_certificate_names"}


def token_sha256(token: str) -> str:
    """Return the hash under which the callers file lists a token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class CallerRegistry:
    """Lookup tables from credentials to callers."""

    by_token_sha256: dict[str, Caller]
    by_certificate_name: dict[str, Caller]
    warnings: list[str] = dataclasses.field(default_factory=list)
    """Problems that leave the file usable, for the reader to log once."""

    @classmethod
    def empty(cls) -> CallerRegistry:
        return cls({}, {})

    def caller_for_token(self, token: str) -> Caller | None:
        return self.by_token_sha256.get(token_sha256(token))

    def caller_for_certificate(self, names: list[str]) -> Caller | None:
        """Return the one principal mapped to any of a client certificate's names."""
        found = {self.by_certificate_name[name] for name in names if name in self.by_certificate_name}
        if len(found) != 1:
            return None
        return found.pop()


def load_callers(path: Path) -> CallerRegistry:
    """Read the callers file, raising ConfigError that names the entry at fault."""
    source = f"CERTSVC_API_TOKENS_FILE ({path})"
    data = read_config_file("CERTSVC_API_TOKENS_FILE", path)
    try:
        document = tomllib.loads(data.decode())
    except UnicodeDecodeError as error:
        raise ConfigError(f"{source} is not UTF-8 text: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source} is not valid TOML: {error}") from None
    entries = document.get("principal", [])
    unknown = set(document) - {"principal"}
    if unknown or not isinstance(entries, list):
        raise ConfigError(f"{source} may contain only [[principal]] tables; found "
                          f"{', '.join(sorted(unknown)) or 'a single [principal] table'}")

    registry = CallerRegistry.empty()
    names: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        caller, hashes, certificate_names = _parse_principal(entry, f"{source}, principal {number}")
        if caller.name in names:
            raise ConfigError(f"{source}: principal {caller.name!r} is listed twice")
        names.add(caller.name)
        if not hashes and not certificate_names:
            # Deleting a principal's last token is how a token gets revoked in a hurry.
            registry.warnings.append(
                f"{source}, principal {number} ({caller.name}) has neither token_sha256 nor "
                "client_certificate_names, so nobody can call as it")
        for digest in hashes:
            if digest in registry.by_token_sha256:
                raise ConfigError(f"{source}: principal {caller.name!r} repeats a token hash "
                                  f"of principal {registry.by_token_sha256[digest].name!r}")
            registry.by_token_sha256[digest] = caller
        for name in certificate_names:
            if name in registry.by_certificate_name:
                raise ConfigError(f"{source}: client certificate name {name!r} is mapped to "
                                  f"both {registry.by_certificate_name[name].name!r} and "
                                  f"{caller.name!r}")
            registry.by_certificate_name[name] = caller
    return registry


def _parse_principal(entry: object, where: str) -> tuple[Caller, list[str], list[str]]:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} is not a table")
    unknown = set(entry) - _KEYS
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}")

    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where} needs a name")
    where = f"{where} ({name})"

    apps = entry.get("apps")
    if apps == "*":
        app_ids = None
    elif isinstance(apps, list) and apps and all(_valid_app_id(app) for app in apps):
        app_ids = frozenset(apps)
    else:
        raise ConfigError(f"{where}: apps must be \"*\" (every app) or a non-empty list of app "
                          "ids")

    read_private_keys = entry.get("read_private_keys", False)
    if not isinstance(read_private_keys, bool):
        raise ConfigError(f"{where}: read_private_keys must be true or false")

    hashes = _string_list(entry, "token_sha256", where)
    for digest in hashes:
        if not _HASH.match(digest):
            # The entry is left out of the message: it may be a token pasted by mistake.
            raise ConfigError(f"{where}: a token_sha256 entry is not 64 lowercase hex digits; "
                              "each entry is the SHA-256 of a token, as printed by "
                              "printf %s \"$TOKEN\" | sha256sum")
    certificate_names = _string_list(entry, "client_certificate_names", where)
    caller = Caller(name=name, app_ids=app_ids, may_read_private_keys=read_private_keys)
    return caller, hashes, certificate_names


def _string_list(entry: dict, key: str, where: str) -> list[str]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ConfigError(f"{where}: {key} must be a list of strings")
    return value


def _valid_app_id(app: object) -> bool:
    if not isinstance(app, str):
        return False
    try:
        parse_app_id(app)
    except InvalidArgument:
        return False
    return True
