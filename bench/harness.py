"""Helpers that every benchmark shares: results as JSON, percentiles, process CPU and memory
readings from /proc, deadlines, and a scratch certsvc stack on 127.0.0.1."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from devtools import stack
from service.store.migrate import migrate

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
# Tools, results and profiles of benchmark runs; ignored by git.
SCRATCH_ROOT = REPO_ROOT / ".bench"
RESULTS_DIR = SCRATCH_ROOT / "results"
_CLOCK_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclasses.dataclass
class Figure:
    """One benchmark figure: a ratio against a peer or a limit, with its goal."""

    key: str
    title: str
    goal: str
    """The goal as a sentence, for example "4 workers >= 0.5x the bare acme loop"."""
    ratio: float | None = None
    """The measured ratio that the goal is about; None when it could not be measured."""
    target: float | None = None
    higher_is_better: bool = True
    command: str = ""
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """The absolute numbers, one dict per measured subject, in table order."""
    notes: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Text blocks for the report: EXPLAIN plans, profile summaries."""
    sub_goals: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Further goals of the same figure: name, ratio, target, higher_is_better, met."""

    @property
    def met(self) -> bool | None:
        return goal_met(self.ratio, self.target, self.higher_is_better)

    def add_goal(self, name: str, ratio: float | None, target: float,
                 higher_is_better: bool = True) -> None:
        self.sub_goals.append({"name": name, "ratio": ratio, "target": target,
                               "higher_is_better": higher_is_better,
                               "met": goal_met(ratio, target, higher_is_better)})

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["met"] = self.met
        return data


def goal_met(ratio: float | None, target: float | None, higher_is_better: bool) -> bool | None:
    if ratio is None or target is None:
        return None
    return ratio >= target if higher_is_better else ratio <= target


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Return the value at fraction (0..1) of the sorted values, interpolating linearly."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


class Deadline:
    """A point in monotonic time that bounds a load loop."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at


# --- /proc readings -------------------------------------------------------------------


def child_pids(pid: int) -> list[int]:
    """Return the pids of pid's descendants."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        for child in parents.get(current, []):
            found.append(child)
            pending.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """Return user plus system CPU time of one process, 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields 14 and 15 of proc(5), counted from the pid: utime and stime in clock ticks.
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS_PER_SECOND


def tree_cpu_seconds(pids: Sequence[int]) -> float:
    """Return the CPU time of processes and all their descendants."""
    everyone = set(pids)
    for pid in pids:
        everyone.update(child_pids(pid))
    return sum(cpu_seconds(pid) for pid in everyone)


def rss_bytes(pid: int) -> int | None:
    """Return the resident set size of a process, None when it is gone."""
    try:
        resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return resident_pages * _PAGE_SIZE


def postgres_backend_pids(database_url: str, database_name: str) -> list[int]:
    """Return the pids of the server processes connected to one database."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database_name,),
        ).fetchall()
    return [row[0] for row in rows]


# --- scratch stack --------------------------------------------------------------------


@dataclasses.dataclass
class ScratchStack:
    """A migrated database and a Redis prefix of one benchmark run, with certsvc processes."""

    database_name: str
    database_url: str
    redis_url: str
    redis_prefix: str
    workdir: Path
    processes: stack.Processes

    def environment(self, **overrides: str) -> dict[str, str]:
        return {
            "CERTSVC_DATABASE_URL": self.database_url,
            "CERTSVC_REDIS_URL": self.redis_url,
            "CERTSVC_REDIS_PREFIX": self.redis_prefix,
            "CERTSVC_DEV_INSECURE": "1",
            "CERTSVC_LOG_LEVEL": "INFO",
            **overrides,
        }

    def backend_pids(self) -> list[int]:
        return postgres_backend_pids(self.database_url, self.database_name)


@contextmanager
def scratch_stack(kind: str, environment: dict[str, str] | None = None,
                  keep_workdir: bool = False) -> Iterator[ScratchStack]:
    """Create a database and Redis prefix of our own; drop and delete them on exit."""
    database_name = stack.unique_name(f"bench_{kind}")
    redis_prefix = f"certsvc-bench-{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"certsvc-bench-{kind}-"))
    database_url = stack.create_database(database_name)
    scratch = ScratchStack(database_name, database_url, stack.REDIS_URL, redis_prefix, workdir,
                           stack.Processes({}, workdir / "logs"))
    scratch.processes.environment = scratch.environment(**(environment or {}))
    try:
        migrate(database_url)
        yield scratch
    finally:
        scratch.processes.stop_all()
        stack.drop_database(database_name)
        deleted = stack.delete_redis_namespace(stack.REDIS_URL, redis_prefix)
        logger.info("dropped database %s and %d redis keys of prefix %s", database_name,
                    deleted, redis_prefix)
        if not keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


# --- command line ---------------------------------------------------------------------


def argument_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output", type=Path, default=None,
                        help="write the figure as JSON to this file (default: only print it)")
    parser.add_argument("--smoke", action="store_true",
                        help="a run of a few seconds that checks the benchmark works; its "
                             "numbers mean nothing")
    return parser


def configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def emit(figures: list[Figure], output: Path | None) -> None:
    """Print the figures as JSON, and write them to output when given."""
    text = json.dumps([figure.to_json() for figure in figures], indent=2, default=str)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text + "\n")
    print(text)


def command_line(module: str, smoke: bool = False) -> str:
    """Return the command that reproduces a figure, as run from the repository root."""
    return f".venv/bin/python -m {module}" + (" --smoke" if smoke else "")
