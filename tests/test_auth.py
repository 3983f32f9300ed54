"""Who may call what: bearer tokens, scoped principals, mutual TLS, reflection and health.

Each api here is a real `certsvc api` process without development mode, on the test
run's database, called over real sockets.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import leak_scan
from conftest import OPERATOR_TOKEN, start_api_without_dev_mode, unique_hostname
from devtools import stack
from devtools.credentials import new_token, with_bearer_token, write_callers_file
from devtools.pebble import free_port
from pki import TestAuthority
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc

TOKENS = {name: new_token() for name in ("operator", "app-a", "app-a-keys", "app-b")}
for _name, _token in TOKENS.items():
    leak_scan.watch(f"token of test principal {_name}", _token)

PRINCIPALS = [
    {"name": "operator", "apps": "*", "read_private_keys": True, "tokens": [TOKENS["operator"]]},
    {"name": "app-a", "apps": ["app-a"], "tokens": [TOKENS["app-a"]]},
    {"name": "app-a-keys", "apps": ["app-a"], "read_private_keys": True,
     "tokens": [TOKENS["app-a-keys"]]},
    {"name": "app-b", "apps": ["app-b"], "tokens": [TOKENS["app-b"]]},
    {"name": "edge", "apps": ["app-a"], "client_certificate_names": ["edge.internal"]},
]


def _code(call, *arguments) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        call(*arguments, timeout=10)
    return raised.value.code()


@pytest.fixture(scope="module")
def callers_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_callers_file(tmp_path_factory.mktemp("auth") / "callers.toml", PRINCIPALS)


@pytest.fixture(scope="module")
def address(processes: stack.Processes, callers_path: Path):
    yield start_api_without_dev_mode(processes, "api-auth", {"CERTSVC_API_TOKENS_FILE": str(callers_path)})
    processes.stop("api-auth")


@pytest.fixture(scope="module")
def plain_channel(address: str):
    with grpc.insecure_channel(address) as channel:
        yield channel


def _stub(channel: grpc.Channel, principal: str) -> certsvc_pb2_grpc.CertificateServiceStub:
    return certsvc_pb2_grpc.CertificateServiceStub(
        with_bearer_token(channel, TOKENS[principal]))


@pytest.fixture(scope="module")
def domains(plain_channel) -> dict[str, str]:
    """One domain of app-a and one of app-b, added by the operator."""
    operator = _stub(plain_channel, "operator")
    names = {"app-a": unique_hostname("auth-a"), "app-b": unique_hostname("auth-b")}
    for app_id, hostname in names.items():
        operator.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id=app_id))
    return names


def test_no_credentials_unauthenticated(plain_channel) -> None:
    stub = certsvc_pb2_grpc.CertificateServiceStub(plain_channel)

    with pytest.raises(grpc.RpcError) as raised:
        stub.ListDomains(pb.ListDomainsRequest(), timeout=10)

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer" in raised.value.details()


@pytest.mark.parametrize("header", [
    "Bearer wrong-token-that-nobody-has-000000",
    "Basic dXNlcjpwYXNzd29yZA==",
    "Bearer",
    "Bearer " + "x" * 600,
])
def test_bad_authorization_unauthenticated(plain_channel, processes, header: str) -> None:
    stub = certsvc_pb2_grpc.CertificateServiceStub(plain_channel)

    with pytest.raises(grpc.RpcError) as raised:
        stub.ListDomains(pb.ListDomainsRequest(), metadata=[("authorization", header)],
                         timeout=10)

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    token = header.partition(" ")[2]
    assert not token or token not in raised.value.details()
    assert not token or token not in processes.log_text("api-auth")


def test_empty_bearer_token_named(plain_channel) -> None:
    stub = certsvc_pb2_grpc.CertificateServiceStub(plain_channel)

    with pytest.raises(grpc.RpcError) as raised:
        stub.ListDomains(pb.ListDomainsRequest(), metadata=[("authorization", "Bearer ")],
                         timeout=10)

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "empty bearer token" in raised.value.details()


def test_token_of_other_api_unauthenticated(plain_channel) -> None:
    stub = certsvc_pb2_grpc.CertificateServiceStub(with_bearer_token(plain_channel,
                                                                     OPERATOR_TOKEN))

    assert _code(stub.ListDomains, pb.ListDomainsRequest()) == grpc.StatusCode.UNAUTHENTICATED


def test_health_open(plain_channel) -> None:
    health = health_pb2_grpc.HealthStub(plain_channel)

    response = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)

    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_scoped_caller_sees_own_domain(plain_channel, domains) -> None:
    stub = _stub(plain_channel, "app-a")

    domain = stub.GetDomain(pb.GetDomainRequest(hostname=domains["app-a"]), timeout=10)

    assert domain.app_id == "app-a"


@pytest.mark.parametrize("rpc", ["GetDomain", "RemoveDomain", "RequestCertificate",
                                 "GetCertificate", "ListDomainEvents"])
def test_other_apps_domain_not_found(plain_channel, domains, rpc: str) -> None:
    stub = _stub(plain_channel, "app-a")
    request_class = getattr(pb, f"{rpc}Request")

    with pytest.raises(grpc.RpcError) as raised:
        getattr(stub, rpc)(request_class(hostname=domains["app-b"]), timeout=10)

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert domains["app-b"] in raised.value.details()


def test_not_found_same_as_missing(plain_channel, domains) -> None:
    stub = _stub(plain_channel, "app-a")
    missing = unique_hostname("never-added")

    other = _details(stub.GetDomain, pb.GetDomainRequest(hostname=domains["app-b"]))
    absent = _details(stub.GetDomain, pb.GetDomainRequest(hostname=missing))

    assert other.replace(domains["app-b"], "NAME") == absent.replace(missing, "NAME")


def _details(call, request) -> str:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=10)
    return raised.value.details()


def test_other_app_domain_survives_remove(plain_channel, domains) -> None:
    with pytest.raises(grpc.RpcError):
        _stub(plain_channel, "app-a").RemoveDomain(
            pb.RemoveDomainRequest(hostname=domains["app-b"]), timeout=10)

    domain = _stub(plain_channel, "app-b").GetDomain(
        pb.GetDomainRequest(hostname=domains["app-b"]), timeout=10)
    assert domain.app_id == "app-b"


def test_list_shows_only_own_apps(plain_channel, domains) -> None:
    stub = _stub(plain_channel, "app-a")

    listed = stub.ListDomains(pb.ListDomainsRequest(page_size=1000), timeout=10).domains
    other = stub.ListDomains(pb.ListDomainsRequest(app_id="app-b"), timeout=10).domains

    assert {domain.app_id for domain in listed} == {"app-a"}
    assert domains["app-a"] in {domain.hostname for domain in listed}
    assert list(other) == []


def test_add_to_other_app_denied(plain_channel) -> None:
    stub = _stub(plain_channel, "app-a")

    with pytest.raises(grpc.RpcError) as raised:
        stub.AddDomain(pb.AddDomainRequest(hostname=unique_hostname(), app_id="app-b"),
                       timeout=10)

    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "app-b" in raised.value.details()


def test_taken_hostname_already_exists(plain_channel, domains) -> None:
    stub = _stub(plain_channel, "app-a")

    with pytest.raises(grpc.RpcError) as raised:
        stub.AddDomain(pb.AddDomainRequest(hostname=domains["app-b"], app_id="app-a"),
                       timeout=10)

    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.fixture(scope="module")
def certified_domain(plain_channel, database_url: str) -> str:
    """A domain of app-a with a certificate row, written to Postgres directly."""
    hostname = unique_hostname("auth-cached")
    _stub(plain_channel, "operator").AddDomain(pb.AddDomainRequest(hostname=hostname,
                                                                   app_id="app-a"))
    with psycopg.connect(database_url, autocommit=True) as connection:
        domain_id = connection.execute("SELECT id FROM domains WHERE hostname = %s",
                                       (hostname,)).fetchone()[0]
        certificate_id = connection.execute(
            """
            INSERT INTO certificates (domain_id, source, hostnames, chain_pem,
                private_key_sealed, key_type, not_before, not_after, issuer, serial_number,
                sha256_fingerprint)
            VALUES (%s, 'LETS_ENCRYPT', ARRAY[%s], 'chain', '\\x00', 'ECDSA-P256', now(),
                    now() + interval '90 days', 'CN=test', '01', 'AA')
            RETURNING id
            """, (domain_id, hostname)).fetchone()[0]
        connection.execute("UPDATE domains SET certificate_id = %s WHERE id = %s",
                           (certificate_id, domain_id))
    return hostname


def test_cached_certificate_only_for_its_app(plain_channel, certified_domain: str) -> None:
    request = pb.GetCertificateRequest(hostname=certified_domain)
    owner = _stub(plain_channel, "app-a")
    for _ in range(3):  # the second and third responses come from the api's cache
        assert owner.GetCertificate(request, timeout=10).hostnames == [certified_domain]

    other_app = _code(_stub(plain_channel, "app-b").GetCertificate, request)
    typed_form = _code(_stub(plain_channel, "app-b").GetCertificate,
                       pb.GetCertificateRequest(hostname=certified_domain.upper()))

    assert other_app == grpc.StatusCode.NOT_FOUND
    assert typed_form == grpc.StatusCode.NOT_FOUND


def test_cached_certificate_key_needs_permission(plain_channel, certified_domain: str) -> None:
    owner = _stub(plain_channel, "app-a")
    owner.GetCertificate(pb.GetCertificateRequest(hostname=certified_domain), timeout=10)
    owner.GetCertificate(pb.GetCertificateRequest(hostname=certified_domain), timeout=10)

    code = _code(owner.GetCertificate, pb.GetCertificateRequest(hostname=certified_domain,
                                                                include_private_key=True))

    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_private_key_needs_permission(plain_channel, domains) -> None:
    request = pb.GetCertificateRequest(hostname=domains["app-a"], include_private_key=True)

    without = _code(_stub(plain_channel, "app-a").GetCertificate, request)
    allowed = _code(_stub(plain_channel, "app-a-keys").GetCertificate, request)

    assert without == grpc.StatusCode.PERMISSION_DENIED
    # Past the permission check: the domain has no certificate yet.
    assert allowed == grpc.StatusCode.NOT_FOUND


def test_other_apps_issuance_not_found(plain_channel, domains) -> None:
    hostname = unique_hostname("auth-issuance")
    _stub(plain_channel, "operator").AddDomain(
        pb.AddDomainRequest(hostname=hostname, app_id="app-b"), timeout=10)
    issuance = _stub(plain_channel, "app-b").RequestCertificate(
        pb.RequestCertificateRequest(hostname=hostname), timeout=10)

    code = _code(_stub(plain_channel, "app-a").GetIssuance, pb.GetIssuanceRequest(id=issuance.id))

    assert code == grpc.StatusCode.NOT_FOUND


def test_plaintext_token_warning_logged(address, processes) -> None:
    log = processes.log_text("api-auth")

    assert "bearer tokens are accepted over plaintext gRPC" in log
    assert "CERTSVC_TLS_CERT" in log
    assert "CERTSVC_DEV_INSECURE is set" not in log


def _grpcurl(*arguments: str) -> subprocess.CompletedProcess:
    binary = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
    return subprocess.run([binary, *arguments], capture_output=True, text=True, timeout=60)


def test_closed_reflection_needs_token(processes, callers_path) -> None:
    address = start_api_without_dev_mode(processes, "api-closed-reflection", {
        "CERTSVC_API_TOKENS_FILE": str(callers_path), "CERTSVC_OPEN_REFLECTION": "0"})
    try:
        anonymous = _grpcurl("-plaintext", address, "list")
        with_token = _grpcurl("-plaintext", "-H", f"authorization: Bearer {TOKENS['app-b']}",
                              address, "list")
        with grpc.insecure_channel(address) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=10)
    finally:
        processes.stop("api-closed-reflection")

    assert anonymous.returncode != 0
    assert "Unauthenticated" in anonymous.stderr
    assert with_token.returncode == 0, with_token.stderr
    assert "certsvc.v1.CertificateService" in with_token.stdout
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_no_credentials_configured_fails_start(processes) -> None:
    process = processes.start("api-no-callers", "api", extra_env={
        "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{free_port()}", "CERTSVC_DEV_INSECURE": "0",
        "CERTSVC_API_TOKENS_FILE": ""})

    returncode = process.wait(timeout=30)

    assert returncode == 2
    log = processes.log_text("api-no-callers")
    assert "no caller can authenticate" in log
    assert "CERTSVC_API_TOKENS_FILE" in log


def test_dev_mode_warning_logged(processes) -> None:
    port = free_port()
    process = processes.start("api-dev", "api", extra_env={
        "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{port}", "CERTSVC_DEV_INSECURE": "1"})
    try:
        stack.wait_for_port("127.0.0.1", port, process=process)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = certsvc_pb2_grpc.CertificateServiceStub(channel)
            anonymous = stub.ListDomains(pb.ListDomainsRequest(page_size=1), timeout=10)
            with pytest.raises(grpc.RpcError) as raised:
                stub.ListDomains(pb.ListDomainsRequest(),
                                 metadata=[("authorization", "Bearer not-a-valid-token-at-all")],
                                 timeout=10)
    finally:
        processes.stop("api-dev")

    assert anonymous is not None
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "CERTSVC_DEV_INSECURE is set" in processes.log_text("api-dev")


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> TestAuthority:
    return TestAuthority(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def mtls_address(processes, callers_path, authority):
    certificate, key = authority.issue("api", "localhost", ["localhost"], server=True)
    address = start_api_without_dev_mode(processes, "api-mtls", {
        "CERTSVC_API_TOKENS_FILE": str(callers_path), "CERTSVC_TLS_CERT": str(certificate),
        "CERTSVC_TLS_KEY": str(key), "CERTSVC_TLS_CLIENT_CA": str(authority.root_file)})
    yield address
    processes.stop("api-mtls")


def _tls_stub(address: str, authority: TestAuthority, client: tuple[Path, Path] | None,
              roots: Path | None = None):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(roots or authority.root_file).read_bytes(),
        private_key=client[1].read_bytes() if client else None,
        certificate_chain=client[0].read_bytes() if client else None)
    channel = grpc.secure_channel(address, credentials)
    return channel, certsvc_pb2_grpc.CertificateServiceStub(channel)


def test_mtls_certificate_maps_to_principal(mtls_address, authority, domains) -> None:
    client = authority.issue("edge", "edge-router", ["edge.internal"], server=False)
    channel, stub = _tls_stub(mtls_address, authority, client)
    with channel:
        own = stub.GetDomain(pb.GetDomainRequest(hostname=domains["app-a"]), timeout=10)
        other = _code(stub.GetDomain, pb.GetDomainRequest(hostname=domains["app-b"]))
        key = _code(stub.GetCertificate, pb.GetCertificateRequest(hostname=domains["app-a"],
                                                                  include_private_key=True))

    assert own.app_id == "app-a"
    assert other == grpc.StatusCode.NOT_FOUND
    assert key == grpc.StatusCode.PERMISSION_DENIED


def test_mtls_unmapped_certificate_unauthenticated(mtls_address, authority) -> None:
    client = authority.issue("stranger", "stranger", ["stranger.internal"], server=False)
    channel, stub = _tls_stub(mtls_address, authority, client)
    with channel, pytest.raises(grpc.RpcError) as raised:
        stub.ListDomains(pb.ListDomainsRequest(), timeout=10)

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "stranger.internal" in raised.value.details()


@pytest.mark.parametrize(("common_name", "dns_names", "uris"), [
    ("edge.internal", [], ["spiffe://example.org/other"]),
    ("stranger", [], ["edge.internal"]),
])
def test_mtls_name_type_matters(mtls_address, authority, common_name, dns_names, uris) -> None:
    """Neither a common name beside subjectAltNames nor a URI entry passes for a DNS name."""
    client = authority.issue(f"typed-{len(uris[0])}", common_name, dns_names, server=False,
                             uris=uris)
    channel, stub = _tls_stub(mtls_address, authority, client)
    with channel, pytest.raises(grpc.RpcError) as raised:
        stub.ListDomains(pb.ListDomainsRequest(), timeout=10)

    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_mtls_token_decides_principal(mtls_address, authority, domains) -> None:
    client = authority.issue("edge-2", "edge-router", ["edge.internal"], server=False)
    channel, stub = _tls_stub(mtls_address, authority, client)
    with channel:
        seen = stub.GetDomain(pb.GetDomainRequest(hostname=domains["app-b"]),
                              metadata=[("authorization", f"Bearer {TOKENS['app-b']}")],
                              timeout=10)

    assert seen.app_id == "app-b"


@pytest.mark.parametrize("case", ["no client certificate", "certificate of another CA"])
def test_mtls_handshake_rejected(mtls_address, authority, tmp_path, case: str) -> None:
    client = None
    if case == "certificate of another CA":
        client = TestAuthority(tmp_path / "other").issue("edge", "edge-router",
                                                         ["edge.internal"], server=False)
    channel, stub = _tls_stub(mtls_address, authority, client)
    with channel:
        code = _code(stub.ListDomains, pb.ListDomainsRequest())

    assert code == grpc.StatusCode.UNAVAILABLE


def test_tls_without_client_ca_takes_tokens(processes, callers_path, authority) -> None:
    certificate, key = authority.issue("api-tls", "localhost", ["localhost"], server=True)
    address = start_api_without_dev_mode(processes, "api-tls", {
        "CERTSVC_API_TOKENS_FILE": str(callers_path), "CERTSVC_TLS_CERT": str(certificate),
        "CERTSVC_TLS_KEY": str(key)})
    try:
        channel, stub = _tls_stub(address, authority, None)
        with channel:
            listed = stub.ListDomains(pb.ListDomainsRequest(page_size=1),
                                      metadata=[("authorization", f"Bearer {TOKENS['app-a']}")],
                                      timeout=10)
            anonymous = _code(stub.ListDomains, pb.ListDomainsRequest())
    finally:
        processes.stop("api-tls")

    assert listed is not None
    assert anonymous == grpc.StatusCode.UNAUTHENTICATED
    log = processes.log_text("api-tls")
    assert "plaintext" not in log
    assert "tls=True" in log
