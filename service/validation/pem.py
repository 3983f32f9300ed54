"""Lenient reading of PEM text as users paste it, with a diagnosis of text that is not PEM.

Accepted without comment: CRLF or CR line endings, byte-order marks, zero-width
characters, indentation and a missing final newline. PEM flattened onto one line and
literal "\\n" escapes from JSON are accepted too. So is any text before, between or
after the blocks, such as the "Bag Attributes" lines of `openssl pkcs12` exports.

Rejected with the likely cause: oversized fields, UTF-16 text, binary data (DER,
PKCS#12) that a client read into the string field, and blocks that were cut off or
damaged.

Messages about a private key field name block labels and positions only, never the
content. Pure functions without I/O.
"""

from __future__ import annotations

import base64
import dataclasses
import re

from service.validation.problems import Problem, Rank

MAX_FIELD_BYTES = 256 * 1024
MAX_FIELD_KIB = MAX_FIELD_BYTES // 1024

_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9][A-Z0-9 #]{0,40}?)-----")
# Characters that editors and web pages insert invisibly: byte-order marks and
# zero-width spaces and joiners.
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u200c\u200d\u2060"))
_ESCAPED_NEWLINE = re.compile(r"-----(\\r)?\\n|(\\r)?\\n-----")
_BASE64_TEXT = re.compile(r"^[A-Za-z0-9+/=\s]+$")
_FILE_NAME = re.compile(r"^[\w./\\:~ -]{1,200}\.(pem|crt|cer|der|key|p7b|pfx|p12|txt)$", re.I)


@dataclasses.dataclass(frozen=True)
class PemBlock:
    """One BEGIN/END block of a field, decoded."""

    label: str
    der: bytes
    headers: tuple[tuple[str, str], ...]
    """RFC 1421 headers such as Proc-Type and DEK-Info of legacy encrypted keys."""
    position: int
    """1-based position among the blocks of the field, for messages."""

    def to_pem(self) -> bytes:
        """Return the block re-encoded as canonical PEM, headers included."""
        lines = [f"-----BEGIN {self.label}-----"]
        if self.headers:
            lines += [f"{name}: {value}" for name, value in self.headers] + [""]
        encoded = base64.b64encode(self.der).decode("ascii")
        lines += [encoded[index:index + 64] for index in range(0, len(encoded), 64)]
        lines.append(f"-----END {self.label}-----")
        return ("\n".join(lines) + "\n").encode("ascii")

    def header(self, name: str) -> str:
        return next((value for key, value in self.headers if key.lower() == name.lower()), "")


@dataclasses.dataclass(frozen=True)
class PemReading:
    """The blocks read from one field and the problems that stopped reading it."""

    blocks: list[PemBlock]
    problems: list[Problem]


def read_pem_blocks(text: str, field: str, expected_label: str) -> PemReading:
    """Read the PEM blocks of a request field leniently.

    expected_label ("CERTIFICATE" or "PRIVATE KEY") only shapes the messages. An
    empty field gives no blocks and no problems, so that the caller can word what is
    missing.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FIELD_BYTES:
        return _failed(field, f"{field} is {size / 1024:.0f} KiB; the limit is "
                              f"{MAX_FIELD_KIB} KiB per field. Paste only the "
                              f"{_noun(expected_label)} ({_typical_size(expected_label)})")
    if looks_like_utf16(text):
        return _failed(field, _utf16_message(field))

    normalized = _normalize(text)
    if not normalized.strip():
        return PemReading([], [])
    if not _BEGIN.search(normalized):
        # The original text, because normalizing line endings alters binary data.
        return _failed(field, _not_pem_message(text, field, expected_label))
    return _read_blocks(normalized, field)


def looks_like_utf16(text: str) -> bool:
    """Return whether text is UTF-16 read as UTF-8: ASCII characters alternate with NULs."""
    sample = text[:4096]
    return len(sample) >= 8 and sample.count("\x00") * 3 >= len(sample)


def _normalize(text: str) -> str:
    text = text.translate(_INVISIBLE)
    if _ESCAPED_NEWLINE.search(text):
        text = text.replace("\\r\\n", "\n").replace("\\n", "\n")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_blocks(text: str, field: str) -> PemReading:
    blocks: list[PemBlock] = []
    problems: list[Problem] = []
    beginnings = list(_BEGIN.finditer(text))
    for index, begin in enumerate(beginnings):
        position = index + 1
        label = begin.group(1)
        next_start = beginnings[index + 1].start() if index + 1 < len(beginnings) else len(text)
        end = text.find(f"-----END {label}-----", begin.end(), next_start)
        if end < 0:
            problems.append(Problem(field, Rank.INPUT, (
                f"{field}: block {position} (BEGIN {label}) has no matching "
                f"'-----END {label}-----' line; the text was probably cut off while copying. "
                "Copy the whole file again")))
            continue
        headers, body = _split_headers(text[begin.end():end])
        try:
            der = base64.b64decode(body, validate=True)
        except ValueError:  # binascii.Error, or UnicodeEncodeError for non-ASCII text
            der = b""
        if not der:
            problems.append(Problem(field, Rank.INPUT, (
                f"{field}: block {position} (BEGIN {label}) is not valid base64: it contains "
                "characters other than letters, digits, '+', '/' and '=', or lost some. Copy the "
                "block again from the original file without editing it")))
            continue
        blocks.append(PemBlock(label, der, headers, position))
    return PemReading(blocks, problems)


def _split_headers(body: str) -> tuple[tuple[tuple[str, str], ...], str]:
    """Split the RFC 1421 header lines (name: value) from the base64 of a block's body."""
    headers: list[tuple[str, str]] = []
    base64_lines: list[str] = []
    for line in body.split("\n"):
        stripped = line.strip()
        if not base64_lines and ":" in stripped:
            name, _, value = stripped.partition(":")
            headers.append((name.strip(), value.strip()))
        elif stripped:
            base64_lines.append(stripped)
    return tuple(headers), "".join("".join(base64_lines).split())


def _failed(field: str, message: str) -> PemReading:
    return PemReading([], [Problem(field, Rank.INPUT, message)])


def _noun(expected_label: str) -> str:
    return "private key" if "KEY" in expected_label else "certificate chain"


def _typical_size(expected_label: str) -> str:
    return ("a PEM private key is under 4 KiB" if "KEY" in expected_label
            else "a certificate chain is a few KiB")


def _utf16_message(field: str) -> str:
    return (
        f"{field} is UTF-16 text (every second byte is zero), as Windows PowerShell's '>' "
        "redirection and some editors write it; PEM must be ASCII or UTF-8 text. Convert the "
        "file with `iconv -f UTF-16 -t UTF-8 in.pem > out.pem`, or in PowerShell with "
        "`Get-Content in.pem | Set-Content -Encoding ascii out.pem`, and paste it again"
    )


def _not_pem_message(text: str, field: str, expected_label: str) -> str:
    noun = _noun(expected_label)
    binary_kind = describe_binary(text)
    if binary_kind:
        return (
            f"{field} contains binary data, not PEM text: it looks like {binary_kind}, read "
            "into a text field, which damages it. Convert it to PEM and paste the text that "
            f"starts with '-----BEGIN {expected_label}-----': {_conversion_hint(binary_kind)}"
        )
    stripped = text.strip()
    if _FILE_NAME.match(stripped):
        return (f"{field} contains a file name, not the file's content; paste the text inside "
                f"the file, starting with '-----BEGIN {expected_label}-----'")
    if len(stripped) >= 64 and _BASE64_TEXT.match(stripped):
        return (f"{field} contains base64 text without the '-----BEGIN {expected_label}-----' "
                "and '-----END' lines; paste the whole PEM file including those lines")
    return (f"{field} contains no PEM block: expected the {noun} as text starting with "
            f"'-----BEGIN {expected_label}-----'")


def describe_binary(text: str) -> str:
    """Name the kind of binary file that text was decoded from, or return "" for text.

    A client that reads a binary file into a string field replaces the bytes that are
    not valid UTF-8 with U+FFFD, so only the ASCII bytes of the DER header survive.
    They are enough to tell a certificate, a PKCS#7 bundle, a PKCS#12 file and a key
    apart by the first fields of their ASN.1 structure.
    """
    controls = sum(1 for character in text[:4096]
                   if (ord(character) < 32 and character not in "\t\n\r\f\v")
                   or character == "\ufffd")
    if controls == 0:
        return ""
    # A byte lost in decoding becomes 0xFF, which none of the patterns below contains.
    head = bytes(ord(character) if ord(character) < 256 and character != "\ufffd" else 0xFF
                 for character in text[:48])
    if not head.startswith(b"0"):  # 0x30: an ASN.1 SEQUENCE, the start of every DER file
        return "a binary file"
    if b"\x02\x01\x03" in head[:12]:
        return "a PKCS#12 file (.pfx or .p12)"
    if b"\x03\x02\x01\x02" in head[:24] or b"\x03\x02\x01\x01" in head[:24]:
        return "a DER-encoded certificate (.cer, .der or .crt)"
    if b"\x0d\x01\x07\x02" in head:
        return "a DER-encoded PKCS#7 bundle (.p7b)"
    if b"\x02\x01\x00" in head[:12] or b"\x02\x01\x01\x04" in head[:12]:
        return "a DER-encoded private key"
    return "DER-encoded (binary) data"


def _conversion_hint(binary_kind: str) -> str:
    if "PKCS#12" in binary_kind:
        return ("`openssl pkcs12 -in file.pfx -nokeys -out chain.pem` for the certificates and "
                "`openssl pkcs12 -in file.pfx -nocerts -nodes -out key.pem` for the private key")
    if "PKCS#7" in binary_kind:
        return "`openssl pkcs7 -inform DER -in file.p7b -print_certs -out chain.pem`"
    if "private key" in binary_kind:
        return "`openssl pkey -inform DER -in key.der -out key.pem`"
    if "certificate" in binary_kind:
        return "`openssl x509 -inform DER -in cert.cer -out cert.pem`"
    return ("`openssl x509 -inform DER -in cert.cer -out cert.pem` for a certificate, or "
            "`openssl pkcs12 -in file.pfx -nokeys -out chain.pem` for a PKCS#12 file")
