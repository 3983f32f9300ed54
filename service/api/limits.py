"""Size limits on requests, checked on every call before an RPC method runs.

Every string field has a limit: the ones below by field name, any other field the
default. A new field that needs more room gets an entry here; without one it is
capped at DEFAULT_STRING_LIMIT characters.
"""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from service.errors import FieldViolation, InvalidArgument
from service.validation.pem import MAX_FIELD_KIB as MAX_UPLOAD_FIELD_KIB

# A serialized request above this many bytes is rejected with INVALID_ARGUMENT. The
# transport refuses messages above service.api.server.MAX_MESSAGE_BYTES by itself
# (RESOURCE_EXHAUSTED) before any of this runs.
MAX_REQUEST_BYTES = 1024 * 1024
# All metadata (headers) of one call, names and values.
MAX_METADATA_BYTES = 8 * 1024
DEFAULT_STRING_LIMIT = 1024
MAX_REPEATED_ITEMS = 1000

# Characters per field, by field name.
STRING_LIMITS = {
    # 253 for the name, plus a trailing dot.
    "hostname": 254,
    "app_id": 128,
    "id": 64,
    "page_token": 512,
    # UploadCertificate checks these against its own, lower limit (256 KiB) with advice
    # on what to paste; here they are only bounded by the request size.
    "certificate_chain_pem": MAX_REQUEST_BYTES,
    "private_key_pem": MAX_REQUEST_BYTES,
    "passphrase": 1024,
}

# Control characters other than tab, line feed and carriage return have no place in
# any field; PostgreSQL text cannot even store NUL.
_CONTROL_CHARACTERS = {chr(code) for code in range(32) if chr(code) not in "\t\n\r"} | {"\x7f"}
# Fields that the RPC parses itself and that may arrive mangled (DER, PKCS#12 or UTF-16
# read into a text field): their RPC recognises such input and says how to convert it.
_CONTROL_CHARACTERS_ALLOWED = frozenset({"certificate_chain_pem", "private_key_pem", "passphrase"})


def check_request_size(size: int) -> None:
    if size > MAX_REQUEST_BYTES:
        raise InvalidArgument(
            f"the request is {size} bytes; the limit is {MAX_REQUEST_BYTES} bytes. An "
            f"uploaded certificate chain or private key may have at most "
            f"{MAX_UPLOAD_FIELD_KIB} KiB each, other text fields {DEFAULT_STRING_LIMIT} "
            "characters: send only the certificate, its intermediates and its key")


def check_metadata(metadata: tuple[tuple[str, str | bytes], ...]) -> None:
    size = sum(len(key) + len(value) for key, value in metadata)
    if size > MAX_METADATA_BYTES:
        raise InvalidArgument(f"the call's metadata is {size} bytes; the limit is "
                              f"{MAX_METADATA_BYTES} bytes")


def check_fields(message: Message, prefix: str = "") -> None:
    """Raise InvalidArgument listing every field of message that breaks a limit."""
    violations: list[FieldViolation] = []
    _collect(message, prefix, violations)
    if violations:
        raise InvalidArgument("; ".join(v.description for v in violations), violations)


def _collect(message: Message, prefix: str, violations: list[FieldViolation]) -> None:
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        repeated = field.is_repeated
        values = list(value) if repeated else [value]
        if repeated and len(values) > MAX_REPEATED_ITEMS:
            violations.append(FieldViolation(
                path, f"{path} has {len(values)} items; the limit is {MAX_REPEATED_ITEMS}"))
            continue
        for item in values:
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                _collect(item, f"{path}.", violations)
            elif field.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
                _check_text(path, field.name, item, violations)


def _check_text(path: str, name: str, value: str | bytes,
                violations: list[FieldViolation]) -> None:
    limit = STRING_LIMITS.get(name, DEFAULT_STRING_LIMIT)
    unit = "characters" if isinstance(value, str) else "bytes"
    if len(value) > limit:
        violations.append(FieldViolation(
            path, f"{path} is {len(value)} {unit} long; the limit is {limit} {unit}"))
    elif (isinstance(value, str) and name not in _CONTROL_CHARACTERS_ALLOWED
          and not _CONTROL_CHARACTERS.isdisjoint(value)):
        violations.append(FieldViolation(
            path, f"{path} contains a control character; remove it"))
