"""Run every benchmark, print the summary table and write docs/benchmarks.md.

bench/run-all calls this after `make install`. It first installs what the benchmarks
need: Debian's pebble, lego, wrk and nginx, and certbot and py-spy from PyPI into
virtual environments under .bench/. Then it runs each benchmark module in a process
of its own with a time limit and writes the page from their JSON results. A benchmark that fails is
listed on the page and the others still run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import subprocess
import sys
import time

from bench import report, tools
from bench.harness import REPO_ROOT, RESULTS_DIR, SCRATCH_ROOT, configure_logging

logger = logging.getLogger(__name__)

# Each benchmark module with the time it may take at most (a full run of issuance takes
# about 4 minutes on a 2-core machine, the others about 1 minute each).
BENCHMARKS = {
    "issuance": 900,
    "get_certificate": 600,
    "responder": 600,
    "renewal_sweep": 600,
}
PAGE = REPO_ROOT / "docs" / "benchmarks.md"


def run_benchmark(name: str, time_limit_seconds: int, smoke: bool) -> tuple[list[dict], str | None]:
    """Run one benchmark module; return its figures, or an error text when it failed."""
    output = RESULTS_DIR / f"{name}.json"
    output.unlink(missing_ok=True)
    log_path = SCRATCH_ROOT / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", f"bench.{name}", "--output", str(output)]
    if smoke:
        command.append("--smoke")
    logger.info("running %s (at most %d s); log in %s", " ".join(command[1:]),
                time_limit_seconds, log_path)
    started = time.monotonic()
    with log_path.open("wb") as log:
        try:
            completed = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                       cwd=REPO_ROOT, timeout=time_limit_seconds,
                                       env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        except subprocess.TimeoutExpired:
            return [], f"{name}: stopped after its time limit of {time_limit_seconds} s; see {log_path}"
    logger.info("%s finished in %.0f s with exit code %d", name, time.monotonic() - started,
                completed.returncode)
    if completed.returncode != 0 or not output.exists():
        return [], f"{name}: exited with code {completed.returncode}; see {log_path}"
    return json.loads(output.read_text()), None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(BENCHMARKS),
                        help="run only this benchmark (repeatable); the page then lists only it")
    parser.add_argument("--smoke", action="store_true",
                        help="short runs that check the benchmarks work; writes "
                             ".bench/benchmarks-smoke.md instead of docs/benchmarks.md")
    arguments = parser.parse_args()
    configure_logging()
    started_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.monotonic()

    if not arguments.smoke:
        tools.ensure_all()
    figures: list[dict] = []
    failures: list[str] = []
    for name, time_limit in BENCHMARKS.items():
        if arguments.only and name not in arguments.only:
            continue
        found, failure = run_benchmark(name, time_limit, arguments.smoke)
        figures += found
        if failure:
            failures.append(failure)
    figures = report.merge_memory(figures)

    minutes = (time.monotonic() - started) / 60
    page = report.render_page(figures, tools.machine(), tools.versions(), started_at, minutes,
                              failures)
    target = SCRATCH_ROOT / "benchmarks-smoke.md" if arguments.smoke else PAGE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page)
    print(report.summary_table(figures))
    for failure in failures:
        print(f"FAILED: {failure}")
    print(f"\nbench/run-all took {minutes:.1f} minutes; wrote {target.relative_to(REPO_ROOT)}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
