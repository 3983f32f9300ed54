"""An api whose Redis is down refuses issuance cleanly and loses nothing."""

from __future__ import annotations

import grpc
import psycopg
import pytest

from conftest import unique_hostname, wait_for_issuance
from devtools import stack
from devtools.pebble import free_port
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc


@pytest.fixture(scope="module")
def stub_without_redis(processes: stack.Processes):
    port = free_port()
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    process = processes.start("api-no-redis", "api", extra_env={
        "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{port}", "CERTSVC_REDIS_URL": dead_redis})
    stack.wait_for_port("127.0.0.1", port, process=process)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield certsvc_pb2_grpc.CertificateServiceStub(channel)
    processes.stop("api-no-redis")


def test_request_unavailable_writes_nothing(stub_without_redis, database_url: str) -> None:
    hostname = unique_hostname("noredis")
    stub_without_redis.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))

    with pytest.raises(grpc.RpcError) as raised:
        stub_without_redis.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))

    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "Redis" in raised.value.details()
    with psycopg.connect(database_url) as connection:
        issuances = connection.execute(
            "SELECT count(*) FROM issuances WHERE hostname = %s", (hostname,)).fetchone()[0]
        status = connection.execute(
            "SELECT status FROM domains WHERE hostname = %s", (hostname,)).fetchone()[0]
    assert issuances == 0
    assert status == "PENDING"


@pytest.mark.pebble
@pytest.mark.usefixtures("issuance_stack")
def test_request_succeeds_once_redis_is_back(stub_without_redis, stub) -> None:
    hostname = unique_hostname("redisback")
    stub_without_redis.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-1"))
    with pytest.raises(grpc.RpcError):
        stub_without_redis.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))

    issuance = stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))

    assert wait_for_issuance(stub, issuance.id).state == pb.Issuance.SUCCEEDED
