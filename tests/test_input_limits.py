"""Limits on every request field, the request and its metadata, over real gRPC calls."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from conftest import unique_hostname
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb


def _rejection(call, request, **options) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=20, **options)
    return raised.value


def _violated_fields(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status details"
    detail = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(detail)
    return [violation.field for violation in detail.field_violations]


@pytest.mark.parametrize(("rpc", "request_fields", "field", "limit"), [
    ("GetDomain", {"hostname": "a" * 300}, "hostname", "254"),
    ("AddDomain", {"hostname": "shop.example.com", "app_id": "a" * 200}, "app_id", "128"),
    ("ListDomains", {"page_token": "A" * 600}, "page_token", "512"),
    ("GetIssuance", {"id": "1" * 100}, "id", "64"),
    ("UploadCertificate", {"hostname": "shop.example.com",
                           "certificate_chain_pem": "A" * (300 * 1024)},
     "certificate_chain_pem", "256 KiB"),
    ("UploadCertificate", {"hostname": "shop.example.com",
                           "private_key_pem": "A" * (300 * 1024)},
     "private_key_pem", "256 KiB"),
    ("UploadCertificate", {"hostname": "shop.example.com", "passphrase": "p" * 2000},
     "passphrase", "1024"),
])
def test_field_over_limit(stub, rpc: str, request_fields: dict, field: str, limit: str) -> None:
    if rpc == "UploadCertificate":
        # UploadCertificate looks the domain up before it reads the PEM fields.
        hostname = unique_hostname("limits")
        stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))
        request_fields = {**request_fields, "hostname": hostname}
    request = getattr(pb, f"{rpc}Request")(**request_fields)

    error = _rejection(getattr(stub, rpc), request)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.details()
    assert limit in error.details()
    violated = _violated_fields(error)
    assert field in violated
    if rpc != "UploadCertificate":  # which lists the other, empty PEM field too
        assert violated == [field]


def test_hostname_rule_names_253(stub) -> None:
    error = _rejection(stub.AddDomain, pb.AddDomainRequest(
        hostname=".".join(["a" * 50] * 5), app_id="app-1"))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "253" in error.details()


def test_page_size_over_limit(stub) -> None:
    error = _rejection(stub.ListDomainEvents, pb.ListDomainEventsRequest(
        hostname=unique_hostname(), page_size=5000))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1000" in error.details()


@pytest.mark.parametrize("text", ["shop\x00.example.com", "shop.exa\x1bmple.com", "\x7fshop.com"])
def test_control_character_rejected(stub, text: str) -> None:
    error = _rejection(stub.GetDomain, pb.GetDomainRequest(hostname=text))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "control character" in error.details()


def test_request_over_limit(stub) -> None:
    request = pb.UploadCertificateRequest(hostname="shop.example.com",
                                          certificate_chain_pem="A" * (1200 * 1024))

    error = _rejection(stub.UploadCertificate, request)

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "1048576 bytes" in error.details()


def test_message_over_transport_limit(stub) -> None:
    request = pb.UploadCertificateRequest(hostname="shop.example.com",
                                          certificate_chain_pem="A" * (5 * 1024 * 1024))

    error = _rejection(stub.UploadCertificate, request)

    # The transport refuses it before certsvc sees it; gRPC names the limit.
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "4194304" in error.details()


def test_metadata_over_limit(stub) -> None:
    error = _rejection(stub.ListDomains, pb.ListDomainsRequest(),
                       metadata=[("x-filler", "v" * 20000)])

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "8192 bytes" in error.details()


def test_metadata_over_transport_limit(stub) -> None:
    error = _rejection(stub.ListDomains, pb.ListDomainsRequest(),
                       metadata=[("x-filler", "v" * 70000)])

    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "65536" in error.details()


@pytest.mark.parametrize("payload", [
    b"\xff\xff\xff\xff",
    # Field 1 (hostname) holding bytes that are not UTF-8.
    b"\x0a\x02\xff\xfe",
    # Field 1 announcing more bytes than follow.
    b"\x0a\x7fshort",
])
def test_undecodable_request_invalid_argument(channel, payload: bytes) -> None:
    call = channel.unary_unary("/certsvc.v1.CertificateService/GetDomain")

    with pytest.raises(grpc.RpcError) as raised:
        call(payload, timeout=10)

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in raised.value.details()


@pytest.mark.parametrize("token", [
    # base64url of "domain:" followed by a NUL and of an event id out of bigint range
    "ZG9tYWluOgA",
    "ZXZlbnQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ",
])
def test_forged_page_token_invalid(stub, token: str) -> None:
    hostname = unique_hostname("token")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))

    domains = _rejection(stub.ListDomains, pb.ListDomainsRequest(page_token=token))
    events = _rejection(stub.ListDomainEvents, pb.ListDomainEventsRequest(
        hostname=hostname, page_token=token))

    assert domains.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert events.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token" in domains.details()
