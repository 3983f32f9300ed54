"""Hostname normal form and the rules a certificate hostname must follow.

The normal form is IDNA 2008 with UTS 46 non-transitional mapping (as browsers do:
"faß.de" becomes "xn--fa-hia.de"), lowercase A-labels, no trailing dot, and "*." in
front for a wildcard. Pure functions without I/O.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re

import idna

from service.validation.public_suffix import is_public_suffix

MAX_HOSTNAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
# Users paste whole URLs; these catch the parts that are not a host name.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PORT = re.compile(r":\d*$")
# Top-level labels reserved for local or special use (mDNS .local, .localhost,
# .internal, .invalid, .onion, .alt and .arpa, which holds home.arpa). The test and
# example names of RFC 2606 stay allowed, so development setups can use them.
SPECIAL_USE_TOP_LABELS = frozenset({"local", "localhost", "internal", "invalid", "onion",
                                    "alt", "arpa"})
_CODEPOINT = re.compile(r"U\+[0-9A-F]{4,6}")
# A name in normal form with ASCII labels only: lowercase letters, digits and inner
# hyphens, at least two labels, optionally behind "*.".
_LDH_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN_NORMAL_FORM = re.compile(rf"(?:\*\.)?{_LDH_LABEL}(?:\.{_LDH_LABEL})+")


class HostnameError(ValueError):
    """A hostname breaks a rule; the message names the rule and the fix."""


@dataclasses.dataclass(frozen=True)
class Hostname:
    """A hostname in normal form, with its display form."""

    ascii: str
    """Lowercase A-labels, no trailing dot, "*." first for a wildcard."""
    unicode: str
    """The same name with U-labels, for display."""
    wildcard: bool

    @property
    def base(self) -> str:
        """The name without its wildcard label."""
        return self.ascii[2:] if self.wildcard else self.ascii


def normalize_hostname(text: str, *, allow_public_suffix: bool = False) -> Hostname:
    """Return the normal form of a hostname as a user typed it, or raise HostnameError.

    A public suffix itself (co.uk) is rejected unless allow_public_suffix is set, as it
    is for the platform's own domain.
    """
    plain = _plain_normal_form(text, allow_public_suffix)
    if plain is not None:
        return plain
    return normalize_fully(text, allow_public_suffix=allow_public_suffix)


def normalize_fully(text: str, *, allow_public_suffix: bool = False) -> Hostname:
    """Apply every rule of normalize_hostname(), without its shortcut for plain names."""
    name = text.strip()
    if not name:
        raise HostnameError("the hostname is empty; enter a host name such as shop.example.com")
    _reject_url_parts(text, name)
    _reject_ip_address(name)

    wildcard = name.startswith("*.")
    if wildcard:
        name = name[2:]
    if name.endswith("."):
        name = name[:-1]
    if "*" in name:
        raise HostnameError(
            f"{text!r}: a wildcard '*' is allowed only as the whole first label, as in *.example.com"
        )
    if "_" in name:
        raise HostnameError(
            f"{text!r} contains an underscore; host names in certificates may contain only "
            "letters, digits and hyphens"
        )
    if any(character.isspace() for character in name):
        raise HostnameError(f"{text!r} contains white space; enter the host name only")

    try:
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
    except idna.IDNAError as error:
        raise HostnameError(f"{text!r} is not a valid host name: {_idna_reason(error)}") from None
    labels = mapped.split(".")
    if "" in labels:
        raise HostnameError(f"{text!r} has an empty label (a leading dot or two dots in a row)")
    if len(labels) < 2:
        raise HostnameError(
            f"{text!r} has a single label; enter a fully qualified name such as shop.example.com"
        )
    ascii_labels = [_ascii_label(text, label) for label in labels]
    if ascii_labels[-1].isdigit():
        raise HostnameError(f"{text!r}: the last label cannot be all digits")

    ascii_name = ".".join(ascii_labels)
    _reject_non_public_name(text, ascii_name, wildcard, allow_public_suffix)
    full_length = len(ascii_name) + (2 if wildcard else 0)
    if full_length > MAX_HOSTNAME_LENGTH:
        raise HostnameError(
            f"{text!r} is {full_length} characters long in ASCII form; a host name is at most "
            f"{MAX_HOSTNAME_LENGTH}"
        )
    unicode_name = ".".join(_unicode_label(label) for label in ascii_labels)
    prefix = "*." if wildcard else ""
    return Hostname(ascii=prefix + ascii_name, unicode=prefix + unicode_name, wildcard=wildcard)


def _plain_normal_form(text: str, allow_public_suffix: bool) -> Hostname | None:
    """Return text as a Hostname when it already is a plain ASCII normal form, else None.

    Most requests send such names. UTS 46 maps them to themselves and none of them is
    an IP address, so of the rules only the length, the last label and the public
    suffix rules remain to check. Names with "--" (xn-- labels among them) take the
    full path.
    """
    if (len(text) > MAX_HOSTNAME_LENGTH or "--" in text
            or not _PLAIN_NORMAL_FORM.fullmatch(text)):
        return None
    wildcard = text.startswith("*.")
    ascii_name = text[2:] if wildcard else text
    if ascii_name.rpartition(".")[2].isdigit():
        return None
    _reject_non_public_name(text, ascii_name, wildcard, allow_public_suffix)
    return Hostname(ascii=text, unicode=text, wildcard=wildcard)


def _reject_non_public_name(text: str, ascii_name: str, wildcard: bool,
                            allow_public_suffix: bool) -> None:
    """Reject names that no public CA can certify: public suffixes and special-use names."""
    top_label = ascii_name.rsplit(".", 1)[-1]
    if top_label in SPECIAL_USE_TOP_LABELS:
        raise HostnameError(
            f"{text!r} ends in .{top_label}, which is reserved for private or special use; "
            "public CAs do not issue certificates for such names, so enter a public name")
    if not allow_public_suffix and is_public_suffix(ascii_name):
        what = "a wildcard directly under the public suffix" if wildcard else "the public suffix"
        raise HostnameError(
            f"{text!r} is {what} {ascii_name}, under which many unrelated owners register "
            f"names, so no CA certifies it; enter your own domain, such as shop.example.{ascii_name}")


def _reject_url_parts(text: str, name: str) -> None:
    if _SCHEME.match(name):
        host = _SCHEME.sub("", name).split("/")[0]
        raise HostnameError(
            f"{text!r} is a URL with a scheme; enter the host name only (here: {host})"
        )
    if "/" in name or "?" in name or "#" in name:
        raise HostnameError(f"{text!r} contains a URL path; enter the host name only")
    if "@" in name:
        raise HostnameError(f"{text!r} contains user information ('@'); enter the host name only")
    if not name.startswith("[") and name.count(":") == 1 and _PORT.search(name):
        raise HostnameError(f"{text!r} contains a port; enter the host name only")


def _reject_ip_address(name: str) -> None:
    # "[2001:db8::1]" and "[2001:db8::1]:443" are IPv6 literals as typed in URLs.
    candidate = name[1:].partition("]")[0] if name.startswith("[") else name.rstrip(".")
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return
    raise HostnameError(
        f"{name!r} is an IP address; certificates here are for host names, so enter a name "
        "such as shop.example.com"
    )


def _ascii_label(text: str, label: str) -> str:
    if label.isascii():
        ascii_label = label.lower()
    else:
        try:
            ascii_label = idna.alabel(label).decode("ascii")
        except idna.IDNAError as error:
            raise HostnameError(
                f"{text!r}: the label {label!r} is not a valid internationalized label: "
                f"{_idna_reason(error)}"
            ) from None
    if len(ascii_label) > MAX_LABEL_LENGTH:
        raise HostnameError(
            f"{text!r}: the label {ascii_label[:20]}... is {len(ascii_label)} characters long; "
            f"a label is at most {MAX_LABEL_LENGTH}"
        )
    if ascii_label.startswith("-") or ascii_label.endswith("-"):
        raise HostnameError(f"{text!r}: the label {ascii_label!r} starts or ends with a hyphen")
    if not re.fullmatch(r"[a-z0-9-]+", ascii_label):
        raise HostnameError(
            f"{text!r}: the label {label!r} contains a character that is not allowed in host names"
        )
    if ascii_label[2:4] == "--":
        if not ascii_label.startswith("xn--"):
            raise HostnameError(
                f"{text!r}: the label {ascii_label!r} has hyphens in the third and fourth "
                "positions, which only xn-- (punycode) labels may have"
            )
        _unicode_label(ascii_label, text)
    return ascii_label


def _idna_reason(error: idna.IDNAError) -> str:
    """Say in words why the idna package rejected a label."""
    codepoint = _CODEPOINT.search(str(error))
    if isinstance(error, idna.InvalidCodepoint) and codepoint:
        return (f"it contains the character {codepoint.group(0)}, which IDNA 2008 does not "
                "allow in host names")
    return str(error)


def _unicode_label(ascii_label: str, text: str | None = None) -> str:
    if not ascii_label.startswith("xn--"):
        return ascii_label
    try:
        return idna.ulabel(ascii_label)
    except (idna.IDNAError, UnicodeError) as error:
        raise HostnameError(
            f"{text or ascii_label!r}: the label {ascii_label!r} is not valid punycode: {error}"
        ) from None


def covers(pattern: str, hostname: str) -> bool:
    """Return whether a certificate name (maybe "*.") covers a normal-form hostname.

    A wildcard covers exactly one label: "*.example.com" covers "a.example.com" but
    neither "example.com" nor "a.b.example.com". A wildcard hostname is covered only by
    the same wildcard.
    """
    pattern = pattern.lower().rstrip(".")
    if pattern == hostname:
        return True
    if not pattern.startswith("*.") or hostname.startswith("*."):
        return False
    first, _, rest = hostname.partition(".")
    return bool(first) and rest == pattern[2:]
