"""GetCertificate by hostname, the edge router's hot path, with 100k domains.

Limits in the same run: Ping, which does nothing but authenticate, on the same api
process, and the same query through psycopg directly. The load comes from
bench/grpc_load.py in a process of its own, 64 callers at once. Hostnames follow a
Zipf distribution (exponent 1) over the 100k domains, as hot hostnames do; a
uniform run shows the cost when almost nothing is hot. Run from the repository root:

    .venv/bin/python -m bench.get_certificate [--smoke] [--profile] [--output FILE]

With --profile, one more Ping run and one more Zipf GetCertificate run follow the
measured ones, each with py-spy sampling the api's thread that holds the GIL, and the figure adds the
two summaries. The profiled runs count in no ratio.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from bench import profiling, tools
from bench.harness import (SCRATCH_ROOT, Figure, ScratchStack, argument_parser, command_line,
                           configure_logging, cpu_seconds, emit, ratio, rss_bytes,
                           scratch_stack)
from devtools import stack
from devtools.pebble import free_port

logger = logging.getLogger(__name__)

HOSTNAME_TEMPLATE = "gc{index}.bench.example.com"
RSS_LIMIT_BYTES = 150 * 1024 * 1024
# The last run requests only this many hostnames, which its warm-up puts in the cache,
# so it measures GetCertificate's cache hits.
HOT_HOSTNAMES = 5_000


@dataclasses.dataclass(frozen=True)
class Sizes:
    domains: int
    concurrency: int
    warmup_seconds: float
    seconds: float


# The warm-up lets the api's cache of hot hostnames fill (about 15,000 requests)
# before the measured window; every target gets the same.
FULL = Sizes(domains=100_000, concurrency=64, warmup_seconds=8.0, seconds=10.0)
SMOKE = Sizes(domains=200, concurrency=8, warmup_seconds=0.5, seconds=1.0)


def example_chain_pem() -> str:
    """Return a leaf and an intermediate, both RSA-2048, about the size of a Let's
    Encrypt RSA chain (about 2.3 kB of PEM)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    intermediate_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certsvc bench root")])
    intermediate_name = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "certsvc bench"),
        x509.NameAttribute(NameOID.COMMON_NAME, "certsvc bench intermediate E1")])

    def build(subject: x509.Name, issuer: x509.Name, key, signer, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=90))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                  critical=False))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("gc0.bench.example.com")]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    intermediate = build(intermediate_name, root_name, intermediate_key, root_key, True)
    leaf_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gc0.bench.example.com")])
    leaf = build(leaf_name, intermediate_name, leaf_key, intermediate_key, False)
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                   for c in (leaf, intermediate))


def generate_domains(database_url: str, count: int) -> None:
    """Insert count ACTIVE domains, each with its own certificate row, in one transaction.

    Every row carries the same chain text and 160 bytes standing in for the sealed key:
    GetCertificate returns them without parsing, and the benchmark asks for no keys.
    """
    chain_pem = example_chain_pem()
    with psycopg.connect(database_url) as connection:
        # Both tables reference each other; skip the foreign key triggers while loading.
        connection.execute("SET session_replication_role = replica")
        connection.execute(
            "CREATE TEMP TABLE bench_ids AS SELECT i, gen_random_uuid() AS domain_id, "
            "gen_random_uuid() AS certificate_id, replace(%s, '{index}', i::text) AS hostname "
            "FROM generate_series(0, %s - 1) AS i", (HOSTNAME_TEMPLATE, count))
        connection.execute(
            "INSERT INTO domains (id, hostname, unicode_hostname, app_id, status, certificate_id)"
            " SELECT domain_id, hostname, hostname, 'app-' || (i % 1000), 'ACTIVE', "
            "certificate_id FROM bench_ids")
        connection.execute(
            """
            INSERT INTO certificates (id, domain_id, source, hostnames, chain_pem,
                private_key_sealed, key_type, not_before, not_after, issuer, serial_number,
                sha256_fingerprint)
            SELECT certificate_id, domain_id, 'LETS_ENCRYPT', ARRAY[hostname], %s,
                   decode(repeat(md5(hostname), 10), 'hex'), 'RSA-2048', now() - interval '10 days',
                   now() + interval '80 days', 'C=US, O=certsvc bench, CN=certsvc bench E1',
                   upper(md5(hostname)), upper(md5(hostname || 'fingerprint'))
            FROM bench_ids
            """, (chain_pem,))
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE domains")
        connection.execute("VACUUM ANALYZE certificates")


