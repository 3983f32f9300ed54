"""The self-check against real HTTP servers on loopback and real DNS answers."""

from __future__ import annotations

import secrets
import uuid

import pytest

from devtools.pebble import free_port
from selfcheck_world import PATH, SELF_CHECK_BODY, World
from service.config import Settings
from worker.selfcheck import CheckResult, run_self_check

# Each scenario below plays one kind of real-world setup; the documentation addresses
# (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32) are mapped to loopback.


def _host(label: str = "shop") -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}.example.com"


def _check(world: World, hostname: str, scenario: dict, *, deadline: float = 3.0,
           allow_private: bool = True) -> CheckResult:
    body = secrets.token_urlsafe(32)
    world.play(scenario, body)
    settings = Settings(challenge_port=world.http_port, challenge_https_port=world.https_port,
                        dns_server=("127.0.0.1", world.dns.dns_port),
                        allow_private_targets=allow_private, check_deadline_seconds=deadline)
    return run_self_check(settings, hostname, body)


def _redirect(location: str, status: int = 302) -> dict:
    return {"status": status, "headers": {"Location": location}}


def _ok(body: str = SELF_CHECK_BODY) -> dict:
    return {"status": 200, "headers": {"Content-Type": "text/plain"}, "body": body}


def test_direct_answer_passes(world) -> None:
    host = _host()

    result = _check(world, host, {"dns": {host: {"A": ["192.0.2.10"]}},
                                  "responses": {f"http://{host}{PATH}": _ok()}})

    assert result.ok, result.message
    assert result.final_url == world.url(f"http://{host}{PATH}")
    assert result.url == result.final_url
    assert [hop.status for hop in result.hops] == [200]
    assert result.hops[0].address == world.loopback("192.0.2.10")
    assert result.warnings == []


def test_redirect_to_other_host_passes(world) -> None:
    host = _host()
    www = f"www.{host}"

    result = _check(world, host, {
        "dns": {host: {"A": ["192.0.2.10"]}, www: {"A": ["192.0.2.11"]}},
        "responses": {f"http://{host}{PATH}": _redirect(f"https://{www}{PATH}", 301),
                      f"https://{www}{PATH}": {**_ok(), "tls": "self-signed"}},
    })

    assert result.ok, result.message
    assert result.final_url == world.url(f"https://{www}{PATH}")
    assert [hop.status for hop in result.hops] == [301, 200]


def test_relative_redirect_passes(world) -> None:
    host = _host()

    result = _check(world, host, {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "responses": {f"http://{host}{PATH}": _redirect(f"/moved{PATH}", 307),
                      f"http://{host}/moved{PATH}": _ok()},
    })

    assert result.ok, result.message
    assert result.final_url.endswith(f"/moved{PATH}")


def _chain(host: str, redirects: int) -> dict:
    responses = {}
    for hop in range(redirects):
        here = PATH if hop == 0 else f"/hop{hop}{PATH}"
        responses[f"http://{host}{here}"] = _redirect(f"http://{host}/hop{hop + 1}{PATH}")
    responses[f"http://{host}/hop{redirects}{PATH}"] = _ok()
    return {"dns": {host: {"A": ["192.0.2.10"]}}, "responses": responses}


def test_ten_redirects_pass(world) -> None:
    host = _host()

    result = _check(world, host, _chain(host, 10))

    assert result.ok, result.message
    assert len(result.hops) == 11


def test_eleven_redirects_fail(world) -> None:
    host = _host()

    result = _check(world, host, _chain(host, 11))

    assert not result.ok
    assert "more than 10 redirects" in result.message
    assert result.final_url == ""
    assert len(result.hops) == 11


def test_redirect_to_ip_fails(world) -> None:
    host = _host()

    result = _check(world, host, {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "responses": {f"http://{host}{PATH}": _redirect(f"http://198.51.100.7{PATH}"),
                      f"http://198.51.100.7{PATH}": _ok()},
    })

    assert not result.ok
    assert "IP address" in result.message
    assert world.loopback("198.51.100.7") in result.message
    assert len(result.hops) == 1


def test_redirect_to_other_port_fails(world) -> None:
    host = _host()
    other_port = free_port()

    result = _check(world, host, {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "responses": {f"http://{host}{PATH}": _redirect(f"http://{host}:{other_port}{PATH}")},
    })

    assert not result.ok
    assert f"port {other_port}" in result.message
    assert str(world.http_port) in result.message


