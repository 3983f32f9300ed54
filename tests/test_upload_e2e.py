"""A domain with an uploaded certificate switches to Let's Encrypt (Pebble) end to end, and
the uploaded certificate serves until the issued one is stored."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import psycopg
import pytest
from cryptography import x509

from conftest import wait_for_issuance
from devtools import stack
from pki_factory import Pki
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc
from service.store import locks
from upload_cases import host_of
from upload_support import start_api, unique_zone, write_trust_bundle

pytestmark = [pytest.mark.pebble, pytest.mark.usefixtures("issuance_stack")]


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.create("switch")


@pytest.fixture(scope="module")
def stub(processes: stack.Processes, pki: Pki, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[certsvc_pb2_grpc.CertificateServiceStub]:
    """An api of the test run's stack (same database, Redis and workers) that trusts pki."""
    bundle = write_trust_bundle(tmp_path_factory.mktemp("trust") / "roots.pem", [pki.root])
    address = start_api(processes, "api-upload-e2e", bundle)
    with grpc.insecure_channel(address) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield certsvc_pb2_grpc.CertificateServiceStub(channel)


def test_request_switches_custom_to_lets_encrypt(stub, pki: Pki, database_url: str) -> None:
    hostname = host_of(unique_zone())
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-switch"))
    leaf = pki.leaf([hostname])
    custom = stub.UploadCertificate(pb.UploadCertificateRequest(
        hostname=hostname, certificate_chain_pem=pki.chain_pem(leaf),
        private_key_pem=leaf.key_pem()))

    with psycopg.connect(database_url, autocommit=True) as connection:
        domain_id = connection.execute("SELECT id FROM domains WHERE hostname = %s",
                                       (hostname,)).fetchone()[0]
        # While the test holds the domain's lock, no worker can store the new certificate.
        assert locks.try_lock_domain(connection, domain_id)
        issuance = stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))
        during = stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname))
        domain_during = stub.GetDomain(pb.GetDomainRequest(hostname=hostname))
        locks.unlock_domain(connection, domain_id)
    finished = wait_for_issuance(stub, issuance.id)

    assert during.id == custom.id
    assert during.source == pb.CUSTOM
    assert domain_during.status == pb.Domain.ACTIVE
    assert domain_during.certificate_source == pb.CUSTOM
    assert finished.state == pb.Issuance.SUCCEEDED, finished.error
    after = stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname))
    assert after.id == finished.certificate_id
    assert after.source == pb.LETS_ENCRYPT
    assert "Pebble" in after.issuer
    assert x509.load_pem_x509_certificates(after.chain_pem.encode())[0] != leaf.certificate
    domain_after = stub.GetDomain(pb.GetDomainRequest(hostname=hostname))
    assert domain_after.status == pb.Domain.ACTIVE
    assert domain_after.certificate_source == pb.LETS_ENCRYPT
