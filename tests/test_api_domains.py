"""Domain RPCs over a real gRPC connection to a `certsvc api` process."""

from __future__ import annotations

import base64

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from conftest import unique_hostname
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb


def _bad_request(error: grpc.RpcError) -> error_details_pb2.BadRequest:
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status details"
    detail = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(detail)
    return detail


def test_add_domain_normalizes_hostname(stub) -> None:
    typed = unique_hostname("Shop").upper() + "."

    domain = stub.AddDomain(pb.AddDomainRequest(hostname=typed, app_id="app-1"))

    assert domain.hostname == typed.lower().rstrip(".")
    assert domain.app_id == "app-1"
    assert domain.status == pb.Domain.PENDING
    assert domain.certificate_source == pb.NONE
    assert domain.created_at.seconds > 0


def test_add_domain_keeps_unicode_form(stub) -> None:
    label = unique_hostname("café").split(".")[0]

    domain = stub.AddDomain(pb.AddDomainRequest(hostname=f"{label}.example.com", app_id="app-1"))

    assert domain.hostname.startswith("xn--")
    assert domain.unicode_hostname == f"{label}.example.com"


def test_add_domain_twice_same_app_returns_it(stub) -> None:
    hostname = unique_hostname()
    first = stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))

    second = stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))

    assert second.created_at == first.created_at


def test_add_domain_other_app_already_exists(stub) -> None:
    hostname = unique_hostname()
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))

    with pytest.raises(grpc.RpcError) as raised:
        stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-2"))

    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert hostname in raised.value.details()


@pytest.mark.parametrize(("hostname", "word"), [
    ("", "empty"),
    ("https://shop.example.com/", "host name only"),
    ("shop_1.example.com", "underscore"),
    ("a" * 64 + ".example.com", "63"),
])
def test_add_domain_invalid_hostname(stub, hostname: str, word: str) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert word in raised.value.details()
    violations = _bad_request(raised.value).field_violations
    assert [violation.field for violation in violations] == ["hostname"]


def test_add_domain_missing_app_id(stub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.AddDomain(pb.AddDomainRequest(hostname=unique_hostname(), app_id=""))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_request(raised.value).field_violations[0].field == "app_id"


def test_get_unknown_domain_not_found(stub) -> None:
    hostname = unique_hostname("missing")

    with pytest.raises(grpc.RpcError) as raised:
        stub.GetDomain(pb.GetDomainRequest(hostname=hostname))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert hostname in raised.value.details()


def test_list_domains_pages_in_order(stub) -> None:
    app_id = f"app-list-{unique_hostname().split('.')[0]}"
    hostnames = sorted(unique_hostname("list") for _ in range(5))
    for hostname in hostnames:
        stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id=app_id))

    seen, token, pages = [], "", 0
    while True:
        page = stub.ListDomains(pb.ListDomainsRequest(app_id=app_id, page_size=2, page_token=token))
        seen += [domain.hostname for domain in page.domains]
        pages += 1
        token = page.next_page_token
        if not token:
            break

    assert seen == hostnames
    assert pages == 3


def test_list_domains_bad_token(stub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListDomains(pb.ListDomainsRequest(page_token="garbage!"))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in raised.value.details()


def test_list_domains_page_size_limit(stub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.ListDomains(pb.ListDomainsRequest(page_size=100000))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1000" in raised.value.details()


def test_remove_domain(stub) -> None:
    hostname = unique_hostname("removed")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))

    stub.RemoveDomain(pb.RemoveDomainRequest(hostname=hostname))

    with pytest.raises(grpc.RpcError) as raised:
        stub.GetDomain(pb.GetDomainRequest(hostname=hostname))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_events_record_domain_added(stub) -> None:
    hostname = unique_hostname("events")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))

    events = stub.ListDomainEvents(pb.ListDomainEventsRequest(hostname=hostname)).events

    assert [event.type for event in events] == ["DOMAIN_ADDED"]
    assert hostname in events[0].message


def test_get_issuance_bad_id(stub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetIssuance(pb.GetIssuanceRequest(id="not-a-uuid"))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_certificate_of_domain_without_one(stub) -> None:
    hostname = unique_hostname("nocert")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))

    with pytest.raises(grpc.RpcError) as raised:
        stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no certificate yet" in raised.value.details()


def test_wildcard_request_failed_precondition(stub) -> None:
    hostname = "*." + unique_hostname("wild")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))

    with pytest.raises(grpc.RpcError) as raised:
        stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))

    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "wildcard" in raised.value.details()
    assert "DNS-01" in raised.value.details()
    assert "UploadCertificate" in raised.value.details()


def test_health_serving(channel) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "certsvc.v1.CertificateService"):
        response = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("payload", [b"domain:\x00", b"domain:" + "é".encode(), b"event:\xc2\xb2",
                                     b"event:" + b"9" * 30, b"event:" + b"9" * 5000])
def test_crafted_page_token_invalid(stub, payload: bytes) -> None:
    hostname = unique_hostname("tokens")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))
    token = base64.urlsafe_b64encode(payload).decode()

    with pytest.raises(grpc.RpcError) as raised:
        if payload.startswith(b"event"):
            stub.ListDomainEvents(pb.ListDomainEventsRequest(hostname=hostname, page_token=token))
        else:
            stub.ListDomains(pb.ListDomainsRequest(page_token=token))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in raised.value.details()


def test_not_found_logged_at_debug_only(stub, processes) -> None:
    unknown = unique_hostname("unknown")
    attached = unique_hostname("attached")
    stub.AddDomain(pb.AddDomainRequest(hostname=attached, app_id="app-1"))

    with pytest.raises(grpc.RpcError) as not_found:
        stub.GetCertificate(pb.GetCertificateRequest(hostname=unknown))
    # A later call that fails with another code shows that the api has logged both.
    with pytest.raises(grpc.RpcError) as exists:
        stub.AddDomain(pb.AddDomainRequest(hostname=attached, app_id="app-2"))
    log = processes.log_text("api")

    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND
    assert exists.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert f"AddDomain failed code=ALREADY_EXISTS: {attached}" in log
    unknown_lines = [line for line in log.splitlines() if unknown in line]
    assert unknown_lines
    assert all(" DEBUG " in line for line in unknown_lines), unknown_lines
