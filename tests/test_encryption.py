"""Sealing of private keys with AES-256-GCM bound to their row."""

from __future__ import annotations

import os

import pytest

from service.encryption import Keyring, UnsealError


def test_round_trip() -> None:
    keyring = Keyring(os.urandom(32))

    sealed = keyring.seal(b"private key bytes", b"domain/1")

    assert b"private key bytes" not in sealed
    assert keyring.unseal(sealed, b"domain/1") == b"private key bytes"


def test_other_row_fails_authentication() -> None:
    keyring = Keyring(os.urandom(32))
    sealed = keyring.seal(b"private key bytes", b"domain/1")

    with pytest.raises(UnsealError, match="another row"):
        keyring.unseal(sealed, b"domain/2")


def test_unknown_master_key_is_named() -> None:
    sealed = Keyring(os.urandom(32)).seal(b"private key bytes", b"domain/1")

    with pytest.raises(UnsealError, match="not configured"):
        Keyring(os.urandom(32)).unseal(sealed, b"domain/1")


def test_previous_key_still_opens() -> None:
    old, new = os.urandom(32), os.urandom(32)
    sealed = Keyring(old).seal(b"private key bytes", b"domain/1")
    keyring = Keyring(new, previous=(old,))

    assert keyring.unseal(sealed, b"domain/1") == b"private key bytes"
    assert not keyring.sealed_with_primary(sealed)
    assert keyring.sealed_with_primary(keyring.seal(b"x", b"domain/1"))


def test_truncated_value_is_rejected() -> None:
    keyring = Keyring(os.urandom(32))

    with pytest.raises(UnsealError, match="truncated"):
        keyring.unseal(b"\x01abc", b"domain/1")
