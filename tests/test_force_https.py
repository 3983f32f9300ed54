"""Force HTTPS: the flag, its Redis mirror and the responder's redirect over real HTTP."""

from __future__ import annotations

import socket
import time
import uuid

import grpc
import pytest

from conftest import unique_hostname, wait_for_issuance
from devtools.pebble import free_port
from pki_factory import DAY, Pki, now
from service import force_https
from service.certificate_details import describe, seal_private_key
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.sealed_columns import certificate_key_associated_data
from service.store import certificates as certificate_rows
from service.store import domains as domain_rows
from service.store.certificates import NewCertificate

PATH = "/.well-known/acme-challenge/_g_selfcheck_"


# Certificates given to domains in these tests come from this one throwaway CA.
_PKI = Pki.create("force-https")


def _get(port: int, target: str, host: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _give_certificate(backends, hostname: str, *, expired: bool = False) -> None:
    """Store a certificate for the domain as the worker or an upload would."""
    dates = ({"not_before": now() - 100 * DAY, "not_after": now() - 10 * DAY} if expired
             else {})
    leaf = _PKI.leaf([hostname], key_kind="p256", **dates)
    details = describe(leaf.certificate)
    with backends.database.transaction() as connection:
        domain = domain_rows.get_domain(connection, hostname)
        certificate_id = uuid.uuid4()
        certificate_rows.insert_certificate(connection, NewCertificate(
            id=certificate_id, domain_id=domain.id, source="CUSTOM",
            hostnames=details.hostnames, chain_pem=_PKI.chain_pem(leaf),
            private_key_sealed=seal_private_key(backends.keyring, leaf.key,
                                                certificate_key_associated_data(domain.id)),
            key_type=details.key_type, not_before=details.not_before,
            not_after=details.not_after, issuer=details.issuer,
            serial_number=details.serial_number, sha256_fingerprint=details.sha256_fingerprint,
            warnings=[]))
        domain_rows.update_domain(connection, domain.id, certificate_id=certificate_id,
                                  status="ACTIVE")


def _add(stub, label: str) -> str:
    hostname = unique_hostname(label)
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-https"))
    return hostname


def test_redirect_with_certificate(stub, backends, responder_port) -> None:
    hostname = _add(stub, "forced")
    _give_certificate(backends, hostname)

    domain = stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))

    assert domain.force_https
    assert domain.force_https_effective
    assert list(domain.warnings) == []
    status, headers, body = _get(responder_port, "/shop/cart?item=7&x=%20y", hostname)
    assert status == 308
    assert headers["location"] == f"https://{hostname}/shop/cart?item=7&x=%20y"
    assert body == b""


def test_challenge_path_never_redirected(stub, backends, responder_port, redis_client,
                                         keys) -> None:
    hostname = _add(stub, "forcedcheck")
    _give_certificate(backends, hostname)
    stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))

    status, _, body = _get(responder_port, PATH, hostname)

    assert status == 200
    assert body == redis_client.get(keys.self_check_body(hostname))
    status, _, _ = _get(responder_port, "/.well-known/acme-challenge/" + "A" * 43, hostname)
    assert status == 404


def test_no_certificate_not_effective(stub, responder_port, redis_client, keys) -> None:
    hostname = _add(stub, "nocert")

    domain = stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))

    assert domain.force_https
    assert not domain.force_https_effective
    assert len(domain.warnings) == 1
    assert "no certificate yet" in domain.warnings[0]
    assert not redis_client.exists(keys.force_https(hostname))
    status, _, _ = _get(responder_port, "/", hostname)
    assert status == 404


def test_expired_certificate_not_effective(stub, backends, responder_port) -> None:
    hostname = _add(stub, "expired")
    _give_certificate(backends, hostname, expired=True)

    domain = stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))

    assert not domain.force_https_effective
    assert "expired" in domain.warnings[0]
    status, _, _ = _get(responder_port, "/", hostname)
    assert status == 404


def test_turn_off_stops_redirect(stub, backends, responder_port) -> None:
    hostname = _add(stub, "off")
    _give_certificate(backends, hostname)
    stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))

    domain = stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=False))

    assert not domain.force_https
    assert not domain.force_https_effective
    assert list(domain.warnings) == []
    status, _, _ = _get(responder_port, "/", hostname)
    assert status == 404


def test_change_recorded_in_timeline(stub) -> None:
    hostname = _add(stub, "timeline")
    stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))
    stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))
    stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=False))

    events = stub.ListDomainEvents(pb.ListDomainEventsRequest(hostname=hostname)).events

    changes = [event.message for event in events if event.type == "FORCE_HTTPS_CHANGED"]
    assert len(changes) == 2
    assert "turned off" in changes[0]
    assert "starts once the domain has a valid certificate" in changes[1]


