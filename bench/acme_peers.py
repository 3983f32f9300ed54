"""The peers of the issuance figure: certbot (`certonly --standalone`) and lego (`--http`).

Each binds the HTTP-01 port that Pebble validates on while it runs, so neither can
issue two certificates at once on one port: they issue one after the other, each
against a Pebble of its own.
"""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from bench.bare_acme import IssuerRun
from bench.harness import Deadline
from devtools.pebble import LocalPebble

logger = logging.getLogger(__name__)

# certbot and lego each take a few seconds per certificate; a run that hangs is cut here.
COMMAND_TIMEOUT_SECONDS = 120


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_sequentially(name: str, commands: Sequence[list[str]], environment: dict[str, str],
                      log_path: Path, time_limit_seconds: float) -> IssuerRun:
    """Run one issuing command per certificate, one after the other, timing each."""
    deadline = Deadline(time_limit_seconds)
    latencies: list[float] = []
    failed = 0
    cpu_before = _children_cpu_seconds()
    started = time.monotonic()
    with log_path.open("ab") as log:
        for command in commands:
            if deadline.expired():
                logger.warning("%s stopped at the time limit after %d certificates", name,
                               len(latencies))
                break
            command_started = time.monotonic()
            try:
                completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                           env={**os.environ, **environment},
                                           timeout=min(COMMAND_TIMEOUT_SECONDS,
                                                       deadline.remaining() + 1))
            except subprocess.TimeoutExpired:
                logger.warning("%s timed out: %s", name, " ".join(command))
                failed += 1
                continue
            if completed.returncode != 0:
                logger.warning("%s exited with %d; see %s", name, completed.returncode, log_path)
                failed += 1
                continue
            latencies.append(time.monotonic() - command_started)
    return IssuerRun(issued=len(latencies), failed=failed,
                     elapsed_seconds=time.monotonic() - started, latencies_seconds=latencies,
                     cpu_seconds=_children_cpu_seconds() - cpu_before)


def run_certbot(certbot: Path, workdir: Path, hostnames: Sequence[str],
                time_limit_seconds: float) -> IssuerRun:
    """Issue one certificate per hostname with `certbot certonly --standalone`."""
    pebble = LocalPebble.on_free_ports(workdir / "pebble", nonce_reject_percent=0)
    pebble.start()
    try:
        state = workdir / "certbot"
        commands = [[
            str(certbot), "certonly", "--standalone", "--non-interactive", "--agree-tos",
            "--register-unsafely-without-email", "--server", pebble.directory_url,
            "--http-01-address", "127.0.0.1", "--http-01-port", str(pebble.http_port),
            "--key-type", "ecdsa", "--config-dir", str(state / "config"),
            "--work-dir", str(state / "work"), "--logs-dir", str(state / "logs"),
            "-d", hostname,
        ] for hostname in hostnames]
        # certbot verifies Pebble's HTTPS certificate through requests.
        environment = {"REQUESTS_CA_BUNDLE": str(pebble.ca_bundle)}
        return _run_sequentially("certbot", commands, environment, workdir / "certbot.log",
                                 time_limit_seconds)
    finally:
        pebble.stop()


def run_lego(workdir: Path, hostnames: Sequence[str], time_limit_seconds: float) -> IssuerRun:
    """Issue one certificate per hostname with `lego --http run`."""
    pebble = LocalPebble.on_free_ports(workdir / "pebble", nonce_reject_percent=0)
    pebble.start()
    try:
        commands = [[
            "lego", "--server", pebble.directory_url, "--accept-tos",
            "--email", "bench@example.com", "--key-type", "ec256",
            "--path", str(workdir / "lego"), "--http",
            "--http.port", f"127.0.0.1:{pebble.http_port}",
            "--domains", hostname, "run",
        ] for hostname in hostnames]
        environment = {"LEGO_CA_CERTIFICATES": str(pebble.ca_bundle)}
        return _run_sequentially("lego", commands, environment, workdir / "lego.log",
                                 time_limit_seconds)
    finally:
        pebble.stop()
