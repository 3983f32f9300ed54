"""Platform hostnames: PENDING until `certsvc platform-cert` installs the wildcard."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devtools import stack
from devtools.pebble import free_port
from pki_factory import DAY, Pki, now
from service.api.certificate_responses import get_certificate_response
from service.backends import Backends
from service.callers import Caller
from service.errors import PermissionDenied
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc

PLATFORM_DOMAIN = f"p{uuid.uuid4().hex[:8]}.example.org"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.create("platform")


@pytest.fixture(scope="module")
def platform_environment(base_environment: dict[str, str], pki: Pki,
                         tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    bundle = tmp_path_factory.mktemp("platform-trust") / "roots.pem"
    bundle.write_text(pki.root.pem())
    return {**base_environment, "CERTSVC_PLATFORM_DOMAIN": PLATFORM_DOMAIN,
            "CERTSVC_TRUST_BUNDLE": str(bundle)}


def _files(pki: Pki, names: list[str], **options) -> tuple[bytes, bytes, x509.Certificate]:
    """Return the chain PEM, key PEM and leaf of a fresh certificate for names."""
    leaf = pki.leaf(names, key_kind="p256", **options)
    return pki.chain_pem(leaf).encode(), leaf.key_pem().encode(), leaf.certificate


@pytest.fixture(scope="module")
def platform_stub(processes: stack.Processes, platform_environment
                  ) -> Iterator[certsvc_pb2_grpc.CertificateServiceStub]:
    port = free_port()
    process = processes.start("api-platform", "api", extra_env={
        "CERTSVC_PLATFORM_DOMAIN": PLATFORM_DOMAIN,
        "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{port}"})
    stack.wait_for_port("127.0.0.1", port, process=process)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield certsvc_pb2_grpc.CertificateServiceStub(channel)
    processes.stop("api-platform")


def _platform_cert(environment: dict[str, str], tmp_path, chain_pem: bytes,
                   key_pem: bytes, passphrase: str | None = None) -> subprocess.CompletedProcess:
    chain_file = tmp_path / "chain.pem"
    key_file = tmp_path / "key.pem"
    chain_file.write_bytes(chain_pem)
    key_file.write_bytes(key_pem)
    options = []
    if passphrase is not None:
        passphrase_file = tmp_path / "passphrase.txt"
        passphrase_file.write_text(passphrase + "\n")
        options = ["--passphrase-file", str(passphrase_file)]
    return subprocess.run(
        [*stack.certsvc_command(), "platform-cert", "--chain", str(chain_file),
         "--key", str(key_file), *options],
        env=environment, capture_output=True, text=True, timeout=60)


def _encrypted(key_pem: bytes, passphrase: str) -> bytes:
    key = serialization.load_pem_private_key(key_pem, password=None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(passphrase.encode()))


def _add(stub, label: str) -> pb.Domain:
    return stub.AddDomain(pb.AddDomainRequest(hostname=f"{label}.{PLATFORM_DOMAIN}",
                                              app_id="app-platform"))


# The tests of this module run in order: before and after the installation.

def test_pending_until_installed(platform_stub) -> None:
    domain = _add(platform_stub, "early")

    assert domain.status == pb.Domain.PENDING
    assert "certsvc platform-cert" in domain.last_error
    assert domain.certificate_source == pb.NONE


def test_request_certificate_already_covered(platform_stub) -> None:
    _add(platform_stub, "covered")

    with pytest.raises(grpc.RpcError) as raised:
        platform_stub.RequestCertificate(
            pb.RequestCertificateRequest(hostname=f"covered.{PLATFORM_DOMAIN}"))

    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already covered" in raised.value.details()
    assert f"*.{PLATFORM_DOMAIN}" in raised.value.details()


@pytest.mark.parametrize(("hostname", "words"), [
    (f"a.b.{PLATFORM_DOMAIN}", "one label"),
    (f"*.{PLATFORM_DOMAIN}", "platform's own wildcard"),
    (f"*.team.{PLATFORM_DOMAIN}", "one label"),
    (PLATFORM_DOMAIN, "platform's own domain"),
])
def test_names_wildcard_cannot_cover(platform_stub, hostname: str, words: str) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        platform_stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-platform"))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in raised.value.details()


def test_certificate_not_installed_yet(platform_stub) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        platform_stub.GetCertificate(pb.GetCertificateRequest(hostname=f"early.{PLATFORM_DOMAIN}"))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "platform certificate is not installed" in raised.value.details()


@pytest.mark.parametrize(("names", "expired", "words"), [
    (["*.other.example.org"], False, f"*.{PLATFORM_DOMAIN}"),
    ([f"*.{PLATFORM_DOMAIN}"], True, "expired"),
])
def test_platform_cert_rejects_unfit(platform_environment, pki, tmp_path, names, expired,
                                     words: str) -> None:
    dates = ({"not_before": now() - 100 * DAY, "not_after": now() - 10 * DAY} if expired
             else {})
    chain_pem, key_pem, _ = _files(pki, names, **dates)

    completed = _platform_cert(platform_environment, tmp_path, chain_pem, key_pem)

    assert completed.returncode == 2
    assert words in completed.stderr + completed.stdout


def test_platform_cert_rejects_other_key(platform_environment, pki, tmp_path) -> None:
    chain_pem, _, _ = _files(pki, [f"*.{PLATFORM_DOMAIN}"])
    _, other_key_pem, _ = _files(pki, [f"*.{PLATFORM_DOMAIN}"])

    completed = _platform_cert(platform_environment, tmp_path, chain_pem, other_key_pem)

    assert completed.returncode == 2
    assert "does not match" in completed.stderr + completed.stdout


def test_platform_cert_wrong_passphrase(platform_environment, pki, tmp_path) -> None:
    chain_pem, key_pem, _ = _files(pki, [f"*.{PLATFORM_DOMAIN}"])

    completed = _platform_cert(platform_environment, tmp_path, chain_pem,
                               _encrypted(key_pem, "right horse"), passphrase="wrong horse")

    assert completed.returncode == 2
    assert "passphrase" in completed.stderr + completed.stdout


def test_install_activates_hostnames(platform_stub, platform_environment, pki,
                                     tmp_path) -> None:
    chain_pem, key_pem, leaf = _files(pki, [f"*.{PLATFORM_DOMAIN}", PLATFORM_DOMAIN])

    # An encrypted key opened with --passphrase-file.
    completed = _platform_cert(platform_environment, tmp_path, chain_pem,
                               _encrypted(key_pem, "battery staple"), passphrase="battery staple")

    assert completed.returncode == 0, completed.stderr
    early = platform_stub.GetDomain(pb.GetDomainRequest(hostname=f"early.{PLATFORM_DOMAIN}"))
    assert early.status == pb.Domain.ACTIVE
    assert early.last_error == ""
    assert early.certificate_source == pb.PLATFORM
    assert early.certificate_not_after.ToDatetime().date() == leaf.not_valid_after_utc.date()
    later = _add(platform_stub, "later")
    assert later.status == pb.Domain.ACTIVE
    events = platform_stub.ListDomainEvents(
        pb.ListDomainEventsRequest(hostname=f"early.{PLATFORM_DOMAIN}")).events
    assert events[0].type == "PLATFORM_CERTIFICATE_INSTALLED"
    assert format(leaf.serial_number, "X") in events[0].message


def test_get_certificate_returns_platform_cert(platform_stub) -> None:
    certificate = platform_stub.GetCertificate(pb.GetCertificateRequest(
        hostname=f"later.{PLATFORM_DOMAIN}", include_private_key=True))

    assert certificate.source == pb.PLATFORM
    assert f"*.{PLATFORM_DOMAIN}" in certificate.hostnames
    leaf = x509.load_pem_x509_certificates(certificate.chain_pem.encode())[0]
    key = serialization.load_pem_private_key(certificate.private_key_pem.encode(), None)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*spki) == leaf.public_key().public_bytes(*spki)


def test_platform_key_only_for_operators(platform_stub, settings) -> None:
    import dataclasses

    app_caller = Caller(name="app-team", app_ids=frozenset({"app-platform"}),
                        may_read_private_keys=True)
    backends = Backends.connect(dataclasses.replace(settings, platform_domain=PLATFORM_DOMAIN))
    try:
        response = get_certificate_response(backends, app_caller, f"later.{PLATFORM_DOMAIN}",
                                            include_private_key=False).parse()
        assert response.source == pb.PLATFORM
        with pytest.raises(PermissionDenied) as raised:
            get_certificate_response(backends, app_caller, f"later.{PLATFORM_DOMAIN}",
                                     include_private_key=True)
    finally:
        backends.close()

    assert "only operators" in str(raised.value)