# Categories of the api profile, in matching order: a stack counts for the first that matches.
API_PROFILE_CATEGORIES = [
    ("Postgres queries (psycopg, the pool)", profiling.leaf_in_files("psycopg")),
    ("authentication and request checks (guard)",
     profiling.calls_function("_admit", "check_fields", "check_request_permissions",
                              "check_response")),
    ("protobuf messages: build, parse, serialize",
     profiling.leaf_in_files("protobuf/", "messages.py")),
    ("certsvc's GetCertificate work", profiling.calls_function("get_certificate")),
    ("logging", profiling.leaf_in_files("logging/")),
    ("grpcio's server loop and thread pool",
     profiling.leaf_in_files("grpc/", "concurrent/futures/", "threading.py")),
]


def run_load(target: str, scratch: ScratchStack, api_address: str, sizes: Sizes,
             distribution: str, api_pid: int, domains: int | None = None) -> dict:
    """Run one load process and return its tallies plus the api's CPU use meanwhile.

    With domains set, only the hostnames of that many domains are requested.
    """
    command = [sys.executable, "-m", "bench.grpc_load", "--target", target,
               "--address", api_address, "--database-url", scratch.database_url,
               "--domains", str(domains or sizes.domains), "--template", HOSTNAME_TEMPLATE,
               "--distribution", distribution, "--concurrency", str(sizes.concurrency),
               "--warmup-seconds", str(sizes.warmup_seconds), "--seconds", str(sizes.seconds)]
    cpu_before = cpu_seconds(api_pid)
    started = time.monotonic()
    completed = subprocess.run(command, capture_output=True, text=True, check=True,
                               timeout=sizes.warmup_seconds + sizes.seconds + 120,
                               env={**os.environ, "PYTHONPATH": os.getcwd()})
    elapsed = time.monotonic() - started
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result["api_cpu_share"] = (cpu_seconds(api_pid) - cpu_before) / elapsed
    return result


def profile_api(target: str, scratch: ScratchStack, api_address: str, sizes: Sizes,
                api_pid: int, py_spy: Path) -> str | None:
    """Run one more load of target on Zipf hostnames with py-spy sampling the api's
    thread that holds the GIL."""
    output = SCRATCH_ROOT / "profiles" / f"api-{target}.raw"
    recording = profiling.Recording(py_spy, api_pid, output, idle=False, gil=True,
                                    max_seconds=sizes.warmup_seconds + sizes.seconds + 120)
    try:
        result = run_load(target, scratch, api_address, sizes, "zipf", api_pid)
    finally:
        raw = recording.stop()
    if raw is None:
        return None
    # The RPC threads and grpcio's polling thread all start in threading's _bootstrap.
    summary = profiling.summarize(raw, API_PROFILE_CATEGORIES, root_function="Thread._bootstrap",
                                  focus_files=["service/"])
    return summary.to_markdown(
        f"api threads holding the GIL under {target} load, Zipf hostnames, "
        f"{result['per_second']:,.0f} requests/s while profiled (py-spy --gil)")


