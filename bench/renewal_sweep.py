"""The renewal sweep over 1M certificate rows: select the due ones and enqueue 10k
renewals, against a limit measured in the same run.

The limit is the bare SQL query, streamed through a server-side cursor, plus the
issuance rows of the due domains inserted in one transaction and RQ's enqueue_many of
their 10k jobs. A certificate is due once two thirds of its lifetime have passed, so
90-day and 45-day certificates (both are generated) fall due at their own time. Each
sweep runs in a child process of its own, which reports its peak memory. Run from the
repository root:

    .venv/bin/python -m bench.renewal_sweep [--smoke] [--output FILE]
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import resource
import subprocess
import sys
import time
import uuid

import psycopg
import redis
import rq

from bench.harness import (Figure, argument_parser, command_line, configure_logging, emit,
                           ratio, rss_bytes, scratch_stack)
from service.queueing import ISSUANCE_JOB_FUNCTION
from service.redis_keys import RedisKeys

logger = logging.getLogger(__name__)

# Rows a round trip of the server-side cursor brings, and jobs per Redis pipeline.
FETCH_ROWS = 2_000
ENQUEUE_BATCH = 1_000

# The limit's query. Every lifetime certsvc issues is at most 90 days, so a due
# certificate expires within 30 days: that bound lets an index on not_after find the
# candidates, and the exact rule (two thirds of the lifetime passed) filters them.
DUE_QUERY = """
    SELECT d.id, d.hostname
    FROM certificates c JOIN domains d ON d.id = c.domain_id AND d.certificate_id = c.id
    WHERE c.source = 'LETS_ENCRYPT'
      AND c.not_after <= now() + interval '30 days'
      AND c.not_after - (c.not_after - c.not_before) / 3 <= now()
    ORDER BY c.not_after
    LIMIT %s
"""
# NOTE: the schema has no index that serves a renewal query yet; the limit creates
# this one in its scratch database. certsvc's sweep has to bring its own in a migration.
LIMIT_INDEX = """
    CREATE INDEX IF NOT EXISTS bench_certificates_renewal
    ON certificates (not_after) WHERE source = 'LETS_ENCRYPT'
"""


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
                private_key_sealed, key_type, not_before, not_after, issuer, serial_number,
                sha256_fingerprint)
            SELECT certificate_id, domain_id, source, ARRAY[hostname], 'stand-in chain',
                   '\\x00', 'ECDSA-P256', now() - lifetime * age_share,
                   now() - lifetime * age_share + lifetime, 'CN=bench', md5(hostname), 'AA'
            FROM bench_rows
            """)
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE domains")
        connection.execute("VACUUM ANALYZE certificates")


# --- the sweeps, each in a child process ----------------------------------------------


def run_limit_sweep(database_url: str, redis_url: str, redis_prefix: str, due: int) -> dict:
    """Select the due domains, insert their issuances in one transaction, enqueue the jobs."""
    timings = {}
    started = time.monotonic()
    issuance_ids: list[uuid.UUID] = []
    with psycopg.connect(database_url) as connection:
        with connection.cursor(name="due_certificates") as due_rows:
            due_rows.itersize = FETCH_ROWS
            due_rows.execute(DUE_QUERY, (due,))
            while batch := due_rows.fetchmany(FETCH_ROWS):
                domain_ids = [row[0] for row in batch]
                hostnames = [row[1] for row in batch]
                inserted = connection.execute(
                    """
                    INSERT INTO issuances (domain_id, hostname)
                    SELECT * FROM unnest(%s::uuid[], %s::text[])
                    ON CONFLICT (domain_id) WHERE state NOT IN ('SUCCEEDED', 'FAILED')
                    DO NOTHING RETURNING id
                    """, (domain_ids, hostnames)).fetchall()
                issuance_ids += [row[0] for row in inserted]
    timings["select_and_insert_seconds"] = time.monotonic() - started

    # Jobs go out after the commit: a worker must find the issuance row it is woken for.
    enqueue_started = time.monotonic()
    client = redis.Redis.from_url(redis_url)
    queue = rq.Queue(RedisKeys(redis_prefix).issuance_queue, connection=client)
    for start in range(0, len(issuance_ids), ENQUEUE_BATCH):
        batch_ids = issuance_ids[start:start + ENQUEUE_BATCH]
        with client.pipeline() as pipeline:
            queue.enqueue_many([rq.Queue.prepare_data(
                ISSUANCE_JOB_FUNCTION, (str(issuance_id),),
                job_id=f"{queue.name}-{issuance_id}-{uuid.uuid4().hex[:8]}",
                result_ttl=3600, failure_ttl=7 * 24 * 3600,
                description=f"issuance {issuance_id}") for issuance_id in batch_ids],
                pipeline=pipeline)
            pipeline.execute()
    client.close()
    timings["enqueue_seconds"] = time.monotonic() - enqueue_started
    timings["total_seconds"] = time.monotonic() - started
    timings["enqueued"] = len(issuance_ids)
    return timings


def run_certsvc_sweep(database_url: str, redis_url: str, redis_prefix: str,
                      due: int) -> dict | None:
    """Run certsvc's own renewal sweep over the same rows; None while it does not exist.

    TODO: plug certsvc's renewal sweep in here once it lands: call it with these
    settings and at most `due` renewals, and return {"total_seconds": ..., "enqueued":
    ...} as run_limit_sweep does. Its query's EXPLAIN belongs in the report too.
    """
    return None


