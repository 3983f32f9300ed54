"""Shared fixtures: a database and a Redis namespace per test run, a local Pebble, and
certsvc's processes started for real.

The shared api (api_address, channel, stub) requires credentials: stub and channel
send OPERATOR_TOKEN. Processes that tests start on their own with `processes.start`
inherit base_environment, which keeps development mode on, so a plain insecure
channel reaches them. Every process seals keys under MASTER_KEY, and every process
log lands under the run's temporary folder, which is scanned for secrets at the end.
"""

from __future__ import annotations

import base64
import logging
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis

import leak_scan
from devtools import stack
from devtools.credentials import new_master_key, new_token, with_bearer_token, write_callers_file
from devtools.challtestsrv import ChallTestSrv
from devtools.pebble import LocalPebble, free_port
from selfcheck_world import World, write_self_signed
from service.backends import Backends
from service.config import Settings
from service.encryption import Keyring
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc
from service.redis_keys import RedisKeys
from service.store.migrate import migrate

# The operator principal of the shared api: every app, private keys included.
OPERATOR_TOKEN = new_token()
MASTER_KEY = new_master_key()
leak_scan.watch("the shared api's operator token", OPERATOR_TOKEN)
leak_scan.watch("the test run's master key", MASTER_KEY)


def replace_file(target: Path, content: bytes) -> None:
    """Replace a file by rename, as tools that rotate certificates and secrets do."""
    staged = target.with_name(target.name + ".new")
    staged.write_bytes(content)
    staged.chmod(0o600)
    os.replace(staged, target)


def start_api_without_dev_mode(processes: stack.Processes, name: str,
                               environment: dict[str, str]) -> str:
    """Start `certsvc api` named name on a free port with environment; return its address."""
    port = free_port()
    process = processes.start(name, "api", extra_env={
        "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{port}", "CERTSVC_DEV_INSECURE": "0", **environment})
    stack.wait_for_port("127.0.0.1", port, process=process)
    return f"127.0.0.1:{port}"


@pytest.fixture(scope="session", autouse=True)
def no_secrets_in_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the run if any log of it contains a private key, token or key authorization.

    The test process's own log records go to a file scanned with the others. This
    fixture is set up first and torn down last, after every process has stopped and
    the database fixture has registered the keys it stored.
    """
    root = tmp_path_factory.getbasetemp()
    handler = logging.FileHandler(root / "pytest-process.log")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    yield
    logging.getLogger().removeHandler(handler)
    handler.close()
    leaks = leak_scan.find_leaks(leak_scan.log_files(root), leak_scan.watched)
    assert leaks == [], "secrets in the test run's logs:\n" + "\n".join(leaks)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database that lives for the test run."""
    name = stack.unique_name("test")
    url = stack.create_database(name)
    migrate(url)
    yield url
    # Register the keys stored during the run, so the log scan looks for them too.
    leak_scan.watch_stored_keys(url, Keyring(base64.b64decode(MASTER_KEY)))
    stack.drop_database(name)


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test run; its keys are deleted at the end."""
    prefix = f"certsvc-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    yield prefix
    stack.delete_redis_namespace(stack.REDIS_URL, prefix)


@pytest.fixture(scope="session")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPebble]:
    ca = LocalPebble.on_free_ports(tmp_path_factory.mktemp("pebble"))
    ca.start()
    yield ca
    ca.stop()


@pytest.fixture(scope="session")
def callers_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared api's CERTSVC_API_TOKENS_FILE: one operator with OPERATOR_TOKEN."""
    return write_callers_file(tmp_path_factory.mktemp("callers") / "callers.toml", [
        {"name": "test-operator", "apps": "*", "read_private_keys": True,
         "tokens": [OPERATOR_TOKEN]},
    ])


@pytest.fixture(scope="session")
def base_environment(database_url: str, redis_prefix: str, pebble: LocalPebble,
                     callers_file: Path) -> dict[str, str]:
    """CERTSVC_* variables shared by the test run's processes."""
    return {
        "CERTSVC_DATABASE_URL": database_url,
        "CERTSVC_REDIS_URL": stack.REDIS_URL,
        "CERTSVC_REDIS_PREFIX": redis_prefix,
        **pebble.certsvc_environment(),
        "CERTSVC_ALLOW_PRIVATE_TARGETS": "1",
        "CERTSVC_MASTER_KEY": MASTER_KEY,
        "CERTSVC_API_TOKENS_FILE": str(callers_file),
        "CERTSVC_DEV_INSECURE": "1",
        "CERTSVC_LOG_LEVEL": "DEBUG",
        # Short retry and recovery times, so that tests of failures finish in seconds.
        "CERTSVC_RETRY_FIRST_DELAY_SECONDS": "1",
        "CERTSVC_RETRY_MAX_DELAY_SECONDS": "4",
        "CERTSVC_RECOVERY_INTERVAL_SECONDS": "2",
    }


