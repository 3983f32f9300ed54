"""The renewal sweep over 1M certificate rows: select the due ones and enqueue 10k
renewals, against a limit measured in the same run.

certsvc's sweep is worker.renewal.renew_due_certificates, run with
CERTSVC_RENEWAL_MAX_PER_RUN set to 10k so that one call queues them all (it is called
again while it stops short). The limit selects the same rows with certsvc's due query,
streamed through a server-side cursor, inserts the same issuance rows in one
transaction and enqueues the same 10k jobs with RQ's enqueue_many. A
certificate is due at its renew_after, two thirds into its lifetime, so 90-day and
45-day certificates (both are generated) fall due at their own time. Each sweep runs
in a child process of its own, which reports its peak memory. Run from the repository
root:

    .venv/bin/python -m bench.renewal_sweep [--smoke] [--output FILE]
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import redis
import rq

from bench.harness import (Figure, argument_parser, command_line, configure_logging, emit,
                           ratio, rss_bytes, scratch_stack)
from devtools import stack
from devtools.pebble import LocalPebble
from service.backends import ISSUANCE_JOB_TIMEOUT_SECONDS
from service.config import Settings
from service.queueing import ISSUANCE_JOB_FUNCTION
from service.redis_keys import RedisKeys
from service.store import renewals as renewal_rows

logger = logging.getLogger(__name__)

# Rows a round trip of the server-side cursor brings, and jobs per Redis pipeline.
FETCH_ROWS = 2_000
ENQUEUE_BATCH = 1_000

# The limit runs certsvc's own due query (service.store.renewals): Let's Encrypt
# certificates past their renewal time, of non-wildcard domains with no issuance in
# flight and no failure in the last six hours, earliest first.
DUE_QUERY = renewal_rows.DUE_FOR_RENEWAL_QUERY
FAILED_COOLDOWN = datetime.timedelta(hours=6)


@dataclasses.dataclass(frozen=True)
class Sizes:
    certificates: int
    due: int


FULL = Sizes(certificates=1_000_000, due=10_000)
SMOKE = Sizes(certificates=5_000, due=100)


def generate_certificates(database_url: str, sizes: Sizes) -> None:
    """Insert domains with active certificates; sizes.due Let's Encrypt ones are due.

    One row in 20 is an uploaded (CUSTOM) certificate, which is never renewed, and one
    in 3 has a 45-day lifetime instead of 90 days. Due rows are spread evenly.
    """
    every = sizes.certificates // sizes.due
    with psycopg.connect(database_url) as connection:
        # domains and certificates reference each other; skip the foreign key triggers.
        connection.execute("SET session_replication_role = replica")
        connection.execute(
            """
            CREATE TEMP TABLE bench_rows AS
            SELECT i, gen_random_uuid() AS domain_id, gen_random_uuid() AS certificate_id,
                   's' || i || '.sweep.example.com' AS hostname,
                   CASE WHEN i %% 20 = 0 THEN 'CUSTOM' ELSE 'LETS_ENCRYPT' END AS source,
                   CASE WHEN i %% 3 = 0 THEN interval '45 days' ELSE interval '90 days' END
                       AS lifetime,
                   CASE WHEN i %% %(every)s = 1 THEN 0.67 + (i %% 97) / 3000.0
                        ELSE ((i::bigint * 7919) %% 10007) / 10007.0 * 0.65 END AS age_share
            FROM generate_series(0, %(count)s - 1) AS i
            """, {"count": sizes.certificates, "every": every})
        connection.execute(
            """
            INSERT INTO domains (id, hostname, unicode_hostname, app_id, status, certificate_id)
            SELECT domain_id, hostname, hostname, 'app-' || (i % 5000), 'ACTIVE',
                   certificate_id FROM bench_rows
            """)
        connection.execute(
            """
            INSERT INTO certificates (id, domain_id, source, hostnames, chain_pem,
                private_key_sealed, key_type, not_before, not_after, renew_after, issuer,
                serial_number, sha256_fingerprint)
            SELECT certificate_id, domain_id, source, ARRAY[hostname], 'stand-in chain',
                   '\\x00', 'ECDSA-P256', now() - lifetime * age_share,
                   now() - lifetime * age_share + lifetime,
                   CASE WHEN source = 'LETS_ENCRYPT'
                        THEN now() - lifetime * age_share + lifetime * 2 / 3 END,
                   'CN=bench', md5(hostname), 'AA'
            FROM bench_rows
            """)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE domains")
        connection.execute("VACUUM ANALYZE certificates")


# --- the sweeps, each in a child process ----------------------------------------------


def run_limit_sweep(settings: Settings, due: int) -> dict:
    """Select the due domains, insert their issuances in one transaction, enqueue the jobs."""
    database_url, redis_url = settings.database_url, settings.redis_url
    redis_prefix = settings.redis_prefix
    timings = {}
    started = time.monotonic()
    queue_name = RedisKeys(redis_prefix).issuance_queue
    # (issuance id, job id) of each row. Each row names its job, as certsvc's rows do.
    jobs: list[tuple[uuid.UUID, str]] = []
    with psycopg.connect(database_url) as connection:
        with connection.cursor(name="due_certificates") as due_rows:
            due_rows.itersize = FETCH_ROWS
            due_rows.execute(DUE_QUERY, {"failed_cooldown": FAILED_COOLDOWN, "limit": due})
            while batch := due_rows.fetchmany(FETCH_ROWS):
                issuance_ids = [uuid.uuid4() for _ in batch]
                inserted = connection.execute(
                    """
                    INSERT INTO issuances (id, domain_id, hostname, job_id)
                    SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::text[])
                    ON CONFLICT (domain_id) WHERE state NOT IN ('SUCCEEDED', 'FAILED')
                    DO NOTHING RETURNING id, job_id
                    """, (issuance_ids, [row[0] for row in batch], [row[1] for row in batch],
                          [f"{queue_name}-{issuance_id}-{uuid.uuid4().hex[:8]}"
                           for issuance_id in issuance_ids])).fetchall()
                jobs += inserted
    timings["select_and_insert_seconds"] = time.monotonic() - started

    # Jobs go out after the commit: a worker must find the issuance row it is woken for.
    enqueue_started = time.monotonic()
    client = redis.Redis.from_url(redis_url)
    queue = rq.Queue(queue_name, connection=client,
                     default_timeout=ISSUANCE_JOB_TIMEOUT_SECONDS)
    for start in range(0, len(jobs), ENQUEUE_BATCH):
        with client.pipeline() as pipeline:
            queue.enqueue_many([rq.Queue.prepare_data(
                ISSUANCE_JOB_FUNCTION, (str(issuance_id),), job_id=job_id,
                result_ttl=3600, failure_ttl=7 * 24 * 3600,
                description=f"issuance {issuance_id}")
                for issuance_id, job_id in jobs[start:start + ENQUEUE_BATCH]],
                pipeline=pipeline)
            pipeline.execute()
    client.close()
    timings["enqueue_seconds"] = time.monotonic() - enqueue_started
    timings["total_seconds"] = time.monotonic() - started
    timings["enqueued"] = len(jobs)
    return timings


def run_certsvc_sweep(settings: Settings, due: int) -> dict:
    """Call certsvc's renewal sweep until it has queued due renewals or finds none.

    The sweep's steps are wrapped with timers, so the result shows where its time went.
    """
    from service import issuance, queueing
    from service.backends import Backends
    from worker import renewal
    from worker.scheduler import SchedulerContext

    step_seconds: dict[str, float] = {}
    _time_calls(renewal, "refresh_renewal_info", step_seconds)
    _time_calls(issuance, "create_issuances", step_seconds)
    _time_calls(queueing, "enqueue_issuances", step_seconds)
    backends = Backends.connect(settings)
    context = SchedulerContext(settings, backends, "bench")
    started = time.monotonic()
    queued = calls = 0
    while queued < due:
        calls += 1
        found = renewal.renew_due_certificates(context)
        if found == 0:
            break
        queued += found
    elapsed = time.monotonic() - started
    backends.close()
    return {"total_seconds": elapsed, "enqueued": queued, "calls": calls,
            "step_seconds": step_seconds}


def _time_calls(module: object, name: str, totals: dict[str, float]) -> None:
    """Replace module.name with a wrapper that adds each call's duration to totals[name]."""
    original = getattr(module, name)
    totals[name] = 0.0

    def timed(*arguments: object, **options: object) -> object:
        started = time.monotonic()
        try:
            return original(*arguments, **options)
        finally:
            totals[name] += time.monotonic() - started

    setattr(module, name, timed)


