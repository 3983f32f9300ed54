"""A redis-server and a Postgres cluster of a test's own, on free loopback ports, that the
test may stop and restart without touching the machine's shared servers."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import redis

from devtools.pebble import free_port

STARTUP_TIMEOUT_SECONDS = 60.0
# initdb and the server refuse to run as root; the cluster belongs to this user.
POSTGRES_OS_USER = "postgres"


class PrivateRedis:
    """A redis-server without persistence: a restart loses every key, as in production."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server not found; install Debian's redis-server package")
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.workdir / "redis.log", "ab")
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start; see "
                                       f"{self.workdir / 'redis.log'}") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server, wait down_seconds, and start an empty one on the same port."""
        self.stop()
        time.sleep(down_seconds)
        self.start()


class PrivatePostgres:
    """A Postgres cluster made with initdb in a directory of its own, trusting local
    connections as root.

    The directory is made under the system's temporary directory, because the
    postgres user cannot enter pytest's private (mode 0700) temporary directories.
    """

    def __init__(self, port: int | None = None) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="certsvc-postgres-"))
        self.port = port or free_port()
        self.data_dir = self.workdir / "data"
        self.log_file = self.workdir / "postgres.log"

    @staticmethod
    def available() -> str | None:
        """Return why a private cluster cannot run here, or None when it can."""
        if os.geteuid() != 0:
            return "a private Postgres cluster needs root (to run initdb as postgres)"
        for program in ("initdb", "pg_ctl", "runuser"):
            if shutil.which(program) is None:
                return f"{program} not found"
        try:
            pwd.getpwnam(POSTGRES_OS_USER)
        except KeyError:
            return f"no {POSTGRES_OS_USER} user"
        return None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://root@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        shutil.chown(self.workdir, POSTGRES_OS_USER)
        self._as_postgres(["initdb", "-D", str(self.data_dir), "-U", "root", "-A", "trust",
                           "--no-sync"])

    def start(self) -> None:
        self._as_postgres([
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
            "-t", str(int(STARTUP_TIMEOUT_SECONDS)), "-o",
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} -c fsync=off",
            "start"])

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; mode "immediate" ends it as a crash would."""
        if (self.data_dir / "postmaster.pid").exists():
            self._as_postgres(["pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop"])

    def remove(self) -> None:
        """Stop the server if it runs and delete the cluster's directory."""
        self.stop("immediate")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _as_postgres(self, command: list[str]) -> None:
        subprocess.run(["runuser", "-u", POSTGRES_OS_USER, "--", *command], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.workdir)
