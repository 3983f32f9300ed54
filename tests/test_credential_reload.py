"""Credential files changed while the api runs: the callers file and the TLS certificate.

Each api here is a real `certsvc api` process without development mode. The tests
change its files on disk and wait for the api to apply them (it checks every 2 s).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

import leak_scan
from conftest import replace_file, start_api_without_dev_mode
from devtools.credentials import new_token, write_callers_file
from devtools.pebble import free_port
from pki import TestAuthority
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc

# Long enough for a few checks of the files, each RELOAD_INTERVAL_SECONDS apart.
WAIT_SECONDS = 15.0


def _token(label: str) -> str:
    token = new_token()
    leak_scan.watch(f"token {label} of the credential reload tests", token)
    return token


def _wait_for(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _ping(channel: grpc.Channel, token: str) -> grpc.StatusCode:
    stub = certsvc_pb2_grpc.CertificateServiceStub(channel)
    try:
        stub.Ping(pb.PingRequest(), metadata=[("authorization", f"Bearer {token}")], timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def _tls_ping(address: str, roots: Path, token: str) -> grpc.StatusCode:
    """Ping over a new connection that trusts only roots."""
    credentials = grpc.ssl_channel_credentials(root_certificates=roots.read_bytes())
    # A local subchannel pool keeps this channel from reusing another channel's connection.
    with grpc.secure_channel(address, credentials,
                             options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        return _ping(channel, token)


def test_changed_callers_file_applied(processes, tmp_path: Path) -> None:
    first, second = _token("first"), _token("second")
    path = write_callers_file(tmp_path / "callers.toml",
                              [{"name": "first", "apps": "*", "tokens": [first]}])
    address = start_api_without_dev_mode(processes, "api-reload-callers", {"CERTSVC_API_TOKENS_FILE": str(path)})
    try:
        with grpc.insecure_channel(address) as channel:
            before = _ping(channel, first)
            write_callers_file(path, [{"name": "second", "apps": "*", "tokens": [second]}])
            applied = _wait_for(lambda: _ping(channel, second) == grpc.StatusCode.OK)
            first_after = _ping(channel, first)
        log = processes.log_text("api-reload-callers")
    finally:
        processes.stop("api-reload-callers")

    assert before == grpc.StatusCode.OK
    assert applied
    assert first_after == grpc.StatusCode.UNAUTHENTICATED
    assert "reloaded callers" in log


@pytest.mark.parametrize(("content", "reason"), [
    ("[[principal]\nname = ", "is not valid TOML"),
    ("# every principal removed\n", "lets no caller authenticate"),
], ids=["invalid-toml", "admits-nobody"])
def test_unusable_callers_file_ignored(processes, tmp_path: Path, content: str,
                                       reason: str) -> None:
    token = _token("kept")
    path = write_callers_file(tmp_path / "callers.toml",
                              [{"name": "kept", "apps": "*", "tokens": [token]}])
    name = f"api-reload-unusable-{reason.split()[0]}"
    address = start_api_without_dev_mode(processes, name, {"CERTSVC_API_TOKENS_FILE": str(path)})
    try:
        path.write_text(content)
        rejected = _wait_for(lambda: "kept the previous callers" in processes.log_text(name))
        with grpc.insecure_channel(address) as channel:
            after = _ping(channel, token)
        log = processes.log_text(name)
    finally:
        processes.stop(name)

    assert rejected
    assert reason in log
    assert after == grpc.StatusCode.OK


def test_rotated_tls_certificate_used(processes, tmp_path: Path) -> None:
    token = _token("tls")
    callers = write_callers_file(tmp_path / "callers.toml",
                                 [{"name": "tls", "apps": "*", "tokens": [token]}])
    old_authority = TestAuthority(tmp_path / "old", name="certsvc reload test CA 1")
    new_authority = TestAuthority(tmp_path / "new", name="certsvc reload test CA 2")
    old_certificate, old_key = old_authority.issue("api", "localhost", ["localhost"], server=True)
    new_certificate, new_key = new_authority.issue("api", "localhost", ["localhost"], server=True)
    certificate_file, key_file = tmp_path / "tls.pem", tmp_path / "tls-key.pem"
    replace_file(certificate_file, old_certificate.read_bytes())
    replace_file(key_file, old_key.read_bytes())
    address = start_api_without_dev_mode(processes, "api-reload-tls", {
        "CERTSVC_API_TOKENS_FILE": str(callers), "CERTSVC_TLS_CERT": str(certificate_file),
        "CERTSVC_TLS_KEY": str(key_file)})
    try:
        before = _tls_ping(address, old_authority.root_file, token)
        # Half of a rotation: the new certificate beside the old key.
        replace_file(certificate_file, new_certificate.read_bytes())
        mismatch_seen = _wait_for(
            lambda: "kept the previous TLS certificate" in processes.log_text("api-reload-tls"))
        during = _tls_ping(address, old_authority.root_file, token)
        replace_file(key_file, new_key.read_bytes())
        rotated = _wait_for(
            lambda: _tls_ping(address, new_authority.root_file, token) == grpc.StatusCode.OK)
        old_root_after = _tls_ping(address, old_authority.root_file, token)
        log = processes.log_text("api-reload-tls")
    finally:
        processes.stop("api-reload-tls")

    assert before == grpc.StatusCode.OK
    assert mismatch_seen
    assert "does not belong to the first certificate" in log
    assert during == grpc.StatusCode.OK
    assert rotated
    assert old_root_after == grpc.StatusCode.UNAVAILABLE
    assert "reloaded TLS certificate" in log


def test_mismatched_tls_pair_fails_start(processes, tmp_path: Path) -> None:
    token = _token("mismatch")
    callers = write_callers_file(tmp_path / "callers.toml",
                                 [{"name": "mismatch", "apps": "*", "tokens": [token]}])
    authority = TestAuthority(tmp_path / "pki")
    certificate, _ = authority.issue("api", "localhost", ["localhost"], server=True)
    _, other_key = authority.issue("other", "localhost", ["localhost"], server=True)
    process = processes.start("api-tls-mismatch", "api", extra_env={
        "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{free_port()}", "CERTSVC_DEV_INSECURE": "0",
        "CERTSVC_API_TOKENS_FILE": str(callers), "CERTSVC_TLS_CERT": str(certificate),
        "CERTSVC_TLS_KEY": str(other_key)})

    returncode = process.wait(timeout=30)

    assert returncode == 2
    log = processes.log_text("api-tls-mismatch")
    assert "CERTSVC_TLS_KEY" in log
    assert "does not belong to the first certificate" in log


def test_port_in_use_fails_start(processes, tmp_path: Path) -> None:
    token = _token("port")
    callers = write_callers_file(tmp_path / "callers.toml",
                                 [{"name": "port", "apps": "*", "tokens": [token]}])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = processes.start("api-port-taken", "api", extra_env={
            "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{port}", "CERTSVC_DEV_INSECURE": "0",
            "CERTSVC_API_TOKENS_FILE": str(callers)})
        returncode = process.wait(timeout=30)

    assert returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in processes.log_text("api-port-taken")
