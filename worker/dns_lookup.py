"""DNS lookups of the self-check: a domain's addresses and the CAA records that apply to it.

Answers come from CERTSVC_DNS_SERVER when it is set (tests point it at
pebble-challtestsrv), otherwise from the system resolver.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import time

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from service.config import Settings
from service.validation.addresses import IPAddress

logger = logging.getLogger(__name__)

# One DNS query waits at most this long, and less when the check's deadline is nearer.
QUERY_TIMEOUT_SECONDS = 5.0
# CAA property tags that RFC 8659 and its extensions define; a record with another tag
# and the critical flag set forbids issuance (RFC 8659 section 4.1).
KNOWN_CAA_TAGS = frozenset({"issue", "issuewild", "iodef", "contactemail", "contactphone",
                            "issuemail", "issuevmc"})
CAA_CRITICAL_FLAG = 128


class DnsLookupError(Exception):
    """A lookup failed or found nothing; the message states the fact, the kind names it."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind
        """One of "nxdomain", "no_address", "timeout", "servfail" or "other"."""


@dataclasses.dataclass(frozen=True)
class Addresses:
    """The AAAA and A answers for one name, in the order the server gave them."""

    ipv6: list[IPAddress]
    ipv4: list[IPAddress]


@dataclasses.dataclass(frozen=True)
class CaaVerdict:
    """Whether the CAA records that apply to a name let one of our CAs issue for it."""

    allowed: bool
    owner: str
    """The name that holds the relevant CAA record set; empty when no name has one."""
    records: list[str]
    """The relevant records in zone-file form, for example '0 issue "letsencrypt.org"'."""


class DomainResolver:
    """A dnspython resolver configured from the settings."""

    def __init__(self, settings: Settings) -> None:
        if settings.dns_server is None:
            self._resolver = dns.resolver.Resolver()
        else:
            host, port = settings.dns_server
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [host]
            self._resolver.port = port

    def addresses(self, hostname: str, deadline: float) -> Addresses:
        """Return the AAAA and A answers for hostname, or raise DnsLookupError."""
        ipv6 = self._query(hostname, "AAAA", deadline)
        ipv4 = self._query(hostname, "A", deadline)
        if ipv6 is None and ipv4 is None:
            raise DnsLookupError(f"{hostname} does not exist in DNS (NXDOMAIN)", "nxdomain")
        found = Addresses(ipv6=[ipaddress.IPv6Address(r.address) for r in ipv6 or []],
                          ipv4=[ipaddress.IPv4Address(r.address) for r in ipv4 or []])
        if not found.ipv6 and not found.ipv4:
            raise DnsLookupError(f"{hostname} has no A or AAAA record", "no_address")
        logger.debug("resolved hostname=%s ipv6=%s ipv4=%s", hostname,
                     [str(a) for a in found.ipv6], [str(a) for a in found.ipv4])
        return found

    def caa(self, hostname: str, identities: tuple[str, ...], deadline: float) -> CaaVerdict:
        """Find the CAA record set relevant to hostname and judge it (RFC 8659 section 3).

        The relevant set is the first one found climbing from the name towards the
        root; without one, any CA may issue. Raises DnsLookupError when a lookup fails,
        because a CA refuses to issue when it cannot read CAA either.
        """
        name = dns.name.from_text(hostname)
        while len(name.labels) > 1:  # stop before the root label
            records = self._query(name.to_text(omit_final_dot=True), "CAA", deadline)
            if records:
                owner = name.to_text(omit_final_dot=True)
                texts = [record.to_text() for record in records]
                return CaaVerdict(allowed=_caa_allows(records, identities), owner=owner,
                                  records=texts)
            name = name.parent()
        return CaaVerdict(allowed=True, owner="", records=[])

    def _query(self, name: str, record_type: str, deadline: float) -> list | None:
        """Return the records of one type ([] when there are none), or None on NXDOMAIN."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DnsLookupError(f"the {record_type} lookup of {name} ran out of time", "timeout")
        try:
            answer = self._resolver.resolve(name, record_type, raise_on_no_answer=False,
                                            lifetime=min(remaining, QUERY_TIMEOUT_SECONDS),
                                            search=False)
        except dns.resolver.NXDOMAIN:
            return None
        except dns.exception.Timeout:
            raise DnsLookupError(f"the {record_type} lookup of {name} timed out",
                                 "timeout") from None
        except dns.resolver.NoNameservers:
            raise DnsLookupError(f"the {record_type} lookup of {name} failed (SERVFAIL)",
                                 "servfail") from None
        except dns.exception.DNSException as error:
            raise DnsLookupError(f"the {record_type} lookup of {name} failed ({error})",
                                 "other") from None
        if answer.rrset is None:
            return []
        return list(answer.rrset)


def _caa_allows(records: list, identities: tuple[str, ...]) -> bool:
    """Return whether a relevant CAA set lets one of identities issue a non-wildcard certificate."""
    issue_values = []
    for record in records:
        tag = record.tag.decode("ascii", "replace").lower()
        if tag not in KNOWN_CAA_TAGS and record.flags & CAA_CRITICAL_FLAG:
            return False
        if tag == "issue":
            issue_values.append(record.value.decode("utf-8", "replace"))
    if not issue_values:
        # Only issuewild, iodef or similar: nothing restricts non-wildcard certificates.
        return True
    return any(_issue_value_allows(value, identities) for value in issue_values)


def _issue_value_allows(value: str, identities: tuple[str, ...]) -> bool:
    """Judge one issue value such as 'letsencrypt.org; validationmethods=http-01'."""
    issuer, _, parameter_text = value.partition(";")
    if issuer.strip().lower() not in identities:
        return False
    # NOTE: an accounturi parameter is not compared with certsvc's ACME account, so a
    # record bound to another account passes here and fails at the CA.
    for parameter in parameter_text.split(";"):
        key, _, setting = parameter.strip().partition("=")
        if key.strip().lower() == "validationmethods":
            methods = {method.strip().lower() for method in setting.split(",")}
            if "http-01" not in methods:
                return False
    return True
