"""Every column that stores a value sealed under the master key.

Each sealed value is bound to its row by associated data (service/encryption.py), so a
value copied onto another row fails to open. Writers and `certsvc rotate-master-key`
take the associated data from here, and a test checks that every *_sealed column of
the schema is listed.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable


def certificate_key_associated_data(domain_id: object) -> bytes:
    """Return the associated data that binds a certificate's sealed key to its domain."""
    return f"certsvc/certificate-key/domain/{domain_id}".encode()


def account_key_associated_data(account_id: uuid.UUID) -> bytes:
    """Return the associated data that binds an ACME account's sealed key to its row."""
    return f"certsvc/acme-account-key/{account_id}".encode()


def platform_key_associated_data(certificate_id: uuid.UUID) -> bytes:
    """Return the associated data that binds a platform certificate's sealed key to its row."""
    return f"certsvc/platform-key/{certificate_id}".encode()


def order_key_associated_data(issuance_id: uuid.UUID) -> bytes:
    """Return the associated data that binds an issuance's order key to the issuance row."""
    return f"certsvc/order-key/issuance/{issuance_id}".encode()


@dataclasses.dataclass(frozen=True)
class SealedColumn:
    table: str
    column: str
    owner_column: str
    """The column whose value names the row in the associated data."""
    associated_data: Callable[[uuid.UUID], bytes]


SEALED_COLUMNS = (
    SealedColumn("certificates", "private_key_sealed", "domain_id", certificate_key_associated_data),
    SealedColumn("acme_accounts", "private_key_sealed", "id", account_key_associated_data),
    SealedColumn("platform_certificates", "private_key_sealed", "id", platform_key_associated_data),
    SealedColumn("issuances", "order_key_sealed", "id", order_key_associated_data),
)
