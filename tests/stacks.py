"""A whole certsvc deployment of one test's own: database, Redis prefix (or a private
redis-server), Pebble, api, responder, workers and scheduler, for fault tests that kill,
restart or reconfigure parts of it."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import psycopg
import pytest

from devtools import stack
from devtools.pebble import LocalPebble, free_port
from service.config import Settings
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc
from service.store.migrate import migrate


class IsolatedStack:
    """A started deployment; its processes are named api, responder, worker-N, scheduler."""

    def __init__(self, workdir: Path, *, database_url: str, redis_url: str, pebble: LocalPebble,
                 extra_env: dict[str, str]) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.redis_url = redis_url
        self.pebble = pebble
        self.prefix = f"certsvc-fault-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.api_port = free_port()
        self.environment = {
            "CERTSVC_DATABASE_URL": database_url,
            "CERTSVC_REDIS_URL": redis_url,
            "CERTSVC_REDIS_PREFIX": self.prefix,
            "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{self.api_port}",
            **pebble.certsvc_environment(),
            "CERTSVC_ALLOW_PRIVATE_TARGETS": "1",
            "CERTSVC_DEV_INSECURE": "1",
            "CERTSVC_LOG_LEVEL": "DEBUG",
            "CERTSVC_RETRY_FIRST_DELAY_SECONDS": "1",
            "CERTSVC_RETRY_MAX_DELAY_SECONDS": "4",
            "CERTSVC_RECOVERY_INTERVAL_SECONDS": "1",
            **extra_env,
        }
        self.processes = stack.Processes(self.environment, workdir / "logs")
        self.channel: grpc.Channel | None = None
        self.stub: certsvc_pb2_grpc.CertificateServiceStub | None = None

    def settings(self) -> Settings:
        return Settings.from_env(self.environment)

    def start_api(self) -> None:
        process = self.processes.start("api", "api")
        stack.wait_for_port("127.0.0.1", self.api_port, timeout=120, process=process)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.api_port}")
        grpc.channel_ready_future(self.channel).result(timeout=60)
        self.stub = certsvc_pb2_grpc.CertificateServiceStub(self.channel)

    def start_responder(self) -> None:
        process = self.processes.start("responder", "responder")
        stack.wait_for_port("127.0.0.1", self.pebble.http_port, timeout=120, process=process)

    def start_workers(self, count: int, first: int = 1,
                      extra_env: dict[str, str] | None = None) -> None:
        """Start workers and wait until each listens on the queue."""
        names = [f"worker-{number}" for number in range(first, first + count)]
        for name in names:
            self.processes.start(name, "worker", "--name", f"{self.prefix}-{name}",
                                 extra_env=extra_env)
        for name in names:
            self.wait_for_log(name, "Listening on")

    def start_scheduler(self, name: str = "scheduler",
                        extra_env: dict[str, str] | None = None) -> None:
        self.processes.start(name, "scheduler", extra_env=extra_env)
        self.wait_for_log(name, "scheduler started")

    def wait_for_log(self, name: str, text: str, timeout: float = 120.0) -> None:
        """Wait until a process's log contains text; fail if the process exits first."""
        deadline = time.monotonic() + timeout
        process = self.processes.running[name]
        while text not in self.log_text(name):
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode} before logging {text!r}; "
                            f"see {self.processes.log_dir / (name + '.log')}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not log {text!r} within {timeout:g} s")
            time.sleep(0.05)

    def add_and_request(self, hostnames: list[str], app_id: str = "app-fault") -> list[str]:
        """Add each hostname and request its certificate; return the issuance ids."""
        assert self.stub is not None
        ids = []
        for hostname in hostnames:
            self.stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id=app_id), timeout=30)
            ids.append(self.stub.RequestCertificate(
                pb.RequestCertificateRequest(hostname=hostname), timeout=30).id)
        return ids

    def wait_until_final(self, issuance_ids: list[str], timeout: float = 300.0) -> dict[str, str]:
        """Poll Postgres until every issuance is SUCCEEDED or FAILED; return id -> state."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.issuance_states(issuance_ids)
            if all(state in ("SUCCEEDED", "FAILED") for state in states.values()):
                return states
            if time.monotonic() > deadline:
                pending = {k: v for k, v in states.items() if v not in ("SUCCEEDED", "FAILED")}
                pytest.fail(f"{len(pending)} issuances unfinished after {timeout:g} s: {pending}; "
                            f"logs in {self.processes.log_dir}")
            time.sleep(0.25)

    def issuance_states(self, issuance_ids: list[str]) -> dict[str, str]:
        with psycopg.connect(self.database_url, connect_timeout=5) as connection:
            rows = connection.execute("SELECT id::text, state FROM issuances WHERE id = ANY(%s)",
                                      ([uuid.UUID(i) for i in issuance_ids],)).fetchall()
        return dict(rows)

    def query(self, sql: str, *parameters: object) -> list[tuple]:
        with psycopg.connect(self.database_url, connect_timeout=5) as connection:
            return connection.execute(sql, parameters).fetchall()

    def log_text(self, name: str) -> str:
        return self.processes.log_text(name)

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        self.processes.stop_all()


@contextlib.contextmanager
def isolated_stack(workdir: Path, *, workers: int = 1, scheduler: bool = True,
                   pebble_options: dict | None = None, database_url: str | None = None,
                   redis_url: str = stack.REDIS_URL,
                   extra_env: dict[str, str] | None = None) -> Iterator[IsolatedStack]:
    """Start a deployment; without database_url a database is created and dropped for it."""
    pebble = LocalPebble.on_free_ports(workdir / "pebble", **(pebble_options or {}))
    own_database = stack.unique_name("fault") if database_url is None else None
    if own_database is not None:
        database_url = stack.create_database(own_database)
        migrate(database_url)
    deployment: IsolatedStack | None = None
    try:
        pebble.start()
        deployment = IsolatedStack(workdir, database_url=database_url, redis_url=redis_url,
                                   pebble=pebble, extra_env=extra_env or {})
        deployment.start_responder()
        deployment.start_api()
        deployment.start_workers(workers)
        if scheduler:
            deployment.start_scheduler()
        yield deployment
    finally:
        if deployment is not None:
            deployment.close()
            with contextlib.suppress(Exception):
                stack.delete_redis_namespace(redis_url, deployment.prefix)
        pebble.stop()
        if own_database is not None:
            stack.drop_database(own_database)