@pytest.fixture(scope="session")
def settings(base_environment: dict[str, str]) -> Settings:
    return Settings.from_env(base_environment)


@pytest.fixture(scope="session")
def backends(settings: Settings) -> Iterator[Backends]:
    connected = Backends.connect(settings)
    yield connected
    connected.close()


@pytest.fixture(scope="session")
def processes(base_environment: dict[str, str],
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[stack.Processes]:
    running = stack.Processes(base_environment, tmp_path_factory.mktemp("logs"))
    yield running
    running.stop_all()


@pytest.fixture(scope="session")
def api_address(processes: stack.Processes) -> str:
    """Address of the shared `certsvc api` process, which requires credentials."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = processes.start("api", "api", extra_env={"CERTSVC_GRPC_ADDRESS": address,
                                                       "CERTSVC_DEV_INSECURE": "0"})
    stack.wait_for_port("127.0.0.1", port, process=process)
    return address


@pytest.fixture(scope="session")
def channel(api_address: str) -> Iterator[grpc.Channel]:
    """A channel to the shared api whose calls carry OPERATOR_TOKEN."""
    with grpc.insecure_channel(api_address) as opened:
        grpc.channel_ready_future(opened).result(timeout=10)
        yield with_bearer_token(opened, OPERATOR_TOKEN)


@pytest.fixture(scope="session")
def stub(channel: grpc.Channel) -> certsvc_pb2_grpc.CertificateServiceStub:
    return certsvc_pb2_grpc.CertificateServiceStub(channel)


@pytest.fixture(scope="session")
def issuance_stack(processes: stack.Processes, pebble: LocalPebble, api_address: str) -> None:
    """A responder on Pebble's HTTP-01 port, one worker and a scheduler."""
    responder = processes.start("responder", "responder")
    stack.wait_for_port("127.0.0.1", pebble.http_port, process=responder)
    processes.start("worker-1", "worker")
    processes.start("scheduler", "scheduler")


def unique_hostname(label: str = "site") -> str:
    """Return a hostname no other test uses."""
    return f"{label}-{uuid.uuid4().hex[:10]}.example.com"


def wait_for_issuance(stub: certsvc_pb2_grpc.CertificateServiceStub, issuance_id: str,
                      timeout: float = 120.0) -> pb.Issuance:
    """Poll GetIssuance until the issuance finishes; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        issuance = stub.GetIssuance(pb.GetIssuanceRequest(id=issuance_id), timeout=10)
        if issuance.state in (pb.Issuance.SUCCEEDED, pb.Issuance.FAILED):
            return issuance
        if time.monotonic() > deadline:
            pytest.fail(f"issuance {issuance_id} still {pb.Issuance.State.Name(issuance.state)} "
                        f"after {timeout:g} s (attempt {issuance.attempt}, error {issuance.error!r})")
        time.sleep(0.1)


@pytest.fixture
def log_dir(processes: stack.Processes) -> Path:
    return processes.log_dir


@pytest.fixture(scope="session")
def keys(redis_prefix: str) -> RedisKeys:
    """Redis key names of this test run."""
    return RedisKeys(redis_prefix)


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    """A client of the shared Redis, for reading and writing this run's keys."""
    client = redis.Redis.from_url(stack.REDIS_URL)
    yield client
    client.close()


@pytest.fixture(scope="session")
def responder_port(processes: stack.Processes) -> Iterator[int]:
    """Port of a `certsvc responder` of this run that no CA uses, for HTTP tests."""
    port = free_port()
    process = processes.start("responder-http", "responder",
                              extra_env={"CERTSVC_RESPONDER_ADDRESS": f"127.0.0.1:{port}"})
    stack.wait_for_port("127.0.0.1", port, process=process)
    yield port
    processes.stop("responder-http")


@pytest.fixture(scope="session")
def scenario_dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChallTestSrv]:
    """A pebble-challtestsrv without default answers, for self-check scenarios."""
    server = ChallTestSrv(tmp_path_factory.mktemp("scenario-dns"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def scenario_ports() -> tuple[int, int]:
    """The HTTP and HTTPS ports that self-check scenarios serve on, in place of 80 and 443."""
    return free_port(), free_port()


@pytest.fixture
def world(scenario_dns: ChallTestSrv, scenario_ports: tuple[int, int],
          tmp_path: Path) -> Iterator[World]:
    """A self-check scenario player; its servers and DNS answers go when the test ends."""
    played = World(scenario_dns, *scenario_ports, write_self_signed(tmp_path))
    yield played
    played.close()
