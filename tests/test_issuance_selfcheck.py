"""The worker's self-check before ordering, with Pebble and the session's DNS server."""

from __future__ import annotations

import time

import pytest

from conftest import unique_hostname
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb

pytestmark = [pytest.mark.pebble, pytest.mark.usefixtures("issuance_stack")]


def _wait_for_error(stub, issuance_id: str, timeout: float = 60.0) -> pb.Issuance:
    deadline = time.monotonic() + timeout
    while True:
        issuance = stub.GetIssuance(pb.GetIssuanceRequest(id=issuance_id), timeout=10)
        if issuance.error:
            return issuance
        if time.monotonic() > deadline:
            pytest.fail(f"issuance {issuance_id} has no error after {timeout:g} s "
                        f"(state {pb.Issuance.State.Name(issuance.state)})")
        time.sleep(0.1)


def test_failed_self_check_places_no_order(stub, pebble) -> None:
    hostname = unique_hostname("unreachable")
    # Nothing listens on 127.0.0.2 at the challenge port, so the connection is refused.
    pebble.add_a_record(hostname, ["127.0.0.2"])
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-e2e"))

    issuance = stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))
    failed = _wait_for_error(stub, issuance.id)

    assert "self-check failed" in failed.error
    assert "refused the connection" in failed.error
    assert failed.attempt == 1
    events = stub.ListDomainEvents(pb.ListDomainEventsRequest(hostname=hostname)).events
    types = [event.type for event in events]
    assert "SELF_CHECK_FAILED" in types
    assert "ORDER_CREATED" not in types
    self_check = next(event for event in events if event.type == "SELF_CHECK_FAILED")
    assert f"{hostname}:" in self_check.message
    assert "127.0.0.2" in self_check.message
    assert self_check.issuance_id == issuance.id
    domain = stub.GetDomain(pb.GetDomainRequest(hostname=hostname))
    assert domain.status == pb.Domain.ISSUING
    assert domain.last_error == failed.error
    stub.RemoveDomain(pb.RemoveDomainRequest(hostname=hostname))


def test_caa_forbids_order(stub, pebble) -> None:
    hostname = unique_hostname("caa")
    pebble.add_caa_record(hostname, [{"tag": "issue", "value": "ca.example.net"}])
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-e2e"))

    issuance = stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))
    failed = _wait_for_error(stub, issuance.id)

    assert 'CAA 0 issue "ca.example.net"' in failed.error
    types = [event.type for event in
             stub.ListDomainEvents(pb.ListDomainEventsRequest(hostname=hostname)).events]
    assert "ORDER_CREATED" not in types
    pebble.clear_records(hostname)
    stub.RemoveDomain(pb.RemoveDomainRequest(hostname=hostname))
