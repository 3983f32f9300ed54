"""Operators' view: grpcurl lists, describes and calls the api through reflection."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import OPERATOR_TOKEN, unique_hostname


def _grpcurl(*arguments: str, token: str | None = OPERATOR_TOKEN) -> subprocess.CompletedProcess:
    """Run grpcurl against the shared api, sending the operator's token unless token is None."""
    binary = shutil.which("grpcurl") or str(Path(sys.executable).with_name("grpcurl"))
    header = ["-H", f"authorization: Bearer {token}"] if token else []
    return subprocess.run([binary, "-plaintext", *header, *arguments], capture_output=True,
                          text=True, timeout=60)


@pytest.fixture(scope="module")
def address(api_address: str) -> str:
    return api_address


def test_list_shows_service(address: str) -> None:
    result = _grpcurl(address, "list", token=None)

    assert result.returncode == 0, result.stderr
    services = result.stdout.split()
    assert "certsvc.v1.CertificateService" in services
    assert "grpc.health.v1.Health" in services


def test_describe_shows_rpcs(address: str) -> None:
    result = _grpcurl(address, "describe", "certsvc.v1.CertificateService", token=None)

    assert result.returncode == 0, result.stderr
    for rpc in ("AddDomain", "RequestCertificate", "GetCertificate", "ListDomainEvents"):
        assert f"rpc {rpc}" in result.stdout


def test_add_domain_call(address: str) -> None:
    hostname = unique_hostname("grpcurl")
    request = json.dumps({"hostname": hostname.upper(), "app_id": "app-grpcurl"})

    result = _grpcurl("-d", request, address, "certsvc.v1.CertificateService/AddDomain")

    assert result.returncode == 0, result.stderr
    domain = json.loads(result.stdout)
    assert domain["hostname"] == hostname
    assert domain["status"] == "PENDING"
    assert domain["certificate_source"] == "NONE"


def test_error_shows_code_and_message(address: str) -> None:
    request = json.dumps({"hostname": "https://shop.example.com/"})

    result = _grpcurl("-d", request, address, "certsvc.v1.CertificateService/GetDomain")

    assert result.returncode != 0
    assert "InvalidArgument" in result.stderr
    assert "host name only" in result.stderr


def test_call_without_token_unauthenticated(address: str) -> None:
    request = json.dumps({"hostname": unique_hostname("grpcurl")})

    result = _grpcurl("-d", request, address, "certsvc.v1.CertificateService/GetDomain",
                      token=None)

    assert result.returncode != 0
    assert "Unauthenticated" in result.stderr
    assert "authorization" in result.stderr
