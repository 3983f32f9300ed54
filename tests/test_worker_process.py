"""The `certsvc worker` process under a supervisor: fixed names and restarts."""

from __future__ import annotations

import signal
import time
import uuid

import redis
import rq

from devtools import stack


def _registered_pid(client: redis.Redis, name: str) -> int | None:
    worker = rq.Worker.find_by_key(rq.Worker.redis_worker_namespace_prefix + name,
                                   connection=client)
    if worker is None or worker.death_date is not None:
        return None
    return worker.pid


def _wait_for_registration(client: redis.Redis, name: str, pid: int,
                           timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _registered_pid(client, name) != pid:
        assert time.monotonic() < deadline, f"worker {name} pid {pid} never registered"
        time.sleep(0.1)


def test_restart_after_sigkill_same_name(processes: stack.Processes) -> None:
    name = f"fixed-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(stack.REDIS_URL)
    first = processes.start("worker-fixed-1", "worker", "--name", name)
    _wait_for_registration(client, name, first.pid)
    processes.stop("worker-fixed-1", sig=signal.SIGKILL)

    second = processes.start("worker-fixed-2", "worker", "--name", name)

    _wait_for_registration(client, name, second.pid)
    assert second.poll() is None
    assert "clearing the registration of dead worker" in processes.log_text("worker-fixed-2")
    processes.stop("worker-fixed-2")
    client.close()