SWEEPS = {"limit": run_limit_sweep, "certsvc": run_certsvc_sweep}


def _sweep_child(name: str, due: int) -> None:
    """Body of the child process: run one sweep and print its timings and memory."""
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.from_env()
    before = rss_bytes(os.getpid())
    result = SWEEPS[name](settings, due)
    # ru_maxrss is in kilobytes on Linux.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(None if result is None else {**result, "rss_before_bytes": before,
                                                  "rss_peak_bytes": peak}))


def run_sweep_process(name: str, environment: dict[str, str], due: int) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.renewal_sweep", "--sweep", name, "--due", str(due)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, **environment, "PYTHONPATH": os.getcwd()})
    if completed.returncode != 0:
        raise RuntimeError(f"the {name} sweep failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def explain(database_url: str, due: int) -> str:
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + DUE_QUERY,
                                  {"failed_cooldown": FAILED_COOLDOWN, "limit": due}).fetchall()
    return "\n".join(row[0] for row in rows)


def explain_cursor(database_url: str, due: int) -> str:
    """Return the plan of the due query as a server-side cursor runs it.

    Postgres plans a cursor for its first rows (cursor_tuple_fraction) and without
    parallel workers, so this plan can differ from the one of explain(). EXPLAIN
    ANALYZE cannot run a DECLARE, so this plan has no timings.
    """
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "EXPLAIN (COSTS OFF) DECLARE due_certificates CURSOR FOR " + DUE_QUERY,
            {"failed_cooldown": FAILED_COOLDOWN, "limit": due}).fetchall()
    return "\n".join(row[0] for row in rows)


