"""UploadCertificate and GetCertificate through real gRPC, against a `certsvc api` process
that trusts the roots made for these tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from devtools import stack
from pki_factory import Pki
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc
from service.store import locks
from upload_cases import CASES, UploadCase, host_of, missing_words, words_of
from upload_support import (
    bad_request,
    start_api,
    unique_zone,
    upload_request,
    write_trust_bundle,
)

APP = "app-upload"
PLATFORM_DOMAIN = f"p{uuid.uuid4().hex[:8]}.example.org"


@pytest.fixture(scope="module")
def pkis() -> dict[str, Pki]:
    """A root and an intermediate per case, plus one for the other tests of this module."""
    return {name: Pki.create(name) for name in [case.name for case in CASES] + ["module"]}


@pytest.fixture(scope="module")
def upload_address(processes: stack.Processes, pkis: dict[str, Pki],
                   tmp_path_factory: pytest.TempPathFactory) -> str:
    bundle = write_trust_bundle(tmp_path_factory.mktemp("trust") / "roots.pem",
                                [pki.root for pki in pkis.values()])
    return start_api(processes, "api-upload", bundle, CERTSVC_PLATFORM_DOMAIN=PLATFORM_DOMAIN)


@pytest.fixture(scope="module")
def upload_stub(upload_address: str) -> Iterator[certsvc_pb2_grpc.CertificateServiceStub]:
    with grpc.insecure_channel(upload_address) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield certsvc_pb2_grpc.CertificateServiceStub(channel)


@pytest.fixture
def pki(pkis: dict[str, Pki]) -> Pki:
    return pkis["module"]


def _chain(chain_pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(chain_pem.encode())


def _add_and_upload(stub, pki: Pki, zone: str, names: list[str] | None = None,
                    hostname: str | None = None, **leaf_options):
    hostname = hostname or host_of(zone)
    leaf = pki.leaf(names or [hostname], **leaf_options)
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id=APP))
    certificate = stub.UploadCertificate(pb.UploadCertificateRequest(
        hostname=hostname, certificate_chain_pem=pki.chain_pem(leaf),
        private_key_pem=leaf.key_pem()))
    return leaf, certificate


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_upload_case(upload_stub, pkis: dict[str, Pki], case: UploadCase) -> None:
    zone = unique_zone()
    upload = case.build(pkis[case.name], zone)
    domain = upload_stub.AddDomain(pb.AddDomainRequest(hostname=upload.hostname, app_id=APP))

    if case.accepted:
        certificate = upload_stub.UploadCertificate(upload_request(upload))

        expected = [issued.certificate for issued in upload.expected_chain]
        assert _chain(certificate.chain_pem) == expected
        assert certificate.source == pb.CUSTOM
        assert certificate.private_key_pem == ""
        for word in case.warnings + case.read_time_warnings:
            assert any(word in warning for warning in certificate.warnings), certificate.warnings
        if case.key_type:
            assert certificate.key_type == case.key_type
        served = upload_stub.GetCertificate(pb.GetCertificateRequest(hostname=domain.hostname))
        assert served.id == certificate.id
        assert _chain(served.chain_pem) == expected
        assert list(served.warnings) == list(certificate.warnings)
        domain = upload_stub.GetDomain(pb.GetDomainRequest(hostname=domain.hostname))
        assert domain.status == pb.Domain.ACTIVE
        assert domain.certificate_source == pb.CUSTOM
        return

    with pytest.raises(grpc.RpcError) as raised:
        upload_stub.UploadCertificate(upload_request(upload))

    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = bad_request(error).field_violations
    expected = words_of(case, zone)
    assert [violation.field for violation in violations] == [field for field, _ in expected], [
        violation.description for violation in violations]
    for violation, (_, words) in zip(violations, expected):
        assert missing_words(violation.description, words) == [], violation.description
        assert violation.description in error.details()
    domain = upload_stub.GetDomain(pb.GetDomainRequest(hostname=domain.hostname))
    assert domain.status == pb.Domain.PENDING
    assert domain.certificate_source == pb.NONE


def test_upload_unknown_domain(upload_stub, pki: Pki) -> None:
    hostname = host_of(unique_zone())
    leaf = pki.leaf([hostname])

    with pytest.raises(grpc.RpcError) as raised:
        upload_stub.UploadCertificate(pb.UploadCertificateRequest(
            hostname=hostname, certificate_chain_pem=pki.chain_pem(leaf),
            private_key_pem=leaf.key_pem()))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "AddDomain" in raised.value.details()


def test_upload_platform_hostname_rejected(upload_stub, pki: Pki) -> None:
    hostname = f"myapp{uuid.uuid4().hex[:6]}.{PLATFORM_DOMAIN}"
    upload_stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id=APP))
    leaf = pki.leaf([hostname])

    with pytest.raises(grpc.RpcError) as raised:
        upload_stub.UploadCertificate(pb.UploadCertificateRequest(
            hostname=hostname, certificate_chain_pem=pki.chain_pem(leaf),
            private_key_pem=leaf.key_pem()))

    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"*.{PLATFORM_DOMAIN}" in raised.value.details()
    assert "domain of your own" in raised.value.details()


def test_upload_records_event(upload_stub, pki: Pki) -> None:
    zone = unique_zone()
    _, certificate = _add_and_upload(upload_stub, pki, zone)

    events = upload_stub.ListDomainEvents(pb.ListDomainEventsRequest(hostname=host_of(zone))).events

    assert events[0].type == "CERTIFICATE_UPLOADED"
    assert certificate.sha256_fingerprint in events[0].message
    assert host_of(zone) in events[0].message


def test_uploaded_key_readable(upload_stub, pki: Pki) -> None:
    zone = unique_zone()
    leaf, _ = _add_and_upload(upload_stub, pki, zone, key_kind="p384")

    served = upload_stub.GetCertificate(pb.GetCertificateRequest(hostname=host_of(zone),
                                                                 include_private_key=True))

    key = serialization.load_pem_private_key(served.private_key_pem.encode(), password=None)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*spki) == leaf.key.public_key().public_bytes(*spki)
    assert served.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert served.key_type == "ECDSA-P384"


def test_second_upload_replaces_first(upload_stub, pki: Pki) -> None:
    zone = unique_zone()
    _, first = _add_and_upload(upload_stub, pki, zone)
    second_leaf = pki.leaf([host_of(zone)])

    second = upload_stub.UploadCertificate(pb.UploadCertificateRequest(
        hostname=host_of(zone), certificate_chain_pem=pki.chain_pem(second_leaf),
        private_key_pem=second_leaf.key_pem()))

    served = upload_stub.GetCertificate(pb.GetCertificateRequest(hostname=host_of(zone)))
    assert served.id == second.id
    assert served.id != first.id
    assert _chain(served.chain_pem)[0] == second_leaf.certificate


def test_upload_replaces_cached_response(upload_stub, pki: Pki) -> None:
    zone = unique_zone()
    request = pb.GetCertificateRequest(hostname=host_of(zone))
    _, first = _add_and_upload(upload_stub, pki, zone)
    for _ in range(3):  # the second and third responses come from the api's cache
        assert upload_stub.GetCertificate(request).id == first.id
    second_leaf = pki.leaf([host_of(zone)])

    second = upload_stub.UploadCertificate(pb.UploadCertificateRequest(
        hostname=host_of(zone), certificate_chain_pem=pki.chain_pem(second_leaf),
        private_key_pem=second_leaf.key_pem()))

    # No waiting: the api that took the upload drops its cached response before returning.
    served = upload_stub.GetCertificate(request)
    assert served.id == second.id
    keyed = upload_stub.GetCertificate(pb.GetCertificateRequest(hostname=host_of(zone),
                                                                include_private_key=True))
    key = serialization.load_pem_private_key(keyed.private_key_pem.encode(), password=None)
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key.public_key().public_bytes(*spki) == (
        second_leaf.key.public_key().public_bytes(*spki))


def test_cached_response_with_key_matches(upload_stub, pki: Pki) -> None:
    zone = unique_zone()
    leaf, _ = _add_and_upload(upload_stub, pki, zone)
    keyed = pb.GetCertificateRequest(hostname=host_of(zone), include_private_key=True)
    plain = pb.GetCertificateRequest(hostname=host_of(zone))

    from_database = upload_stub.GetCertificate(keyed)
    from_cache = upload_stub.GetCertificate(keyed)
    without_key = upload_stub.GetCertificate(plain)

    assert from_cache == from_database
    assert from_cache.private_key_pem.startswith("-----BEGIN PRIVATE KEY-----")
    assert without_key.private_key_pem == ""
    without_key.private_key_pem = from_cache.private_key_pem
    assert without_key == from_cache
    assert _chain(from_cache.chain_pem)[0] == leaf.certificate


def test_wildcard_serves_one_label(upload_stub, pki: Pki) -> None:
    zone = unique_zone()
    _, wildcard = _add_and_upload(upload_stub, pki, zone, names=[f"*.{zone}"],
                                  hostname=f"*.{zone}")

    served = upload_stub.GetCertificate(pb.GetCertificateRequest(hostname=f"Shop.{zone}."))

    assert served.id == wildcard.id
    assert list(served.hostnames) == [f"*.{zone}"]
    for uncovered in (zone, f"a.shop.{zone}"):
        with pytest.raises(grpc.RpcError) as raised:
            upload_stub.GetCertificate(pb.GetCertificateRequest(hostname=uncovered))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_own_certificate_before_wildcard(upload_stub, pki: Pki) -> None:
    zone = unique_zone()
    _, wildcard = _add_and_upload(upload_stub, pki, zone, names=[f"*.{zone}"],
                                  hostname=f"*.{zone}")
    upload_stub.AddDomain(pb.AddDomainRequest(hostname=f"pending.{zone}", app_id=APP))
    _, own = _add_and_upload(upload_stub, pki, zone, hostname=f"www.{zone}")

    pending = upload_stub.GetCertificate(pb.GetCertificateRequest(hostname=f"pending.{zone}"))
    www = upload_stub.GetCertificate(pb.GetCertificateRequest(hostname=f"www.{zone}"))

    assert pending.id == wildcard.id
    assert www.id == own.id


def test_database_dump_has_no_private_key(upload_stub, pki: Pki, database_url: str,
                                          tmp_path: Path) -> None:
    zone = unique_zone()
    leaf, _ = _add_and_upload(upload_stub, pki, zone)
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.fail("pg_dump is not installed; install postgresql-client")

    dump = subprocess.run([pg_dump, "--data-only", "--dbname", database_url],
                          capture_output=True, text=True, timeout=120, check=True).stdout

    assert leaf.certificate.public_bytes(serialization.Encoding.PEM).decode().splitlines()[1] in dump
    assert "PRIVATE KEY" not in dump
    key_lines = [line for line in leaf.key_pem().splitlines() if "-----" not in line]
    assert not any(line in dump for line in key_lines)


def test_key_never_in_log_or_error(upload_stub, pki: Pki, processes: stack.Processes) -> None:
    zone = unique_zone()
    hostname = host_of(zone)
    upload_stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id=APP))
    leaf = pki.leaf([hostname])
    stranger = pki.leaf(["other.example.net"])
    key_pem = stranger.key_pem("pkcs8", passphrase=b"never logged")
    request = pb.UploadCertificateRequest(hostname=hostname,
                                          certificate_chain_pem=pki.chain_pem(leaf),
                                          private_key_pem=key_pem, passphrase="never logged")

    with pytest.raises(grpc.RpcError) as raised:
        upload_stub.UploadCertificate(request)
    upload_stub.UploadCertificate(pb.UploadCertificateRequest(
        hostname=hostname, certificate_chain_pem=pki.chain_pem(leaf),
        private_key_pem=leaf.key_pem()))

    log = processes.log_text("api-upload")
    assert f"rejected certificate upload hostname={hostname}" in log
    assert f"stored uploaded certificate hostname={hostname}" in log
    secrets = ["never logged"] + [line for text in (key_pem, leaf.key_pem())
                                  for line in text.splitlines() if "-----" not in line]
    for secret in secrets:
        assert secret not in log
        assert secret not in raised.value.details()


def test_upload_cancels_issuance_in_flight(upload_stub, pki: Pki, database_url: str) -> None:
    zone = unique_zone()
    hostname = host_of(zone)
    upload_stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id=APP))
    with psycopg.connect(database_url, autocommit=True) as connection:
        domain_id = connection.execute("SELECT id FROM domains WHERE hostname = %s",
                                       (hostname,)).fetchone()[0]
        # Holding the domain's lock keeps any worker of the run away from the issuance.
        assert locks.try_lock_domain(connection, domain_id)
        issuance = upload_stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))
        leaf = pki.leaf([hostname])
        certificate = upload_stub.UploadCertificate(pb.UploadCertificateRequest(
            hostname=hostname, certificate_chain_pem=pki.chain_pem(leaf),
            private_key_pem=leaf.key_pem()))
        locks.unlock_domain(connection, domain_id)

    cancelled = upload_stub.GetIssuance(pb.GetIssuanceRequest(id=issuance.id))
    assert cancelled.state == pb.Issuance.FAILED
    assert "custom certificate was uploaded" in cancelled.error
    served = upload_stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname))
    assert served.id == certificate.id
    types = [event.type for event in upload_stub.ListDomainEvents(
        pb.ListDomainEventsRequest(hostname=hostname)).events]
    assert types[:2] == ["CERTIFICATE_UPLOADED", "ISSUANCE_CANCELLED"]


def _grpcurl(*arguments: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    binary = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
    return subprocess.run([binary, "-plaintext", *arguments], input=stdin, capture_output=True,
                          text=True, timeout=60)


def test_grpcurl_upload_and_read(upload_address: str, upload_stub, pki: Pki) -> None:
    zone = unique_zone()
    hostname = host_of(zone)
    upload_stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id=APP))
    leaf = pki.leaf([hostname])
    request = json.dumps({"hostname": hostname,
                          "certificate_chain_pem": pki.intermediate.pem() + leaf.pem(),
                          "private_key_pem": leaf.key_pem().replace("\n", "\r\n")})

    uploaded = _grpcurl("-d", "@", upload_address,
                        "certsvc.v1.CertificateService/UploadCertificate", stdin=request)
    read = _grpcurl("-d", json.dumps({"hostname": hostname}), upload_address,
                    "certsvc.v1.CertificateService/GetCertificate")

    assert uploaded.returncode == 0, uploaded.stderr
    assert read.returncode == 0, read.stderr
    certificate = json.loads(read.stdout)
    assert certificate["id"] == json.loads(uploaded.stdout)["id"]
    assert certificate["source"] == "CUSTOM"
    assert certificate["hostnames"] == [hostname]
    assert _chain(certificate["chain_pem"]) == [leaf.certificate, pki.intermediate.certificate]
    assert any("reordered the chain" in warning for warning in certificate["warnings"])


def test_grpcurl_shows_violations(upload_address: str, upload_stub, pki: Pki) -> None:
    zone = unique_zone()
    hostname = host_of(zone)
    upload_stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id=APP))
    leaf = pki.leaf(["other.example.net"])
    request = json.dumps({"hostname": hostname, "certificate_chain_pem": leaf.pem(),
                          "private_key_pem": leaf.key_pem()})

    result = _grpcurl("-d", "@", upload_address,
                      "certsvc.v1.CertificateService/UploadCertificate", stdin=request)

    assert result.returncode != 0
    assert "InvalidArgument" in result.stderr
    assert "2 problems" in result.stderr
    assert "other.example.net" in result.stderr
    assert "incomplete" in result.stderr


def test_unreadable_trust_bundle_stops_api(processes: stack.Processes, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("no certificates here\n")
    name = f"api-bad-bundle-{uuid.uuid4().hex[:6]}"

    process = processes.start(name, "api", extra_env={
        "CERTSVC_GRPC_ADDRESS": "127.0.0.1:0", "CERTSVC_TRUST_BUNDLE": str(empty)})
    returncode = process.wait(timeout=60)

    assert returncode == 2
    log = processes.log_text(name)
    assert "CERTSVC_TRUST_BUNDLE" in log
    assert "no PEM certificates" in log


def test_many_problems_fit_trailers(upload_stub, pki: Pki) -> None:
    """Fifty damaged blocks still give a readable INVALID_ARGUMENT, not an oversized reply."""
    hostname = host_of(unique_zone())
    leaf = pki.leaf([hostname])
    upload_stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id=APP))
    damaged = "".join(f"-----BEGIN CERTIFICATE-----\nnot base64 {index}!\n"
                      "-----END CERTIFICATE-----\n" for index in range(50))

    with pytest.raises(grpc.RpcError) as raised:
        upload_stub.UploadCertificate(pb.UploadCertificateRequest(
            hostname=hostname, certificate_chain_pem=pki.chain_pem(leaf) + damaged,
            private_key_pem=leaf.key_pem()))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "more; fix the problems above" in raised.value.details()
    assert 0 < len(bad_request(raised.value).field_violations) < 50


def test_wildcard_served_domain_shows_active(upload_stub, pki: Pki) -> None:
    """A host name of the app under an uploaded wildcard reports the certificate serving it."""
    zone = unique_zone()
    _, wildcard = _add_and_upload(upload_stub, pki, zone, names=[f"*.{zone}"],
                                  hostname=f"*.{zone}")
    upload_stub.AddDomain(pb.AddDomainRequest(hostname=f"shop2.{zone}", app_id=APP))
    upload_stub.AddDomain(pb.AddDomainRequest(hostname=f"shop3.{zone}", app_id="other-app"))

    covered = upload_stub.GetDomain(pb.GetDomainRequest(hostname=f"shop2.{zone}"))
    other_app = upload_stub.GetDomain(pb.GetDomainRequest(hostname=f"shop3.{zone}"))

    assert covered.status == pb.Domain.ACTIVE
    assert covered.certificate_source == pb.CUSTOM
    assert covered.certificate_not_after == wildcard.not_after
    assert any(f"*.{zone}" in warning for warning in covered.warnings)
    assert other_app.status == pb.Domain.PENDING
    assert other_app.certificate_source == pb.NONE


def test_other_apps_wildcard_not_served(upload_stub, pki: Pki) -> None:
    """GetCertificate agrees with GetDomain: another app's wildcard serves no host name
    that has a domain of its own."""
    zone = unique_zone()
    _, wildcard = _add_and_upload(upload_stub, pki, zone, names=[f"*.{zone}"],
                                  hostname=f"*.{zone}")
    upload_stub.AddDomain(pb.AddDomainRequest(hostname=f"shop3.{zone}", app_id="other-app"))

    with pytest.raises(grpc.RpcError) as raised:
        upload_stub.GetCertificate(pb.GetCertificateRequest(hostname=f"shop3.{zone}",
                                                            include_private_key=True))
    unclaimed = upload_stub.GetCertificate(pb.GetCertificateRequest(hostname=f"free.{zone}"))

    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no certificate yet" in raised.value.details()
    assert unclaimed.id == wildcard.id


def test_wildcard_upload_turns_redirect_on(upload_stub, pki: Pki, redis_prefix: str) -> None:
    """A host name with Force HTTPS starts redirecting once its app's wildcard gets a certificate."""
    import redis

    from service.redis_keys import RedisKeys

    zone = unique_zone()
    upload_stub.AddDomain(pb.AddDomainRequest(hostname=f"*.{zone}", app_id=APP))
    upload_stub.AddDomain(pb.AddDomainRequest(hostname=f"shop.{zone}", app_id=APP))
    before = upload_stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=f"shop.{zone}",
                                                               force_https=True))
    client = redis.Redis.from_url(stack.REDIS_URL)

    _add_and_upload(upload_stub, pki, zone, names=[f"*.{zone}"], hostname=f"*.{zone}")

    assert before.force_https_effective is False
    assert client.exists(RedisKeys(redis_prefix).force_https(f"shop.{zone}")) == 1
    after = upload_stub.GetDomain(pb.GetDomainRequest(hostname=f"shop.{zone}"))
    assert after.force_https_effective is True
    client.close()
