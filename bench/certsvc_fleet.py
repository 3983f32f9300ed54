"""certsvc's issuance processes on a scratch stack against a local Pebble: api,
responder, scheduler and a chosen number of workers, driven over gRPC and timed from
the issuances' own rows in Postgres."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import logging
import subprocess
import time
import uuid
from collections.abc import Sequence

import grpc
import psycopg
import redis
import rq

from bench.harness import Deadline, ScratchStack, cpu_seconds, child_pids, rss_bytes
from devtools import stack
from devtools.pebble import LocalPebble, free_port
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc
from service.redis_keys import RedisKeys

logger = logging.getLogger(__name__)

# Threads that send RequestCertificate calls: enough to queue 200 issuances in well
# under a second, few enough not to starve the workers of CPU meanwhile.
REQUEST_THREADS = 4
POLL_SECONDS = 0.02
STARTUP_TIMEOUT_SECONDS = 30.0


@dataclasses.dataclass(frozen=True)
class IssuanceTiming:
    state: str
    created_at: datetime.datetime
    updated_at: datetime.datetime
    started_at: datetime.datetime | None
    """When a worker started the attempt (the ISSUANCE_STARTED event)."""

    @property
    def latency_seconds(self) -> float:
        """RequestCertificate to SUCCEEDED, both as Postgres recorded them."""
        return (self.updated_at - self.created_at).total_seconds()


class CertsvcFleet:
    """certsvc api, responder and scheduler, plus workers started and stopped on demand."""

    def __init__(self, scratch: ScratchStack, pebble: LocalPebble) -> None:
        self.scratch = scratch
        self.processes = scratch.processes
        self.processes.environment.update({
            **pebble.certsvc_environment(),
            "CERTSVC_ALLOW_PRIVATE_TARGETS": "1",
        })
        self.pebble = pebble
        self.api_port = free_port()
        self.workers: list[subprocess.Popen] = []
        self._worker_serial = 0
        self._channel: grpc.Channel | None = None
        self.stub: certsvc_pb2_grpc.CertificateServiceStub | None = None
        self.redis = redis.Redis.from_url(scratch.redis_url)
        # One connection for all of the benchmark's own polling: Postgres is shared and
        # its connection slots are few.
        self.connection = psycopg.connect(scratch.database_url, autocommit=True)
        self.queue = rq.Queue(RedisKeys(scratch.redis_prefix).issuance_queue,
                              connection=self.redis)

    def start(self) -> None:
        api = self.processes.start("api", "api", extra_env={
            "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{self.api_port}"})
        responder = self.processes.start("responder", "responder")
        self.processes.start("scheduler", "scheduler")
        stack.wait_for_port("127.0.0.1", self.api_port, process=api)
        stack.wait_for_port("127.0.0.1", self.pebble.http_port, process=responder)
        self._channel = grpc.insecure_channel(f"127.0.0.1:{self.api_port}")
        grpc.channel_ready_future(self._channel).result(timeout=STARTUP_TIMEOUT_SECONDS)
        self.stub = certsvc_pb2_grpc.CertificateServiceStub(self._channel)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self.redis.close()
        self.connection.close()

    def pid(self, name: str) -> int:
        return self.processes.running[name].pid

    # --- workers ----------------------------------------------------------------------

    def start_workers(self, count: int) -> None:
        """Start count workers and wait until RQ lists them all."""
        for _ in range(count):
            self._worker_serial += 1
            name = f"worker-{self._worker_serial}"
            self.workers.append(self.processes.start(
                name, "worker", "--name", f"{self.scratch.redis_prefix}-{name}"))
        deadline = Deadline(STARTUP_TIMEOUT_SECONDS)
        while rq.Worker.count(queue=self.queue) < len(self.workers):
            if deadline.expired():
                raise RuntimeError(f"only {rq.Worker.count(queue=self.queue)} of "
                                   f"{len(self.workers)} workers registered in time")
            time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        return [process.pid for process in self.workers]

    def stop_workers(self) -> None:
        for name in [name for name in self.processes.running if name.startswith("worker-")]:
            self.processes.stop(name)
        self.workers.clear()

    # --- issuances --------------------------------------------------------------------

    def add_domains(self, hostnames: Sequence[str]) -> None:
        assert self.stub is not None
        with concurrent.futures.ThreadPoolExecutor(REQUEST_THREADS) as pool:
            list(pool.map(lambda hostname: self.stub.AddDomain(
                pb.AddDomainRequest(hostname=hostname, app_id="bench"), timeout=10), hostnames))

    def request(self, hostnames: Sequence[str]) -> list[uuid.UUID]:
        """Request a certificate for each hostname at once; return the issuance ids."""
        assert self.stub is not None
        with concurrent.futures.ThreadPoolExecutor(REQUEST_THREADS) as pool:
            issuances = list(pool.map(lambda hostname: self.stub.RequestCertificate(
                pb.RequestCertificateRequest(hostname=hostname), timeout=10), hostnames))
        return [uuid.UUID(issuance.id) for issuance in issuances]

    def wait_finished(self, issuance_ids: Sequence[uuid.UUID], deadline: Deadline) -> int:
        """Wait until every issuance SUCCEEDED or FAILED, or the deadline; return how many did."""
        while True:
            finished = self.connection.execute(
                "SELECT count(*) FROM issuances WHERE id = ANY(%s) "
                "AND state IN ('SUCCEEDED', 'FAILED')", (list(issuance_ids),),
            ).fetchone()[0]
            if finished == len(issuance_ids) or deadline.expired():
                return finished
            time.sleep(POLL_SECONDS)

    def issue_one_by_one(self, hostnames: Sequence[str], deadline: Deadline) -> list[uuid.UUID]:
        """Request each certificate only after the previous one finished: unloaded latency."""
        issued = []
        for hostname in hostnames:
            if deadline.expired():
                break
            issuance_ids = self.request([hostname])
            self.wait_finished(issuance_ids, deadline)
            issued += issuance_ids
        return issued

    def timings(self, issuance_ids: Sequence[uuid.UUID]) -> list[IssuanceTiming]:
        rows = self.connection.execute(
            """
            SELECT i.state, i.created_at, i.updated_at,
                   (SELECT min(e.created_at) FROM events e
                    WHERE e.issuance_id = i.id AND e.type = 'ISSUANCE_STARTED')
            FROM issuances i WHERE i.id = ANY(%s)
            """,
            (list(issuance_ids),),
        ).fetchall()
        return [IssuanceTiming(*row) for row in rows]

    # --- resources --------------------------------------------------------------------

    def service_pids(self) -> list[int]:
        """Every certsvc process and child of this fleet."""
        pids = [process.pid for process in self.processes.running.values()]
        return pids + [child for pid in pids for child in child_pids(pid)]

    def cpu_snapshot(self) -> dict[int, float]:
        """CPU seconds of every certsvc process and of the Postgres backends serving them."""
        pids = self.service_pids() + self.scratch.backend_pids()
        return {pid: cpu_seconds(pid) for pid in pids}

    def roles(self) -> dict[int, str]:
        """Name the role of each pid of cpu_snapshot(): api, responder, workers, Postgres."""
        roles = {}
        for name, process in self.processes.running.items():
            role = "workers" if name.startswith("worker-") else name
            for pid in [process.pid, *child_pids(process.pid)]:
                roles[pid] = role
        for pid in self.scratch.backend_pids():
            roles[pid] = "postgres backends"
        return roles

    def max_worker_rss(self) -> int | None:
        readings = [rss for rss in map(rss_bytes, self.worker_pids()) if rss is not None]
        return max(readings) if readings else None


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two snapshots by the processes alive at the second."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def cpu_used_by_role(before: dict[int, float], after: dict[int, float],
                     roles: dict[int, str]) -> dict[str, float]:
    used: dict[str, float] = {}
    for pid, seconds in after.items():
        role = roles.get(pid, "other")
        used[role] = used.get(role, 0.0) + seconds - before.get(pid, 0.0)
    return used
