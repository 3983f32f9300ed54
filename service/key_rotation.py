"""`certsvc rotate-master-key`: re-seal every stored private key under the current master key.

The services keep running meanwhile: every process has the new key as
CERTSVC_MASTER_KEY and the old one in CERTSVC_PREVIOUS_MASTER_KEYS, so it opens
values sealed under either. Each value is replaced in its own transaction, and only
if nobody changed it since it was read, so the command can be interrupted at any
point and run again; a second run finds nothing left to do.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid

import psycopg

from service.config import ConfigError
from service.encryption import DEVELOPMENT_MASTER_KEY, Keyring, UnsealError, key_id
from service.sealed_columns import SEALED_COLUMNS, SealedColumn
from service.store.database import CONNECT_TIMEOUT_SECONDS

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 100
APPLICATION_NAME = "certsvc-rotate-master-key"


@dataclasses.dataclass
class RotationReport:
    resealed: int = 0
    failed: list[str] = dataclasses.field(default_factory=list)
    """Rows whose value could not be opened, as "table id (key id)"."""
    remaining: dict[str, int] = dataclasses.field(default_factory=dict)
    """Values not under the current key after the run, per old key id."""


def count_by_key(connection: psycopg.Connection) -> dict[str, int]:
    """Return how many sealed values each master key id has sealed, over every table."""
    counts: dict[str, int] = {}
    for column in SEALED_COLUMNS:
        rows = connection.execute(
            f"SELECT substring({column.column} from 2 for 8), count(*) FROM {column.table} "
            f"WHERE {column.column} IS NOT NULL GROUP BY 1").fetchall()
        for sealed_key_id, count in rows:
            counts[bytes(sealed_key_id).hex()] = counts.get(bytes(sealed_key_id).hex(), 0) + count
    return counts


def rotate(database_url: str, keyring: Keyring, *, batch_size: int = DEFAULT_BATCH_SIZE
           ) -> RotationReport:
    """Re-seal, under the keyring's primary key, every value sealed under another key."""
    if keyring.primary_key_id == key_id(DEVELOPMENT_MASTER_KEY).hex():
        raise ConfigError("refusing to re-seal keys under the public development master key; "
                          "set CERTSVC_MASTER_KEY to a key of your own")
    report = RotationReport()
    with psycopg.connect(database_url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                         application_name=APPLICATION_NAME) as connection:
        for column in SEALED_COLUMNS:
            _rotate_column(connection, column, keyring, batch_size, report)
        primary = keyring.primary_key_id
        report.remaining = {sealed_key_id: count
                            for sealed_key_id, count in count_by_key(connection).items()
                            if sealed_key_id != primary}
    return report


def _rotate_column(connection: psycopg.Connection, column: SealedColumn, keyring: Keyring,
                   batch_size: int, report: RotationReport) -> None:
    after_id = uuid.UUID(int=0)
    while True:
        rows = connection.execute(
            f"SELECT id, {column.owner_column}, {column.column} FROM {column.table} "
            f"WHERE id > %s AND substring({column.column} from 2 for 8) <> %s "
            "ORDER BY id LIMIT %s",
            (after_id, keyring.primary_key_id_bytes, batch_size)).fetchall()
        if not rows:
            return
        for row_id, owner_id, sealed in rows:
            _reseal(connection, column, keyring, row_id, owner_id, bytes(sealed), report)
        after_id = rows[-1][0]
        logger.info("re-sealed a batch table=%s rows=%d resealed_so_far=%d", column.table,
                    len(rows), report.resealed)


def _reseal(connection: psycopg.Connection, column: SealedColumn, keyring: Keyring,
            row_id: uuid.UUID, owner_id: uuid.UUID, sealed: bytes,
            report: RotationReport) -> None:
    associated_data = column.associated_data(owner_id)
    try:
        plaintext = keyring.unseal(sealed, associated_data)
    except UnsealError as error:
        described = f"{column.table} {row_id} (key id {sealed[1:9].hex()})"
        logger.error("cannot open sealed value table=%s id=%s: %s", column.table, row_id, error)
        report.failed.append(described)
        return
    updated = connection.execute(
        f"UPDATE {column.table} SET {column.column} = %s "
        f"WHERE id = %s AND {column.column} = %s",
        (keyring.seal(plaintext, associated_data), row_id, sealed))
    if updated.rowcount == 1:
        report.resealed += 1
    else:
        # Removed or re-sealed by someone else since it was read; a later run sees it.
        logger.info("row changed while re-sealing, left as it is table=%s id=%s",
                    column.table, row_id)
