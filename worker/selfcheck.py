"""The HTTP-01 self-check: fetch the domain's self-check URL the way Let's Encrypt would.

Before certsvc asks the CA for a certificate (and whenever CheckDomain asks), it
fetches http://<host>:<CERTSVC_CHALLENGE_PORT>/.well-known/acme-challenge/_g_selfcheck_
and compares the answer with the body the responder serves for that host. It follows
redirects under Let's Encrypt's rules: at most 10, http or https only, only the
challenge ports, never to an IP address, and no certificate check on HTTPS hops. It
tries IPv6 first when the name has AAAA records and falls back to IPv4 only when the
first request over IPv6 fails at the network level. A DNS gate checks CAA records too.
Every failure becomes one message that says what was seen and what to fix; a fetched
body is never copied into it.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import logging
import time
import urllib.parse

from service.config import Settings
from service.redis_keys import SELF_CHECK_TOKEN
from service.validation.addresses import IPAddress, unreachable_reason
from worker import selfcheck_advice as advice
from worker.dns_lookup import DnsLookupError, DomainResolver
from worker.http_fetch import FetchedResponse, NetworkError, ProtocolError, fetch

logger = logging.getLogger(__name__)

SELF_CHECK_PATH = f"/.well-known/acme-challenge/{SELF_CHECK_TOKEN}"
MAX_REDIRECTS = 10
# A longer Location is not a redirect a CA follows, and it would swell the message.
MAX_LOCATION_LENGTH = 2048
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclasses.dataclass(frozen=True)
class Hop:
    """One request of the check."""

    url: str
    status: int
    """The HTTP status; 0 when no response arrived."""
    address: str
    """The IP address the request went to."""
    error: str = ""
    """The reason no response arrived, in words; empty when one did."""


@dataclasses.dataclass(frozen=True)
class CheckResult:
    ok: bool
    url: str
    """The first URL fetched."""
    final_url: str
    """The URL whose answer decided the check; empty when no answer did."""
    hops: list[Hop]
    message: str
    """What was found and, on failure, what to fix: one sentence for the user."""
    warnings: list[str]
    checked_at: datetime.datetime

    def summary(self) -> str:
        """Describe the check for a domain's timeline: the message, each hop, each warning."""
        lines = [self.message]
        for hop in self.hops:
            outcome = str(hop.status) if hop.status else hop.error
            lines.append(f"GET {hop.url} ({hop.address}): {outcome}")
        lines += [f"warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


class CheckFailed(Exception):
    """Ends a check early with the user's message."""


class SelfCheck:
    """One run of the self-check for one hostname."""

    def __init__(self, settings: Settings, hostname: str, expected_body: str,
                 resolver: DomainResolver | None = None) -> None:
        self.settings = settings
        self.hostname = hostname
        self.expected_body = expected_body
        self.resolver = resolver or DomainResolver(settings)
        self.deadline = time.monotonic() + settings.check_deadline_seconds
        self.hops: list[Hop] = []
        self.warnings: list[str] = []
        self.url = _join_url("http", hostname, settings.challenge_port, 80) + SELF_CHECK_PATH

    def run(self) -> CheckResult:
        """Run the HTTP check, then the CAA gate, and describe the outcome."""
        # CAA first: it takes a few DNS queries, while the HTTP walk may use up the deadline.
        caa_failure = self._caa_failure()
        final_url = ""
        try:
            final_url = self._follow()
            http_failure = ""
        except CheckFailed as failure:
            http_failure = str(failure)

        if http_failure and caa_failure:
            self.warnings.append(caa_failure)
        failure = http_failure or caa_failure
        if failure:
            message = f"self-check failed for {self.hostname}: {failure}"
        else:
            message = (f"self-check passed for {self.hostname}: GET {final_url} returned the "
                       "expected body")
        result = CheckResult(ok=not failure, url=self.url, final_url=final_url if not http_failure
                             else "", hops=list(self.hops), message=message,
                             warnings=list(self.warnings),
                             checked_at=datetime.datetime.now(datetime.timezone.utc))
        logger.info("self-check %s hostname=%s hops=%d", "passed" if result.ok else "failed",
                    self.hostname, len(self.hops))
        return result

    # The redirect walk.

    def _follow(self) -> str:
        """Fetch the self-check URL and its redirects; return the URL that answered right."""
        current = self.url
        redirects = 0
        while True:
            url = urllib.parse.urlsplit(current)
            response, over_ipv6 = self._fetch_url(url, first=redirects == 0)
            if response.status in REDIRECT_STATUSES:
                target = self._redirect_target(current, response, redirects)
                redirects += 1
                current = target
                continue
            self._judge(current, response, redirects, over_ipv6)
            return current

    def _redirect_target(self, current: str, response: FetchedResponse, redirects: int) -> str:
        """Check a redirect against the CA's rules and return the absolute target URL."""
        if not response.location:
            raise CheckFailed(advice.redirect_without_location(current, response.status))
        if len(response.location) > MAX_LOCATION_LENGTH:
            raise CheckFailed(advice.redirect_malformed(
                current, response.location[:80] + f"... ({len(response.location)} characters)"))
        try:
            target = urllib.parse.urljoin(current, response.location.strip())
        except ValueError:
            raise CheckFailed(advice.redirect_malformed(current, response.location.strip())) from None
        if redirects + 1 > MAX_REDIRECTS:
            raise CheckFailed(advice.too_many_redirects(self.url, MAX_REDIRECTS))
        parsed = urllib.parse.urlsplit(target)
        if parsed.scheme not in ("http", "https"):
            raise CheckFailed(advice.redirect_bad_scheme(current, target, parsed.scheme))
        host = parsed.hostname or ""
        if not host:
            raise CheckFailed(advice.redirect_malformed(current, target))
        if _is_ip_address(host):
            raise CheckFailed(advice.redirect_to_ip(current, target, host))
        try:
            port = parsed.port
        except ValueError:
            raise CheckFailed(advice.redirect_malformed(current, target)) from None
        allowed = self._allowed_port(parsed.scheme)
        if (port or _default_port(parsed.scheme)) != allowed:
            raise CheckFailed(advice.redirect_bad_port(
                current, target, port or _default_port(parsed.scheme), self.settings))
        try:
            host.encode("idna")
        except UnicodeError:
            raise CheckFailed(advice.redirect_malformed(current, target)) from None
        return target

    def _allowed_port(self, scheme: str) -> int:
        if scheme == "https":
            return self.settings.challenge_https_port
        return self.settings.challenge_port

    # One URL: resolve, choose an address, fetch.

    def _fetch_url(self, url: urllib.parse.SplitResult,
                   first: bool) -> tuple[FetchedResponse, bool]:
        """Fetch one URL, IPv6 first; return the response and whether IPv6 answered."""
        host = url.hostname or ""
        try:
            addresses = self.resolver.addresses(host.encode("idna").decode("ascii"),
                                                self.deadline)
        except DnsLookupError as error:
            raise CheckFailed(advice.dns_failure(url.geturl(), host, str(error),
                                                 error.kind)) from None

        warnings_before = len(self.warnings)
        ipv6_addresses = self._reachable(host, addresses.ipv6, "AAAA")
        ipv4_addresses = self._reachable(host, addresses.ipv4, "A")
        if not ipv6_addresses and not ipv4_addresses:
            del self.warnings[warnings_before:]  # the failure message says it
            refused, record_type = ((addresses.ipv6[0], "AAAA") if addresses.ipv6
                                    else (addresses.ipv4[0], "A"))
            reason = unreachable_reason(refused,
                                        allow_private=self.settings.allow_private_targets)
            raise CheckFailed(advice.unreachable_address(host, refused, record_type, reason))

        if ipv6_addresses:
            ipv6 = ipv6_addresses[0]
            fallback = ipv4_addresses[0] if first and ipv4_addresses else None
            try:
                share = 0.5 if fallback is not None else 1.0
                return self._fetch_from(url, ipv6, share), True
            except NetworkError as error:
                if fallback is None:
                    raise CheckFailed(advice.network_failure(url.geturl(), host, ipv6, str(error),
                                                             over_ipv6=True)) from None
                self.warnings.append(advice.ipv6_fallback_warning(host, ipv6, str(error)))
                logger.info("self-check falling back to IPv4 hostname=%s ipv6=%s: %s",
                            self.hostname, ipv6, error)
            return self._fetch_or_fail(url, fallback), False

        return self._fetch_or_fail(url, ipv4_addresses[0]), False

    def _fetch_or_fail(self, url: urllib.parse.SplitResult, address: IPAddress) -> FetchedResponse:
        try:
            return self._fetch_from(url, address, 1.0)
        except NetworkError as error:
            raise CheckFailed(advice.network_failure(url.geturl(), url.hostname or "", address,
                                                     str(error), over_ipv6=False)) from None

    def _fetch_from(self, url: urllib.parse.SplitResult, address: IPAddress,
                    share: float) -> FetchedResponse:
        """Fetch url from address within share of the remaining time, recording the hop."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise CheckFailed(advice.deadline_exceeded(url.geturl(),
                                                       self.settings.check_deadline_seconds))
        try:
            response = fetch(url, address, remaining * share)
        except NetworkError as error:
            self.hops.append(Hop(url.geturl(), 0, str(address), str(error)))
            logger.debug("self-check request failed hostname=%s url=%s address=%s: %s",
                         self.hostname, url.geturl(), address, error)
            raise
        except ProtocolError as error:
            self.hops.append(Hop(url.geturl(), 0, str(address), str(error)))
            raise CheckFailed(advice.protocol_failure(url.geturl(), address, str(error))) from None
        self.hops.append(Hop(url.geturl(), response.status, str(address)))
        logger.debug("self-check fetched hostname=%s url=%s address=%s status=%d",
                     self.hostname, url.geturl(), address, response.status)
        return response

    def _reachable(self, host: str, addresses: list[IPAddress],
                   record_type: str) -> list[IPAddress]:
        """Drop the addresses the CA cannot reach, as it does, with a warning for each."""
        reachable = []
        for address in addresses:
            reason = unreachable_reason(address,
                                        allow_private=self.settings.allow_private_targets)
            if reason:
                warning = advice.unreachable_address(host, address, record_type, reason)
                if warning not in self.warnings:
                    self.warnings.append(warning)
            else:
                reachable.append(address)
        return reachable

    # Judging the final answer and the DNS gate.

    def _judge(self, url: str, response: FetchedResponse, redirects: int,
               over_ipv6: bool) -> None:
        """Raise CheckFailed unless the final answer is 200 with the expected body."""
        body_matches = response.body.rstrip(b" \t\r\n") == self.expected_body.encode()
        if response.status == 200 and body_matches:
            return
        answered = advice.Answered(url=url, status=response.status,
                                   html=_looks_like_html(response),
                                   redirected_from=self.url if redirects else "",
                                   redirects=redirects,
                                   ipv6_address=self.hops[-1].address if over_ipv6 else "",
                                   hostname=urllib.parse.urlsplit(url).hostname or "")
        raise CheckFailed(advice.wrong_answer(answered))

    def _caa_failure(self) -> str:
        """Return why CAA records forbid issuance for the hostname, or ""."""
        try:
            verdict = self.resolver.caa(self.hostname, self.settings.caa_identities,
                                        self.deadline)
        except DnsLookupError as error:
            return advice.caa_lookup_failed(str(error))
        if verdict.allowed:
            return ""
        return advice.caa_forbids(self.hostname, verdict, self.settings.caa_identities)


def run_self_check(settings: Settings, hostname: str, expected_body: str,
                   resolver: DomainResolver | None = None) -> CheckResult:
    """Run the self-check and the CAA gate for a normal-form hostname."""
    return SelfCheck(settings, hostname, expected_body, resolver).run()


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _join_url(scheme: str, host: str, port: int, default_port: int) -> str:
    return f"{scheme}://{host}" + ("" if port == default_port else f":{port}")


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _looks_like_html(response: FetchedResponse) -> bool:
    if "html" in response.content_type.lower():
        return True
    start = response.body.lstrip()[:15].lower()
    return start.startswith(b"<!doctype") or start.startswith(b"<html")
