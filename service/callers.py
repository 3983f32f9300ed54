"""The authenticated caller of an RPC and the apps whose domains it may see."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Caller:
    """An authenticated principal."""

    name: str
    app_ids: frozenset[str] | None
    """The apps whose domains the caller may see and change; None means every app."""
    may_read_private_keys: bool

    @property
    def is_operator(self) -> bool:
        return self.app_ids is None

    def may_see_app(self, app_id: str) -> bool:
        return self.app_ids is None or app_id in self.app_ids


# The caller of every call in development mode (CERTSVC_DEV_INSECURE).
DEVELOPMENT_OPERATOR = Caller(name="development", app_ids=None, may_read_private_keys=True)
