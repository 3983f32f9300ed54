"""Secrets that no log may contain, and the scan of a test run's logs for them.

Tests register what they create (tokens, master keys, key authorizations); at the
end of the run conftest adds the private keys and ACME account thumbprints stored in
the run's database, then scans every *.log file under the run's temporary folder.
The account thumbprint is the second half of every key authorization, so finding it
finds any key authorization. Pebble's own logs are left out: it is the CA and
legitimately logs what it validated.
"""

from __future__ import annotations

import base64
import logging
import re
from pathlib import Path

import josepy
import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.sealed_columns import SEALED_COLUMNS
from service.encryption import Keyring, UnsealError

logger = logging.getLogger(__name__)

# A PEM private key of any kind ("BEGIN PRIVATE KEY", "BEGIN EC PRIVATE KEY"...): the
# armour line, optional headers, then base64. Messages that only quote the armour line
# as advice do not match.
PEM_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----\r?\n(?:[^\n]*: [^\n]*\r?\n)*"
                       r"\r?\n?[A-Za-z0-9+/]{16}")
# Secrets shorter than this could match by chance.
_MIN_SECRET_LENGTH = 16

watched: dict[str, str] = {}


def watch(description: str, secret: str) -> None:
    """Register a secret that must not appear in any log of this run."""
    if len(secret) >= _MIN_SECRET_LENGTH:
        watched[description] = secret


def watch_private_key(description: str, key_der: bytes) -> None:
    """Register the secret parts of a PKCS#8 DER private key."""
    for part, secret in secret_parts(description, key_der).items():
        watch(part, secret)


def secret_parts(description: str, key_der: bytes) -> dict[str, str]:
    """Return text forms of a private key's secret that a careless log line could carry."""
    key = serialization.load_der_private_key(key_der, password=None)
    if isinstance(key, ec.EllipticCurvePrivateKey):
        secret_number = key.private_numbers().private_value
    elif isinstance(key, rsa.RSAPrivateKey):
        secret_number = key.private_numbers().d
    else:
        secret_number = None
    parts = {}
    if secret_number is not None:
        parts[f"{description} (secret number in hex)"] = format(secret_number, "x")[:40]
    # The second line of the PEM form; for an EC key it covers the secret scalar.
    parts[f"{description} (PEM body)"] = base64.b64encode(key_der).decode()[64:128]
    return parts


def watch_stored_keys(database_url: str, keyring: Keyring) -> int:
    """Register every private key and ACME account thumbprint stored in a database.

    Returns how many sealed values could not be opened with keyring (and so were not
    registered).
    """
    unopened = 0
    with psycopg.connect(database_url) as connection:
        for column in SEALED_COLUMNS:
            rows = connection.execute(
                f"SELECT id, {column.owner_column}, {column.column} FROM {column.table} "
                f"WHERE {column.column} IS NOT NULL").fetchall()
            for row_id, owner_id, sealed in rows:
                try:
                    key_der = keyring.unseal(bytes(sealed), column.associated_data(owner_id))
                except UnsealError:
                    unopened += 1
                    continue
                watch_private_key(f"{column.table}.{column.column} of row {row_id}", key_der)
                if column.table == "acme_accounts":
                    key = serialization.load_der_private_key(key_der, password=None)
                    thumbprint = josepy.encode_b64jose(josepy.JWKEC(key=key).thumbprint())
                    watch(f"thumbprint of ACME account {row_id} (in every key authorization)",
                          thumbprint)
    return unopened


def log_files(root: Path) -> list[Path]:
    """Return certsvc's log files under root: every *.log outside Pebble's folders."""
    return sorted(path for path in root.rglob("*.log")
                  if not any(part.startswith("pebble") for part in path.relative_to(root).parts))


def find_leaks(files: list[Path], secrets: dict[str, str]) -> list[str]:
    """Describe each file that contains a PEM private key or a watched secret.

    The descriptions name the secret, never quote it.
    """
    leaks = []
    for path in files:
        text = path.read_text(errors="replace")
        if PEM_BLOCK.search(text):
            leaks.append(f"{path}: a PEM private key block")
        for description, secret in secrets.items():
            if secret in text:
                leaks.append(f"{path}: {description}")
    return leaks
