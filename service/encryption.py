"""Sealing of private keys at rest with AES-256-GCM under the master key.

A sealed value is: version byte (1), key id (8 bytes, a SHA-256 prefix of the master
key), nonce (12 bytes), then ciphertext with its GCM tag. The caller passes associated
data naming the row the value belongs to (a domain or account id), so a value copied
onto another row fails to open.
"""

from __future__ import annotations

import hashlib
import logging
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.config import ConfigError, Settings

logger = logging.getLogger(__name__)

_VERSION = b"\x01"
_KEY_ID_SIZE = 8
_NONCE_SIZE = 12
_HEADER_SIZE = 1 + _KEY_ID_SIZE + _NONCE_SIZE

# Development mode seals with this key so that the api and workers of one machine agree
# without configuration. It is public: data sealed under it is not secret.
DEVELOPMENT_MASTER_KEY = hashlib.sha256(b"certsvc development master key").digest()


class UnsealError(Exception):
    """A sealed value cannot be opened: unknown master key, or data that was altered or moved."""


def key_id(master_key: bytes) -> bytes:
    """Return the 8-byte identifier stored with each value sealed under master_key."""
    return hashlib.sha256(master_key).digest()[:_KEY_ID_SIZE]


class Keyring:
    """The master key that seals new values, plus older keys that still open old ones."""

    def __init__(self, primary: bytes, previous: tuple[bytes, ...] = ()) -> None:
        self._primary_id = key_id(primary)
        self._ciphers = {key_id(key): AESGCM(key) for key in (*previous, primary)}
        self.previous_key_ids = tuple(key_id(key).hex() for key in previous
                                      if key_id(key) != self._primary_id)

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        """Build the keyring, raising ConfigError when no master key is configured."""
        if settings.master_key is not None:
            return cls(settings.master_key, settings.previous_master_keys)
        if settings.dev_insecure:
            logger.warning("sealing private keys with the development master key")
            return cls(DEVELOPMENT_MASTER_KEY, settings.previous_master_keys)
        raise ConfigError(
            "no master key: set CERTSVC_MASTER_KEY to 32 random bytes in base64 (or "
            "CERTSVC_MASTER_KEY_FILE to a file containing it), or set CERTSVC_DEV_INSECURE=1 "
            "for development"
        )

    @property
    def primary_key_id(self) -> str:
        return self._primary_id.hex()

    @property
    def primary_key_id_bytes(self) -> bytes:
        return self._primary_id

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        """Encrypt plaintext under the primary key, bound to associated_data."""
        nonce = os.urandom(_NONCE_SIZE)
        ciphertext = self._ciphers[self._primary_id].encrypt(nonce, plaintext, associated_data)
        return _VERSION + self._primary_id + nonce + ciphertext

    def unseal(self, sealed: bytes, associated_data: bytes) -> bytes:
        """Decrypt a sealed value, raising UnsealError when it cannot be opened."""
        if len(sealed) <= _HEADER_SIZE or sealed[:1] != _VERSION:
            raise UnsealError("the sealed value is truncated or of an unknown version")
        sealed_key_id = sealed[1:1 + _KEY_ID_SIZE]
        cipher = self._ciphers.get(sealed_key_id)
        if cipher is None:
            raise UnsealError(
                f"the value was sealed under master key {sealed_key_id.hex()}, which is not "
                "configured; set the master key that was in use when it was stored"
            )
        nonce = sealed[1 + _KEY_ID_SIZE:_HEADER_SIZE]
        try:
            return cipher.decrypt(nonce, sealed[_HEADER_SIZE:], associated_data)
        except InvalidTag:
            raise UnsealError(
                "the sealed value failed authentication: it was altered or belongs to another row"
            ) from None

    def sealed_with_primary(self, sealed: bytes) -> bool:
        """Return whether a sealed value already uses the primary key."""
        return sealed[1:1 + _KEY_ID_SIZE] == self._primary_id