SWEEPS = {"limit": run_limit_sweep, "certsvc": run_certsvc_sweep}


def _sweep_child(name: str, database_url: str, redis_url: str, redis_prefix: str,
                 due: int) -> None:
    """Body of the child process: run one sweep and print its timings and memory."""
    before = rss_bytes(os.getpid())
    result = SWEEPS[name](database_url, redis_url, redis_prefix, due)
    # ru_maxrss is in kilobytes on Linux.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(None if result is None else {**result, "rss_before_bytes": before,
                                                  "rss_peak_bytes": peak}))


def run_sweep_process(name: str, database_url: str, redis_url: str, redis_prefix: str,
                      due: int) -> dict | None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.renewal_sweep", "--sweep", name, "--database-url",
         database_url, "--redis-url", redis_url, "--redis-prefix", redis_prefix,
         "--due", str(due)],
        capture_output=True, text=True, check=True, timeout=600,
        env={**os.environ, "PYTHONPATH": os.getcwd()})
    return json.loads(completed.stdout.strip().splitlines()[-1])


def explain(database_url: str, due: int) -> str:
    with psycopg.connect(database_url, autocommit=True) as connection:
        rows = connection.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + DUE_QUERY,
                                  (due,)).fetchall()
    return "\n".join(row[0] for row in rows)


def main() -> None:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--sweep", choices=sorted(SWEEPS), help=argparse_suppress())
    parser.add_argument("--database-url", help=argparse_suppress())
    parser.add_argument("--redis-url", help=argparse_suppress())
    parser.add_argument("--redis-prefix", help=argparse_suppress())
    parser.add_argument("--due", type=int, help=argparse_suppress())
    arguments = parser.parse_args()
    if arguments.sweep:
        _sweep_child(arguments.sweep, arguments.database_url, arguments.redis_url,
                     arguments.redis_prefix, arguments.due)
        return
    configure_logging()
    sizes = SMOKE if arguments.smoke else FULL

    with scratch_stack("sweep") as scratch:
        started = time.monotonic()
        generate_certificates(scratch.database_url, sizes)
        generated_seconds = time.monotonic() - started
        logger.info("generated %d certificates in %.1f s", sizes.certificates, generated_seconds)
        with psycopg.connect(scratch.database_url, autocommit=True) as connection:
            connection.execute(LIMIT_INDEX)
            connection.execute("ANALYZE certificates")
        plan = explain(scratch.database_url, sizes.due)
        limit = run_sweep_process("limit", scratch.database_url, scratch.redis_url,
                                  scratch.redis_prefix, sizes.due)
        # The limit's issuances are in flight now; certsvc's sweep must find the same rows due.
        with psycopg.connect(scratch.database_url, autocommit=True) as connection:
            connection.execute("DELETE FROM issuances")
        certsvc = run_sweep_process("certsvc", scratch.database_url, scratch.redis_url,
                                    f"{scratch.redis_prefix}-certsvc", sizes.due)

    emit([build_figure(limit, certsvc, plan, sizes, generated_seconds, arguments.smoke)],
         arguments.output)


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


def build_figure(limit: dict, certsvc: dict | None, plan: str, sizes: Sizes,
                 generated_seconds: float, smoke: bool) -> Figure:
    uses_index = "Index" in plan
    figure = Figure(
        key="renewal_sweep", title=f"Renewal sweep ({sizes.certificates:,} certificates)",
        goal=f"certsvc's sweep within 1.5x of the limit (select the due ones, enqueue "
             f"{sizes.due:,}); constant memory; an index in the plan",
        ratio=ratio(certsvc["total_seconds"], limit["total_seconds"]) if certsvc else None,
        target=1.5, higher_is_better=False, command=command_line("bench.renewal_sweep", smoke))
    figure.add_goal("certsvc sweep / limit, total time",
                    figure.ratio, 1.5, higher_is_better=False)
    figure.add_goal("the limit's plan uses an index (1 = yes)", 1.0 if uses_index else 0.0, 1.0)
    rows = []
    for name, result in (("limit: bare query + issuance rows + enqueue_many", limit),
                         ("certsvc's sweep", certsvc)):
        if result is None:
            rows.append({"sweep": name, "enqueued": None, "total_seconds": None,
                         "note": "not built yet; plugs in at run_certsvc_sweep"})
            continue
        rows.append({
            "sweep": name, "enqueued": result["enqueued"],
            "select_and_insert_seconds": result.get("select_and_insert_seconds"),
            "enqueue_seconds": result.get("enqueue_seconds"),
            "total_seconds": result["total_seconds"],
            "rss_before_mb": result["rss_before_bytes"] / 1024 / 1024,
            "rss_peak_mb": result["rss_peak_bytes"] / 1024 / 1024,
        })
    figure.rows = rows
    figure.notes = [
        f"{sizes.certificates:,} domains with active certificates generated in Postgres in "
        f"{generated_seconds:.0f} s: 1 in 20 uploaded, 1 in 3 with a 45-day lifetime, "
        f"{sizes.due:,} Let's Encrypt ones due.",
        "Memory is each sweep process's RSS before the sweep and its peak (ru_maxrss); the "
        "limit streams rows 2,000 at a time and holds only the 10k issuance ids.",
        "The limit's query runs on an index the benchmark creates "
        "(certificates (not_after) WHERE source = 'LETS_ENCRYPT'); the schema has none yet.",
    ]
    figure.extra["EXPLAIN (ANALYZE) of the limit's query"] = plan
    return figure


if __name__ == "__main__":
    main()
