"""docker-compose.yml and the README agree with the CLI and the configuration.

Docker does not run on the test machines, so these checks read the files instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from service.cli import COMMANDS
from service.config import Settings

ROOT = Path(__file__).resolve().parents[1]


class _RecordingEnvironment(dict):
    """An empty environment that records which variables the settings read."""

    def __init__(self) -> None:
        super().__init__()
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())


def variables_read_by_settings() -> set[str]:
    environment = _RecordingEnvironment()
    Settings.from_env(environment)
    return environment.read


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


CERTSVC_SERVICES = ["migrate", "api", "worker", "responder", "scheduler"]


@pytest.mark.parametrize("service", CERTSVC_SERVICES)
def test_compose_command_is_a_cli_command(compose: dict, service: str) -> None:
    definition = compose["services"][service]

    assert definition["image"] == "certsvc:dev"
    assert definition["command"][0] in COMMANDS


@pytest.mark.parametrize("service", CERTSVC_SERVICES)
def test_compose_variables_are_settings(compose: dict, service: str) -> None:
    known = variables_read_by_settings()
    environment = compose["services"][service]["environment"]

    unknown = sorted(name for name in environment if name not in known)

    assert unknown == []
    Settings.from_env({name: str(value) for name, value in environment.items()
                       if name != "CERTSVC_ACME_CA_BUNDLE"})


def test_compose_dns_answers_with_responder_address(compose: dict) -> None:
    services = compose["services"]
    challtestsrv = services["challtestsrv"]
    command = challtestsrv["command"]
    default_ipv4 = command[command.index("-defaultIPv4") + 1]
    responder_ip = services["responder"]["networks"]["certsvc"]["ipv4_address"]
    challtestsrv_ip = challtestsrv["networks"]["certsvc"]["ipv4_address"]
    environment = services["api"]["environment"]

    assert default_ipv4 == responder_ip
    assert environment["CERTSVC_DNS_SERVER"] == f"{challtestsrv_ip}:8053"
    assert f"{challtestsrv_ip}:8053" in services["pebble"]["command"]
    assert environment["CERTSVC_RESPONDER_ADDRESS"].endswith(":80")
    assert environment["CERTSVC_CHALLENGE_PORT"] == "80"


def test_readme_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text()

    missing = sorted(name for name in variables_read_by_settings() if name not in readme)

    assert missing == []


def test_readme_documents_every_command() -> None:
    readme = (ROOT / "README.md").read_text()

    missing = sorted(name for name in COMMANDS if f"certsvc {name}" not in readme)

    assert missing == []


def test_readme_shows_grpcurl_for_every_rpc() -> None:
    from service.grpc_gen.certsvc.v1 import certsvc_pb2

    readme = (ROOT / "README.md").read_text()
    service = certsvc_pb2.DESCRIPTOR.services_by_name["CertificateService"]

    shown = set(re.findall(r"certsvc\.v1\.CertificateService/(\w+)", readme))

    assert sorted(method.name for method in service.methods if method.name not in shown) == []
