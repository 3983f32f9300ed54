"""CheckDomain over gRPC: each kind of real-world setup played on loopback.

A `certsvc api` of its own gets challenge ports and a DNS server of its own, so the
scenarios' servers and DNS answers meet no other test.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Iterator

import grpc
import pytest

from devtools import stack
from devtools.pebble import free_port
from selfcheck_world import PATH, SELF_CHECK_BODY, World
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc
from service.redis_keys import RedisKeys


@pytest.fixture(scope="module")
def check_stub(processes: stack.Processes, scenario_dns, scenario_ports
               ) -> Iterator[certsvc_pb2_grpc.CertificateServiceStub]:
    port = free_port()
    http_port, https_port = scenario_ports
    process = processes.start("api-check-domain", "api", extra_env={
        "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{port}",
        "CERTSVC_CHALLENGE_PORT": str(http_port),
        "CERTSVC_CHALLENGE_HTTPS_PORT": str(https_port),
        "CERTSVC_DNS_SERVER": scenario_dns.dns_server,
        "CERTSVC_CHECK_DEADLINE_SECONDS": "5",
    })
    stack.wait_for_port("127.0.0.1", port, process=process)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield certsvc_pb2_grpc.CertificateServiceStub(channel)
    processes.stop("api-check-domain")


def _check(check_stub, world: World, redis_client, redis_prefix: str,
           scenario_for) -> tuple[str, pb.DomainCheck]:
    """Add a fresh domain, play the scenario with the body the service created, check it."""
    hostname = f"shop-{uuid.uuid4().hex[:8]}.example.com"
    check_stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-check"))
    body = redis_client.get(RedisKeys(redis_prefix).self_check_body(hostname))
    assert body, "AddDomain did not create the self-check body"
    world.play(scenario_for(hostname), body.decode())
    return hostname, check_stub.CheckDomain(pb.CheckDomainRequest(hostname=hostname), timeout=30)


def _ok() -> dict:
    return {"status": 200, "headers": {"Content-Type": "text/plain"}, "body": SELF_CHECK_BODY}


def test_direct_answer_ok(check_stub, world, redis_client, redis_prefix) -> None:
    hostname, check = _check(check_stub, world, redis_client, redis_prefix, lambda host: {
        "dns": {host: {"A": ["192.0.2.10"], "AAAA": []}},
        "responses": {f"http://{host}{PATH}": _ok()},
    })

    assert check.ok, check.message
    assert check.url == world.url(f"http://{hostname}{PATH}")
    assert check.final_url == check.url
    assert [(hop.url, hop.status) for hop in check.hops] == [(check.url, 200)]
    assert check.checked_at.seconds > 0


def test_eleven_redirects_rejected(check_stub, world, redis_client, redis_prefix) -> None:
    def scenario(host: str) -> dict:
        responses = {f"http://{host}{PATH}": {"status": 302, "headers": {
            "Location": f"http://{host}/hop1{PATH}"}}}
        for hop in range(1, 11):
            responses[f"http://{host}/hop{hop}{PATH}"] = {"status": 302, "headers": {
                "Location": f"http://{host}/hop{hop + 1}{PATH}"}}
        responses[f"http://{host}/hop11{PATH}"] = _ok()
        return {"dns": {host: {"A": ["192.0.2.10"]}}, "responses": responses}

    _, check = _check(check_stub, world, redis_client, redis_prefix, scenario)

    assert not check.ok
    assert "redirect" in check.message
    assert "more than 10" in check.message
    assert len(check.hops) == 11
    assert check.final_url == ""


def test_redirect_to_other_host_ok(check_stub, world, redis_client, redis_prefix) -> None:
    hostname, check = _check(check_stub, world, redis_client, redis_prefix, lambda host: {
        "dns": {host: {"A": ["192.0.2.10"]}, f"www.{host}": {"A": ["192.0.2.10"]}},
        "responses": {
            f"http://{host}{PATH}": {"status": 302, "headers": {
                "Location": f"https://www.{host}{PATH}"}},
            f"https://www.{host}{PATH}": {**_ok(), "tls": "valid"},
        },
    })

    assert check.ok, check.message
    assert check.final_url == world.url(f"https://www.{hostname}{PATH}")
    assert [hop.status for hop in check.hops] == [302, 200]


def test_redirect_to_ip_rejected(check_stub, world, redis_client, redis_prefix) -> None:
    _, check = _check(check_stub, world, redis_client, redis_prefix, lambda host: {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "responses": {
            f"http://{host}{PATH}": {"status": 302, "headers": {
                "Location": f"http://198.51.100.7{PATH}"}},
            f"http://198.51.100.7{PATH}": _ok(),
        },
    })

    assert not check.ok
    assert "IP address" in check.message
    assert world.loopback("198.51.100.7") in check.message


def test_proxy_html_rejected(check_stub, world, redis_client, redis_prefix) -> None:
    _, check = _check(check_stub, world, redis_client, redis_prefix, lambda host: {
        "dns": {host: {"A": ["203.0.113.80"]}},
        "responses": {f"http://{host}{PATH}": {
            "status": 403, "headers": {"Content-Type": "text/html", "Server": "edge-proxy"},
            "body": "<html><body><h1>Access denied</h1></body></html>"}},
    })

    assert not check.ok
    assert "403" in check.message
    assert "/.well-known/acme-challenge/" in check.message
    assert "Access denied" not in check.message
    assert check.hops[0].status == 403


def test_rewritten_path_404_rejected(check_stub, world, redis_client, redis_prefix) -> None:
    _, check = _check(check_stub, world, redis_client, redis_prefix, lambda host: {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "responses": {
            f"http://{host}{PATH}": {"status": 302, "headers": {
                "Location": f"http://{host}/?url={PATH}"}},
            f"http://{host}/?url={PATH}": {"status": 404, "body": "Not Found"},
        },
    })

    assert not check.ok
    assert "404" in check.message
    assert [hop.status for hop in check.hops] == [302, 404]


def test_check_recorded_with_hops(check_stub, world, redis_client, redis_prefix) -> None:
    hostname, check = _check(check_stub, world, redis_client, redis_prefix, lambda host: {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "responses": {f"http://{host}{PATH}": {"status": 404}},
    })

    events = check_stub.ListDomainEvents(pb.ListDomainEventsRequest(hostname=hostname)).events

    assert events[0].type == "SELF_CHECK_FAILED"
    assert check.message in events[0].message
    assert f"GET {check.url} ({world.loopback('192.0.2.10')}): 404" in events[0].message


def test_check_unknown_domain(check_stub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        check_stub.CheckDomain(pb.CheckDomainRequest(hostname="missing-check.example.com"))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_check_wildcard_domain(check_stub) -> None:
    hostname = f"*.w{uuid.uuid4().hex[:8]}.example.com"
    check_stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-check"))

    with pytest.raises(grpc.RpcError) as raised:
        check_stub.CheckDomain(pb.CheckDomainRequest(hostname=hostname))

    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "wildcard" in raised.value.details()


def test_check_sets_last_error(check_stub, world, redis_client, redis_prefix) -> None:
    hostname, check = _check(check_stub, world, redis_client, redis_prefix, lambda host: {
        "dns": {host: {"A": ["192.0.2.10"]}},
        "responses": {f"http://{host}{PATH}": {"status": 404}},
    })

    domain = check_stub.GetDomain(pb.GetDomainRequest(hostname=hostname))

    assert not check.ok
    assert domain.status == pb.Domain.PENDING
    assert domain.last_error == check.message


def test_concurrent_checks_capped(check_stub, world, redis_client, redis_prefix) -> None:
    """Slow checks take only some of the api's threads; the rest are turned away."""
    hostname = f"slow-{uuid.uuid4().hex[:8]}.example.com"
    check_stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-check"))
    body = redis_client.get(RedisKeys(redis_prefix).self_check_body(hostname)).decode()
    world.play({"dns": {hostname: {"A": ["192.0.2.77"]}}, "unreachable": {"192.0.2.77": "timeout"}},
               body)

    def check(_: int) -> grpc.StatusCode:
        try:
            check_stub.CheckDomain(pb.CheckDomainRequest(hostname=hostname), timeout=30)
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(check, range(12)))

    assert codes.count(grpc.StatusCode.OK) == 8
    assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 4