def test_redirect_to_ftp_fails(world) -> None:
    host = _host()

    result = _check(world, host, {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "responses": {f"http://{host}{PATH}": _redirect(f"ftp://{host}{PATH}")},
    })

    assert not result.ok
    assert "only to http and https" in result.message


def test_proxy_html_403_fails(world) -> None:
    host = _host()
    page = "<html><body><h1>Access denied by edge-proxy 7f3a</h1></body></html>"

    result = _check(world, host, {
        "dns": {host: {"A": ["203.0.113.80"]}},
        "responses": {f"http://{host}{PATH}": {
            "status": 403, "headers": {"Content-Type": "text/html", "Server": "edge-proxy"},
            "body": page}},
    })

    assert not result.ok
    assert "403 with an HTML page" in result.message
    assert "/.well-known/acme-challenge/" in result.message
    assert "CDN" in result.message
    assert "edge-proxy 7f3a" not in result.message
    assert result.hops[0].status == 403


def test_path_rewritten_404_fails(world) -> None:
    host = _host()
    rewritten = f"http://{host}/?url={PATH}"

    result = _check(world, host, {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "responses": {f"http://{host}{PATH}": _redirect(rewritten),
                      rewritten: {"status": 404, "body": "Not Found"}},
    })

    assert not result.ok
    assert "returned 404 after 1 redirect" in result.message
    assert world.url(rewritten) in result.message
    assert [hop.status for hop in result.hops] == [302, 404]


def test_origin_404_blames_proxy(world) -> None:
    host = _host()

    result = _check(world, host, {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "responses": {f"http://{host}{PATH}": {"status": 404, "body": "nope"}},
    })

    assert not result.ok
    assert "returned 404;" in result.message
    assert "does not pass /.well-known/acme-challenge/ through" in result.message


def test_wrong_body_fails(world) -> None:
    host = _host()

    result = _check(world, host, {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "responses": {f"http://{host}{PATH}": _ok("body-of-another-site-91c2")},
    })

    assert not result.ok
    assert "not the self-check body" in result.message
    assert "another server answers" in result.message
    assert "body-of-another-site-91c2" not in result.message


def test_server_error_fails(world) -> None:
    host = _host()

    result = _check(world, host, {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "responses": {f"http://{host}{PATH}": {"status": 502, "body": "bad gateway"}},
    })

    assert not result.ok
    assert "returned 502" in result.message


def test_ipv6_wrong_answer_fails(world) -> None:
    host = _host()

    # IPv4 would answer correctly, but the CA asks IPv6 first and gets a 404.
    result = _check(world, host, {
        "dns": {host: {"A": ["192.0.2.10"], "AAAA": ["2001:db8::10"]}},
        "responses": {f"http://{host}{PATH}": {"status": 404, "body": "Not Found"}},
    })

    assert not result.ok
    assert "IPv6 address ::1 in the AAAA record" in result.message
    assert "returned 404" in result.message
    assert [hop.address for hop in result.hops] == ["::1"]


def test_ipv6_only_passes(world) -> None:
    host = _host()

    result = _check(world, host, {"dns": {host: {"AAAA": ["2001:db8::10"]}},
                                  "responses": {f"http://{host}{PATH}": _ok()}})

    assert result.ok, result.message
    assert result.hops[0].address == "::1"


def test_ipv6_timeout_falls_back(world) -> None:
    host = _host()

    result = _check(world, host, {
        "dns": {host: {"A": ["192.0.2.10"], "AAAA": ["2001:db8::10"]}},
        "unreachable": {"2001:db8::10": "timeout"},
        "responses": {f"http://{host}{PATH}": _ok()},
    }, deadline=2.0)

    assert result.ok, result.message
    assert [(hop.address, hop.status) for hop in result.hops] == [
        ("::1", 0), (world.loopback("192.0.2.10"), 200)]
    assert "timed out" in result.hops[0].error
    assert len(result.warnings) == 1
    assert "IPv6 address ::1 in the AAAA record" in result.warnings[0]
    assert "fell back to IPv4" in result.warnings[0]