def main() -> None:
    parser = argument_parser(__doc__.splitlines()[0])
    # The child process of one sweep: settings come from CERTSVC_* variables.
    parser.add_argument("--sweep", choices=sorted(SWEEPS), help=argparse_suppress())
    parser.add_argument("--due", type=int, help=argparse_suppress())
    arguments = parser.parse_args()
    if arguments.sweep:
        _sweep_child(arguments.sweep, arguments.due)
        return
    configure_logging()
    sizes = SMOKE if arguments.smoke else FULL

    pebble = LocalPebble.on_free_ports(Path(tempfile.mkdtemp(prefix="certsvc-bench-sweep-")))
    pebble.start()
    try:
        with scratch_stack("sweep") as scratch:
            started = time.monotonic()
            generate_certificates(scratch.database_url, sizes)
            generated_seconds = time.monotonic() - started
            logger.info("generated %d certificates in %.1f s", sizes.certificates,
                        generated_seconds)
            plan = explain(scratch.database_url, sizes.due)
            cursor_plan = explain_cursor(scratch.database_url, sizes.due)
            # certsvc's sweep reads the ACME directory for renewal information first.
            environment = scratch.environment(
                CERTSVC_ACME_DIRECTORY_URL=pebble.directory_url,
                CERTSVC_ACME_CA_BUNDLE=str(pebble.ca_bundle), CERTSVC_LOG_LEVEL="WARNING")
            limit = run_sweep_process("limit", environment, sizes.due)
            # The limit's issuances are in flight now; certsvc's sweep must find the same
            # rows due, and its jobs go to a queue of their own. TRUNCATE leaves an empty
            # table as the limit found it: after a DELETE, the dead index entries of the
            # same domains would slow down each insert's in-flight check.
            with psycopg.connect(scratch.database_url, autocommit=True) as connection:
                connection.execute("TRUNCATE issuances")
            environment["CERTSVC_REDIS_PREFIX"] = f"{scratch.redis_prefix}-certsvc"
            # One sweep run queues them all, as the limit does.
            environment["CERTSVC_RENEWAL_MAX_PER_RUN"] = str(sizes.due)
            certsvc = run_sweep_process("certsvc", environment, sizes.due)
            stack.delete_redis_namespace(scratch.redis_url, environment["CERTSVC_REDIS_PREFIX"])
    finally:
        pebble.stop()

    emit([build_figure(limit, certsvc, plan, cursor_plan, sizes, generated_seconds,
                       arguments.smoke)],
         arguments.output)


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