def test_key_expires_with_certificate(stub, backends, redis_client, keys) -> None:
    hostname = _add(stub, "ttl")
    _give_certificate(backends, hostname)

    stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))

    certificate = stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname))
    assert redis_client.expiretime(keys.force_https(hostname)) == certificate.not_after.seconds


def test_rebuild_repairs_mirror(stub, backends, responder_port, redis_client, keys) -> None:
    hostname = _add(stub, "lost")
    _give_certificate(backends, hostname)
    stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))
    stale = unique_hostname("stale")
    redis_client.delete(keys.force_https(hostname))
    redis_client.set(keys.force_https(stale), "1")

    force_https.rebuild_mirror(backends.database, backends.redis, backends.keys)

    assert redis_client.exists(keys.force_https(hostname))
    assert not redis_client.exists(keys.force_https(stale))
    status, _, _ = _get(responder_port, "/", hostname)
    assert status == 308


@pytest.mark.parametrize("command", ["api", "scheduler"])
def test_process_start_rebuilds_mirror(stub, backends, processes, redis_client, keys,
                                       command: str) -> None:
    hostname = _add(stub, f"restart-{command}")
    _give_certificate(backends, hostname)
    stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))
    redis_client.delete(keys.force_https(hostname))

    name = f"{command}-mirror"
    processes.start(name, command,
                    extra_env={"CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{free_port()}"})
    try:
        deadline = time.monotonic() + 20
        # The log line comes after the keys are written; waiting for it keeps the stop
        # below from cutting the rebuild short.
        while not (redis_client.exists(keys.force_https(hostname))
                   and "rebuilt force-https mirror" in processes.log_text(name)):
            if time.monotonic() > deadline:
                pytest.fail(f"{command} did not rebuild the mirror within 20 s; log tail: "
                            f"{processes.log_text(name)[-2000:]}")
            time.sleep(0.05)
    finally:
        processes.stop(name)

    assert "rebuilt force-https mirror" in processes.log_text(name)


@pytest.mark.pebble
@pytest.mark.usefixtures("issuance_stack")
def test_issued_certificate_starts_redirect(stub, pebble) -> None:
    hostname = _add(stub, "issued")
    before = stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))
    assert not before.force_https_effective

    issuance = stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))
    assert wait_for_issuance(stub, issuance.id).state == pb.Issuance.SUCCEEDED

    after = stub.GetDomain(pb.GetDomainRequest(hostname=hostname))
    assert after.force_https_effective
    assert list(after.warnings) == []
    status, headers, _ = _get(pebble.http_port, "/index.html?a=1", hostname)
    assert status == 308
    assert headers["location"] == f"https://{hostname}/index.html?a=1"


def test_missing_flag_rejected(stub) -> None:
    hostname = _add(stub, "noflag")
    stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))

    with pytest.raises(grpc.RpcError) as raised:
        stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname))

    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "force_https is missing" in raised.value.details()
    assert stub.GetDomain(pb.GetDomainRequest(hostname=hostname)).force_https is True



def test_lost_mirror_rebuilt_at_once(stub, backends, settings, redis_client, keys) -> None:
    """Redis restarted without persistence: the marker is gone, so the mirror is rebuilt."""
    from worker.mirror_rebuild import rebuild_lost_mirrors
    from worker.scheduler import SchedulerContext

    hostname = _add(stub, "marker")
    _give_certificate(backends, hostname)
    stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))
    context = SchedulerContext(settings, backends, "test-mirror-marker")
    force_https.rebuild_mirror(backends.database, backends.redis, backends.keys)

    redis_client.delete(keys.force_https(hostname))
    rebuild_lost_mirrors(context)
    kept_missing = redis_client.exists(keys.force_https(hostname))
    redis_client.delete(keys.force_https_mirror_marker)
    rebuild_lost_mirrors(context)

    assert kept_missing == 0
    assert redis_client.exists(keys.force_https(hostname)) == 1
    assert redis_client.exists(keys.force_https_mirror_marker) == 1


def test_removed_wildcard_stops_redirect(stub, backends, responder_port, redis_client,
                                         keys) -> None:
    base = unique_hostname("wild-https")
    wildcard, hostname = f"*.{base}", f"www.{base}"
    stub.AddDomain(pb.AddDomainRequest(hostname=wildcard, app_id="app-https"))
    _give_certificate(backends, wildcard)
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-https"))
    domain = stub.SetForceHttps(pb.SetForceHttpsRequest(hostname=hostname, force_https=True))
    before, _, _ = _get(responder_port, "/page", hostname)

    stub.RemoveDomain(pb.RemoveDomainRequest(hostname=wildcard))
    after, _, _ = _get(responder_port, "/page", hostname)

    assert domain.force_https_effective
    assert before == 308
    assert after != 308
    assert not redis_client.exists(keys.force_https(hostname))
