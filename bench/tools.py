"""The programs the benchmarks need beside certsvc, installed on first use, and the
versions and machine facts that docs/benchmarks.md records.

Debian packages come through apt-get. certbot and py-spy come from PyPI, each into a
virtual environment of its own under .bench/, so that certbot's pinned acme version
never meets certsvc's.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.harness import SCRATCH_ROOT

logger = logging.getLogger(__name__)

# Debian package of each command the benchmarks run.
DEBIAN_PACKAGES = {"lego": "lego", "wrk": "wrk", "nginx": "nginx",
                   "pebble": "pebble", "pebble-challtestsrv": "pebble"}
CERTBOT_VENV = SCRATCH_ROOT / "venv-certbot"
PROFILER_VENV = SCRATCH_ROOT / "venv-profiler"
INSTALL_TIMEOUT_SECONDS = 600


class ToolMissing(RuntimeError):
    """A program a benchmark needs is not installed and installing it failed."""


def _run(arguments: list[str], **options: object) -> subprocess.CompletedProcess:
    logger.info("running %s", " ".join(arguments))
    return subprocess.run(arguments, check=True, timeout=INSTALL_TIMEOUT_SECONDS,
                          **options)  # type: ignore[call-overload]


def ensure_debian_commands(commands: list[str]) -> None:
    """Install the Debian packages of the commands that are not on PATH."""
    missing = sorted({DEBIAN_PACKAGES[command] for command in commands
                      if shutil.which(command) is None})
    if not missing:
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    # RUNLEVEL=1 keeps the packages' init scripts from starting a system nginx on port
    # 80 where no policy-rc.d forbids it; the benchmarks start their own on free ports.
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "RUNLEVEL": "1"}
    try:
        _run([*sudo, "apt-get", "update", "-qq"], env=environment)
        _run([*sudo, "apt-get", "install", "-y", "-qq", *missing], env=environment,
             stdout=subprocess.DEVNULL)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        raise ToolMissing(f"installing {', '.join(missing)} with apt-get failed: {error}") from error


def _ensure_venv_tool(venv: Path, package: str, program: str) -> Path:
    executable = venv / "bin" / program
    if executable.exists():
        return executable
    # Without PYTHONPATH and outside the repository, pip does not see certsvc's own
    # metadata and does not complain about its requirements.
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    try:
        venv.parent.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "venv", str(venv)], env=environment, cwd=venv.parent)
        _run([str(venv / "bin" / "pip"), "install", "--quiet", package], env=environment,
             cwd=venv.parent)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        raise ToolMissing(f"installing {package} into {venv} failed: {error}") from error
    return executable


def ensure_certbot() -> Path:
    """Return the certbot executable of the benchmark's own virtual environment."""
    return _ensure_venv_tool(CERTBOT_VENV, "certbot", "certbot")


def ensure_py_spy() -> Path:
    return _ensure_venv_tool(PROFILER_VENV, "py-spy", "py-spy")


def ensure_all() -> None:
    """Install everything that bench/run-all needs."""
    ensure_debian_commands(list(DEBIAN_PACKAGES))
    ensure_certbot()
    ensure_py_spy()


# --- versions and machine -------------------------------------------------------------


def _output(arguments: list[str]) -> str:
    try:
        completed = subprocess.run(arguments, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not installed"
    return (completed.stdout + completed.stderr).strip().splitlines()[0] if (
        completed.stdout or completed.stderr) else "unknown"


def _debian_version(package: str) -> str:
    text = _output(["dpkg-query", "-W", "-f=${Version}", package])
    return text if text and "no packages" not in text else "not installed"


def _python_package_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _postgres_server_version() -> str:
    import psycopg

    from devtools.stack import ADMIN_DATABASE_URL

    try:
        with psycopg.connect(ADMIN_DATABASE_URL, connect_timeout=5) as connection:
            return str(connection.execute("SHOW server_version").fetchone()[0])
    except psycopg.Error as error:
        return f"unknown ({error})"


def versions() -> dict[str, str]:
    """Return the version of every program and library that shapes the numbers."""
    found = {"python": platform.python_version()}
    for name in ("acme", "grpcio", "psycopg", "psycopg-pool", "rq", "redis", "cryptography",
                 "uvloop"):
        found[name] = _python_package_version(name)
    found["postgresql"] = _postgres_server_version()
    found["redis-server"] = _output(["redis-server", "--version"])
    for package in ("pebble", "lego", "nginx", "wrk"):
        found[package] = _debian_version(package)
    certbot = CERTBOT_VENV / "bin" / "certbot"
    found["certbot"] = _output([str(certbot), "--version"]) if certbot.exists() else "not installed"
    py_spy = PROFILER_VENV / "bin" / "py-spy"
    found["py-spy"] = _output([str(py_spy), "--version"]) if py_spy.exists() else "not installed"
    return found


def machine() -> dict[str, str]:
    """Return the facts about this machine that a reader needs to compare runs."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    memory = re.search(r"^MemTotal:\s*(\d+) kB", meminfo, re.M)
    os_release = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    pretty = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', os_release, re.M)
    return {
        "cores": str(os.cpu_count()),
        "cpu": model.group(1).strip() if model else platform.processor() or "unknown",
        "memory": f"{int(memory.group(1)) / 1024 / 1024:.1f} GiB" if memory else "unknown",
        "kernel": platform.release(),
        "os": pretty.group(1) if pretty else platform.platform(),
    }
