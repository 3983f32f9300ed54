"""The self-check's failure messages: what was seen and what the domain's owner should fix.

Each function returns the part after "self-check failed for <host>: ". The README's
troubleshooting section lists these messages with their fixes; keep the two in step.
No message contains a fetched body.
"""

from __future__ import annotations

import dataclasses

from service.config import Settings
from service.validation.addresses import IPAddress
from worker.dns_lookup import CaaVerdict

PASS_THROUGH = "/.well-known/acme-challenge/"


@dataclasses.dataclass(frozen=True)
class Answered:
    """A final answer that was not 200 with the expected body."""

    url: str
    status: int
    html: bool
    redirected_from: str
    """The first URL when the answer came after redirects; empty otherwise."""
    redirects: int
    ipv6_address: str
    """The IPv6 address that answered; empty when IPv4 did."""
    hostname: str


def wrong_answer(answered: Answered) -> str:
    """Describe an answer other than 200 with the expected body."""
    seen = f"GET {answered.url} returned {_status_words(answered)}"
    if answered.redirected_from:
        plural = "s" if answered.redirects > 1 else ""
        seen += (f" after {answered.redirects} redirect{plural} from "
                 f"{answered.redirected_from}")
    if answered.ipv6_address:
        return (f"the IPv6 address {answered.ipv6_address} in the AAAA record of "
                f"{answered.hostname} answered: {seen}. The CA tries IPv6 first and fails the "
                "same way; fix the server at that address or remove the AAAA record")
    return f"{seen}; {_fix_for(answered)}"


def _status_words(answered: Answered) -> str:
    if answered.status == 200:
        kind = "an HTML page" if answered.html else "a body"
        return f"200 with {kind} that is not the self-check body"
    if answered.html:
        return f"{answered.status} with an HTML page"
    return str(answered.status)


def _fix_for(answered: Answered) -> str:
    status = answered.status
    if status == 404:
        if answered.redirected_from:
            return (f"the redirect does not lead to the platform's {PASS_THROUGH} path; "
                    f"serve {PASS_THROUGH} without rewriting it, or redirect it to the same "
                    "path on a host name that points at the platform")
        return (f"a proxy or web server in front of the platform does not pass {PASS_THROUGH} "
                "through; forward that path to the platform unchanged")
    if status in (401, 403):
        return (f"a CDN, proxy or firewall answers instead of the platform; let requests for "
                f"{PASS_THROUGH} through to the platform (or turn the proxy off for that path)")
    if status == 200:
        if answered.html:
            return (f"another web server or a CDN answers for this name; point the DNS records "
                    f"at the platform and let {PASS_THROUGH} through to it")
        return (f"another server answers for {answered.hostname}; check that its A and AAAA "
                f"records point at the platform and nothing else serves {PASS_THROUGH}")
    if 500 <= status < 600:
        return (f"the server or proxy in front of {answered.hostname} failed; if a proxy sits "
                "in front of the platform, check that it can reach the platform")
    if answered.html:
        return (f"a CDN, proxy or firewall answers instead of the platform; let requests for "
                f"{PASS_THROUGH} through to the platform")
    return (f"the CA needs 200 with the self-check body; make sure {PASS_THROUGH} reaches the "
            "platform unchanged")


def too_many_redirects(first_url: str, limit: int) -> str:
    return (f"GET {first_url} led to more than {limit} redirects; the CA follows at most "
            f"{limit}, so shorten the redirect chain or serve {PASS_THROUGH} without redirects")


def redirect_without_location(url: str, status: int) -> str:
    return (f"GET {url} returned redirect status {status} without a Location header; fix the "
            f"redirect rule or serve {PASS_THROUGH} without redirects")


def redirect_malformed(url: str, target: str) -> str:
    return (f"GET {url} redirected to {target!r}, which is not a valid URL; fix the redirect "
            "rule")


def redirect_bad_scheme(url: str, target: str, scheme: str) -> str:
    return (f"GET {url} redirected to {target}, but the CA follows redirects only to http and "
            f"https, not {scheme or 'a URL without a scheme'}; fix the redirect rule")


def redirect_to_ip(url: str, target: str, host: str) -> str:
    return (f"GET {url} redirected to {target}, an IP address ({host}); the CA never follows "
            "a redirect to an IP address, so redirect to a host name instead or serve "
            f"{PASS_THROUGH} without the redirect")


def redirect_bad_port(url: str, target: str, port: int, settings: Settings) -> str:
    return (f"GET {url} redirected to {target} on port {port}; the CA follows redirects only "
            f"to port {settings.challenge_port} (http) and {settings.challenge_https_port} "
            "(https), so redirect to a standard port or drop the port from the redirect")


def dns_failure(url: str, host: str, error_text: str, kind: str) -> str:
    if kind in ("nxdomain", "no_address"):
        return (f"{error_text}, so GET {url} cannot be sent; add an A, AAAA or CNAME record "
                f"that points {host} at the platform, then check again once DNS has updated")
    return (f"{error_text}, so GET {url} cannot be sent; check that the name servers of "
            f"{host} answer (and that its DNSSEC setup is valid)")


def unreachable_address(host: str, address: IPAddress, record_type: str, reason: str) -> str:
    return (f"the {record_type} record of {host} points to {address}, {reason} that the CA "
            "cannot reach; point it at the platform's public address")


def network_failure(url: str, host: str, address: IPAddress, error_text: str, *,
                    over_ipv6: bool) -> str:
    if over_ipv6:
        return (f"GET {url} to the IPv6 address {address} in the AAAA record of {host} failed: "
                f"the server {error_text}. The CA tries IPv6 first; fix IPv6 at that address "
                "or remove the AAAA record")
    return (f"GET {url} to {address} failed: the server {error_text}; check that the A record "
            f"of {host} points at the platform and that the port is open to the internet")


def protocol_failure(url: str, address: IPAddress, error_text: str) -> str:
    return (f"GET {url} to {address} failed: the server {error_text}; check that the "
            "platform, not another service, listens on that address and port")


def deadline_exceeded(url: str, seconds: float) -> str:
    return (f"the check did not finish within {seconds:g} s (last request: GET {url}); "
            "check that the server answers quickly and that redirects are few")


def ipv6_fallback_warning(host: str, address: IPAddress, error_text: str) -> str:
    return (f"the IPv6 address {address} in the AAAA record of {host} did not answer (the "
            f"server {error_text}), so the check fell back to IPv4 as the CA does; fix IPv6 at "
            "that address or remove the AAAA record, because an IPv6 server that answers wrongly "
            "makes validation fail")


def caa_forbids(hostname: str, verdict: CaaVerdict, identities: tuple[str, ...]) -> str:
    shown = "; ".join(f"{verdict.owner}. CAA {record}" for record in verdict.records)
    wanted = " or ".join(identities)
    return (f"the CAA records of {verdict.owner} ({shown}) do not allow {wanted} to issue "
            f"certificates for {hostname}; add the record {verdict.owner}. CAA 0 issue "
            f"\"{identities[0]}\" or remove the restriction")


def caa_lookup_failed(error_text: str) -> str:
    return (f"{error_text}; the CA refuses to issue while it cannot read CAA records, so fix "
            "the domain's name servers")
