"""Issuance end to end: gRPC api, RQ worker, responder and a real Pebble validating HTTP-01."""

from __future__ import annotations

import concurrent.futures
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import verification

from conftest import unique_hostname, wait_for_issuance
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb

pytestmark = [pytest.mark.pebble, pytest.mark.usefixtures("issuance_stack")]


def _issue(stub, hostname: str) -> pb.Issuance:
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-e2e"))
    issuance = stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))
    return wait_for_issuance(stub, issuance.id)


def _verify_chain(chain_pem: str, roots_pem: str, hostname: str) -> None:
    """Verify a served chain up to Pebble's root as a TLS client would."""
    chain = x509.load_pem_x509_certificates(chain_pem.encode())
    store = verification.Store(x509.load_pem_x509_certificates(roots_pem.encode()))
    verifier = (verification.PolicyBuilder().store(store)
                .time(datetime.datetime.now(datetime.timezone.utc))
                .build_server_verifier(x509.DNSName(hostname)))
    verifier.verify(chain[0], chain[1:])


def test_certificate_issued_and_verifiable(stub, pebble) -> None:
    hostname = unique_hostname("e2e")

    issuance = _issue(stub, hostname)

    assert issuance.state == pb.Issuance.SUCCEEDED, issuance.error
    assert issuance.attempt == 1
    certificate = stub.GetCertificate(
        pb.GetCertificateRequest(hostname=hostname, include_private_key=True))
    assert certificate.id == issuance.certificate_id
    assert list(certificate.hostnames) == [hostname]
    assert certificate.source == pb.LETS_ENCRYPT
    assert certificate.key_type == "ECDSA-P256"
    assert "Pebble" in certificate.issuer
    _verify_chain(certificate.chain_pem, pebble.root_certificates_pem(), hostname)

    leaf = x509.load_pem_x509_certificates(certificate.chain_pem.encode())[0]
    key = serialization.load_pem_private_key(certificate.private_key_pem.encode(), password=None)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*spki) == leaf.public_key().public_bytes(*spki)

    domain = stub.GetDomain(pb.GetDomainRequest(hostname=hostname))
    assert domain.status == pb.Domain.ACTIVE
    assert domain.certificate_source == pb.LETS_ENCRYPT
    assert domain.certificate_not_after == certificate.not_after


def test_certificate_without_key_by_default(stub) -> None:
    hostname = unique_hostname("nokey")
    assert _issue(stub, hostname).state == pb.Issuance.SUCCEEDED

    certificate = stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname))

    assert certificate.private_key_pem == ""


def test_two_domains_at_once(stub) -> None:
    hostnames = [unique_hostname("pair") for _ in range(2)]

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda name: _issue(stub, name), hostnames))

    assert [result.state for result in results] == [pb.Issuance.SUCCEEDED] * 2
    assert results[0].certificate_id != results[1].certificate_id


def test_request_twice_returns_same_issuance(stub) -> None:
    hostname = unique_hostname("twice")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-e2e"))

    first = stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))
    second = stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))

    assert second.id == first.id
    assert wait_for_issuance(stub, first.id).state == pb.Issuance.SUCCEEDED


def test_timeline_tells_the_story(stub) -> None:
    hostname = unique_hostname("story")
    issuance = _issue(stub, hostname)

    events = stub.ListDomainEvents(pb.ListDomainEventsRequest(hostname=hostname)).events

    types = [event.type for event in reversed(events)]
    assert types == ["DOMAIN_ADDED", "ISSUANCE_QUEUED", "ISSUANCE_STARTED", "SELF_CHECK_PASSED",
                     "ORDER_CREATED", "CHALLENGE_VALIDATED", "ISSUANCE_SUCCEEDED"]
    assert all(event.issuance_id == issuance.id for event in events[:-1])


def test_removed_domain_loses_certificate(stub) -> None:
    hostname = unique_hostname("gone")
    assert _issue(stub, hostname).state == pb.Issuance.SUCCEEDED

    stub.RemoveDomain(pb.RemoveDomainRequest(hostname=hostname))
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-e2e"))

    domain = stub.GetDomain(pb.GetDomainRequest(hostname=hostname))
    assert domain.status == pb.Domain.PENDING
    assert domain.certificate_source == pb.NONE


def test_concurrent_requests_share_issuance(stub) -> None:
    """Requests racing with the worker's own transactions all get the one issuance."""
    for _ in range(5):
        hostname = unique_hostname("race")
        stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-e2e"))

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            issuances = list(pool.map(
                lambda _: stub.RequestCertificate(
                    pb.RequestCertificateRequest(hostname=hostname), timeout=30),
                range(10)))

        # A request that comes after the first issuance finished renews, so a round may
        # see more than one issuance; every call must still succeed and every issuance end well.
        ids = {issuance.id for issuance in issuances}
        final_states = {wait_for_issuance(stub, issuance_id).state for issuance_id in ids}
        assert final_states == {pb.Issuance.SUCCEEDED}