def _certsvc_note(result: dict) -> str:
    steps = ", ".join(f"{name} {seconds:.1f} s"
                      for name, seconds in result["step_seconds"].items())
    return f"{result['calls']} calls; {steps} (overlapping)"


def build_figure(limit: dict, certsvc: dict, plan: str, cursor_plan: str, sizes: Sizes,
                 generated_seconds: float, smoke: bool) -> Figure:
    uses_index = "Index" in plan
    figure = Figure(
        key="renewal_sweep", title=f"Renewal sweep ({sizes.certificates:,} certificates)",
        goal=f"certsvc's sweep within 1.5x of the limit (select the due ones, enqueue "
             f"{sizes.due:,}); constant memory; an index in the plan",
        ratio=ratio(certsvc["total_seconds"], limit["total_seconds"]),
        target=1.5, higher_is_better=False, command=command_line("bench.renewal_sweep", smoke))
    figure.add_goal("certsvc sweep / limit, total time",
                    figure.ratio, 1.5, higher_is_better=False)
    figure.add_goal("the due query's plan uses an index (1 = yes)", 1.0 if uses_index else 0.0,
                    1.0)
    rows = []
    for name, result in (("limit: bare query + issuance rows + enqueue_many", limit),
                         ("certsvc: renew_due_certificates until done", certsvc)):
        rows.append({
            "sweep": name, "enqueued": result["enqueued"],
            "select_and_insert_seconds": result.get("select_and_insert_seconds"),
            "enqueue_seconds": result.get("enqueue_seconds"),
            "total_seconds": result["total_seconds"],
            "rss_before_mb": result["rss_before_bytes"] / 1024 / 1024,
            "rss_peak_mb": result["rss_peak_bytes"] / 1024 / 1024,
            "note": _certsvc_note(result) if "calls" in result else "",
        })
    figure.rows = rows
    figure.notes = [
        f"{sizes.certificates:,} domains with active certificates generated in Postgres in "
        f"{generated_seconds:.0f} s: 1 in 20 uploaded, 1 in 3 with a 45-day lifetime, "
        f"{sizes.due:,} Let's Encrypt ones due.",
        "Memory is each sweep process's RSS before the sweep and its peak (ru_maxrss); the "
        "limit streams rows 2,000 at a time and holds only the 10k issuance and job ids, "
        "certsvc streams them 1,000 at a time and holds at most two batches.",
        "certsvc's step times overlap: a background thread enqueues one batch's jobs while "
        "the next batch's rows are written.",
        "certsvc's sweep first asks the ACME directory for renewal information; the local "
        "Pebble offers none, so that step reads one batch of rows and stops.",
    ]
    figure.extra["EXPLAIN (ANALYZE) of the due query"] = plan
    figure.extra["EXPLAIN of the due query in the sweeps' server-side cursor"] = cursor_plan
    return figure


if __name__ == "__main__":
    main()
