"""Start certsvc's processes and their scratch database and Redis namespace, for the demo
and the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import redis

ADMIN_DATABASE_URL = os.environ.get("CERTSVC_TEST_ADMIN_DATABASE_URL",
                                    "postgresql://root@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CERTSVC_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def certsvc_command() -> list[str]:
    """Return the command that runs the certsvc console script of this environment."""
    script = Path(sys.executable).with_name("certsvc")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "service.cli"]


def database_url_for(name: str, admin_url: str = ADMIN_DATABASE_URL) -> str:
    conninfo = psycopg.conninfo.conninfo_to_dict(admin_url)
    conninfo["dbname"] = name
    return psycopg.conninfo.make_conninfo(**conninfo)


def create_database(name: str, admin_url: str = ADMIN_DATABASE_URL) -> str:
    """Create an empty database (dropping one of that name) and return its URL."""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return database_url_for(name, admin_url)


def drop_database(name: str, admin_url: str = ADMIN_DATABASE_URL) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def unique_name(kind: str) -> str:
    return f"certsvc_{kind}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


def delete_redis_namespace(redis_url: str, prefix: str) -> int:
    """Delete the keys of one CERTSVC_REDIS_PREFIX: certsvc's own and RQ's for its queue.

    RQ keys are matched by the queue name and job ids, which both start with prefix.
    """
    client = redis.Redis.from_url(redis_url)
    deleted = 0
    for pattern in (f"{prefix}:*", f"rq:*{prefix}-*"):
        batch = []
        for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                deleted += client.delete(*batch)
                batch.clear()
        if batch:
            deleted += client.delete(*batch)
    client.close()
    return deleted


def wait_for_port(host: str, port: int, timeout: float = 30.0,
                  process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode} before "
                               f"listening on {host}:{port}")
        with socket.socket() as sock:
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {host}:{port} after {timeout:g} s")


class Processes:
    """certsvc subprocesses sharing one environment, each logging to a file in log_dir."""

    def __init__(self, environment: dict[str, str], log_dir: Path) -> None:
        self.environment = environment
        self.log_dir = log_dir
        self.running: dict[str, subprocess.Popen] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, *arguments: str, extra_env: dict[str, str] | None = None
              ) -> subprocess.Popen:
        """Start `certsvc <arguments>` under name (for example "worker-1")."""
        log = open(self.log_dir / f"{name}.log", "ab")
        process = subprocess.Popen(
            [*certsvc_command(), *arguments], stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **self.environment, **(extra_env or {})},
            start_new_session=True,
        )
        log.close()
        self.running[name] = process
        return process

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        process = self.running.pop(name, None)
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def log_text(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""