def test_ipv4_timeout_fails(world) -> None:
    host = _host()

    result = _check(world, host, {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "unreachable": {"192.0.2.10": "timeout"},
    }, deadline=1.0)

    assert not result.ok
    assert "timed out" in result.message
    assert result.hops[0].status == 0


def test_connection_refused_fails(world) -> None:
    host = _host()
    world.dns.add_a_record(host, ["127.0.0.2"])
    world.hostnames.append(host)

    result = _check(world, host, {})

    assert not result.ok
    assert "refused the connection" in result.message
    assert "A record" in result.message


def test_missing_dns_record_fails(world) -> None:
    host = _host()

    result = _check(world, host, {})

    assert not result.ok
    assert "no A or AAAA record" in result.message
    assert result.hops == []


def test_private_target_refused(world) -> None:
    host = _host()

    result = _check(world, host, {"dns": {host: {"A": ["192.0.2.10"]}},
                                  "responses": {f"http://{host}{PATH}": _ok()}},
                    allow_private=False)

    assert not result.ok
    assert "loopback address" in result.message
    assert result.hops == []
    assert result.warnings == []


def _caa_scenario(host: str, zone: str, policies: list[dict[str, str]]) -> dict:
    return {"dns": {host: {"A": ["192.0.2.10"]}},
            "caa": {zone: policies},
            "responses": {f"http://{host}{PATH}": _ok()}}


def test_caa_on_parent_forbids(world) -> None:
    zone = f"z{uuid.uuid4().hex[:8]}.example.com"
    host = f"shop.{zone}"

    result = _check(world, host, _caa_scenario(host, zone, [
        {"tag": "issue", "value": "digicert.com"}]))

    assert not result.ok
    assert f'{zone}. CAA 0 issue "digicert.com"' in result.message
    assert "letsencrypt.org" in result.message
    assert [hop.status for hop in result.hops] == [200]


@pytest.mark.parametrize("policies", [
    [{"tag": "issue", "value": "letsencrypt.org"}],
    [{"tag": "issue", "value": "digicert.com"}, {"tag": "issue", "value": "LetsEncrypt.org"}],
    [{"tag": "issue", "value": "letsencrypt.org; validationmethods=http-01,dns-01"}],
    [{"tag": "issuewild", "value": "digicert.com"}],
    [{"tag": "iodef", "value": "mailto:security@example.com"}],
])
def test_caa_allows(world, policies) -> None:
    zone = f"z{uuid.uuid4().hex[:8]}.example.com"
    host = f"shop.{zone}"

    result = _check(world, host, _caa_scenario(host, host, policies))

    assert result.ok, result.message


@pytest.mark.parametrize("policies", [
    [{"tag": "issue", "value": ";"}],
    [{"tag": "issue", "value": "letsencrypt.org; validationmethods=dns-01"}],
])
def test_caa_forbids(world, policies) -> None:
    zone = f"z{uuid.uuid4().hex[:8]}.example.com"
    host = f"shop.{zone}"

    result = _check(world, host, _caa_scenario(host, host, policies))

    assert not result.ok
    assert "CAA" in result.message
    assert f"{host}. CAA 0 issue" in result.message


def test_http_and_caa_failures_both_reported(world) -> None:
    zone = f"z{uuid.uuid4().hex[:8]}.example.com"
    host = f"shop.{zone}"
    scenario = _caa_scenario(host, zone, [{"tag": "issue", "value": "digicert.com"}])
    scenario["responses"] = {f"http://{host}{PATH}": {"status": 404}}

    result = _check(world, host, scenario)

    assert not result.ok
    assert "returned 404" in result.message
    assert any("CAA" in warning for warning in result.warnings)


def test_malformed_location_fails(world) -> None:
    host = _host()

    result = _check(world, host, {"dns": {host: {"A": ["192.0.2.10"]}},
                                  "responses": {f"http://{host}{PATH}": _redirect("http://[bad")}})

    assert not result.ok
    assert "not a valid URL" in result.message


def test_slow_body_times_out(world) -> None:
    host = _host()
    slow = {**_ok(), "drip_seconds": 0.5}

    result = _check(world, host, {"dns": {host: {"A": ["192.0.2.10"]}},
                                  "responses": {f"http://{host}{PATH}": slow}}, deadline=1.5)

    assert not result.ok
    assert "timed out" in result.message
    assert "not the self-check body" not in result.message