def main() -> None:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--profile", action="store_true",
                        help="profile the api with py-spy in two extra runs")
    arguments = parser.parse_args()
    configure_logging()
    sizes = SMOKE if arguments.smoke else FULL
    py_spy = tools.ensure_py_spy() if arguments.profile else None

    with scratch_stack("getcert") as scratch:
        started = time.monotonic()
        generate_domains(scratch.database_url, sizes.domains)
        logger.info("generated %d domains in %.1f s", sizes.domains, time.monotonic() - started)
        port = free_port()
        api = scratch.processes.start("api", "api",
                                      extra_env={"CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{port}"})
        stack.wait_for_port("127.0.0.1", port, process=api)
        address = f"127.0.0.1:{port}"
        hot = min(HOT_HOSTNAMES, sizes.domains)
        results = {}
        for name, target, distribution, domains in (
                ("Ping (empty method), same server", "ping", "zipf", None),
                ("same query through psycopg directly", "postgres", "zipf", None),
                ("GetCertificate, Zipf hostnames", "get-certificate", "zipf", None),
                ("GetCertificate, uniform hostnames", "get-certificate", "uniform", None),
                (f"GetCertificate, {hot:,} hot hostnames (cache hits)", "get-certificate",
                 "uniform", hot)):
            results[name] = run_load(target, scratch, address, sizes, distribution, api.pid,
                                     domains)
            logger.info("%s: %.0f requests/s", name, results[name]["per_second"])
        api_rss = rss_bytes(api.pid)
        profiles = {}
        if py_spy is not None:
            for target in ("ping", "get-certificate"):
                profiles[f"profile_{target}"] = profile_api(target, scratch, address, sizes,
                                                            api.pid, py_spy)

    figures = build_figures(results, api_rss, sizes, arguments.smoke)
    figures[0].extra.update({key: text for key, text in profiles.items() if text})
    emit(figures, arguments.output)


def build_figures(results: dict[str, dict], api_rss: int | None, sizes: Sizes,
                  smoke: bool) -> list[Figure]:
    empty = results["Ping (empty method), same server"]
    hot = results["GetCertificate, Zipf hostnames"]
    throughput_ratio = ratio(hot["per_second"], empty["per_second"])
    p99_ratio = ratio(hot["p99_ms"], empty["p99_ms"])
    figure = Figure(
        key="get_certificate", title=f"GetCertificate by hostname ({sizes.domains:,} domains)",
        goal="throughput >= 0.7x the empty method's at 64 callers; p99 <= 2x the empty "
             "method's p99",
        ratio=throughput_ratio, target=0.7, command=command_line("bench.get_certificate", smoke))
    figure.add_goal("GetCertificate / Ping throughput", throughput_ratio, 0.7)
    figure.add_goal("GetCertificate / Ping p99 latency", p99_ratio, 2.0, higher_is_better=False)
    figure.rows = [{"target": name, "per_second": result["per_second"],
                    "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
                    "x_empty": ratio(result["per_second"], empty["per_second"]),
                    "errors": result["errors"] + result["wrong_answers"],
                    "api_cpu_share": result["api_cpu_share"] if "psycopg" not in name else None}
                   for name, result in results.items()]
    figure.notes = [
        f"One load process with {sizes.concurrency} asyncio callers; each sends its next "
        "request when the "
        "previous one returns. api CPU share is the api process's CPU seconds per second "
        "of the run (1.0 is one core).",
        "Errors count failed calls and answers whose certificate does not name the "
        "requested hostname.",
        "The runs share one api process, in the order listed, so the Zipf run starts with "
        "an empty cache and its misses are mostly hostnames asked for the first time. The "
        "uniform run is nearly all misses, and the hot-hostnames run nearly all hits: "
        "between them they show what a miss and a hit cost against Ping.",
    ]
    memory = Figure(key="memory", title="Memory (RSS)", goal="api and worker RSS < 150 MB each",
                    command=command_line("bench.get_certificate", smoke), target=1.0,
                    higher_is_better=False,
                    ratio=ratio(api_rss, RSS_LIMIT_BYTES))
    memory.rows = [{"process": "api, after the GetCertificate runs",
                    "rss_mb": api_rss / 1024 / 1024 if api_rss else None}]
    return [figure, memory]


if __name__ == "__main__":
    main()
