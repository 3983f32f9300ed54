"""Issuance throughput and latency: certsvc with 1, 2 and 4 workers against the bare
acme library loop (the limit), certbot and lego, each against a local Pebble.

Pebble runs with PEBBLE_VA_NOSLEEP=1 and rejects no nonces. certsvc's numbers run
from RequestCertificate to SUCCEEDED (the domain turns ACTIVE in the same
transaction), as Postgres timestamps them. Run from the repository root:

    .venv/bin/python -m bench.issuance [--smoke] [--output FILE]
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import uuid
from pathlib import Path

from bench import acme_peers, bare_acme, profiling, tools
from bench.bare_acme import IssuerRun
from bench.certsvc_fleet import CertsvcFleet, cpu_used, cpu_used_by_role
from bench.harness import (Deadline, Figure, argument_parser, command_line, configure_logging,
                           emit, percentile, ratio, rss_bytes, scratch_stack, SCRATCH_ROOT)
from devtools.pebble import LocalPebble

logger = logging.getLogger(__name__)

WORKER_COUNTS = (1, 2, 4)
BARE_THREADS = 4
RSS_LIMIT_BYTES = 150 * 1024 * 1024
# Categories of a worker's wall-clock time; the first rule that matches a sampled
# stack names its category.
WORKER_PROFILE_CATEGORIES = [
    ("waiting for the next job (RQ dequeue)",
     profiling.calls_function("dequeue_any", "dequeue_job_and_maintain_ttl")),
    ("sleeping between ACME polls", profiling.leaf_function("poll_until")),
    ("self-check of the domain (DNS, HTTP to the responder)",
     profiling.calls_function("run_self_check", "_self_check")),
    ("waiting for the domain lock or a pooled connection",
     profiling.calls_function("try_lock_domain", "getconn")),
    ("HTTPS to the CA: TLS, sockets, waiting for Pebble",
     profiling.leaf_in_files("ssl.py", "socket.py", "http/client.py")),
    ("requests and urllib3 (the HTTP client itself)",
     profiling.leaf_in_files("requests/", "urllib3/", "email/")),
    ("JWS signing and ACME messages (josepy, acme)",
     profiling.leaf_in_files("josepy/", "acme/", "json/")),
    ("key generation, CSR, chain checks (cryptography)",
     profiling.leaf_in_files("cryptography/")),
    ("Postgres queries (psycopg)", profiling.leaf_in_files("psycopg")),
    ("Redis and RQ bookkeeping", profiling.leaf_in_files("redis/", "rq/")),
    ("logging", profiling.leaf_in_files("logging/")),
    ("certsvc's own code", profiling.leaf_in_files("worker/", "service/")),
]


@dataclasses.dataclass(frozen=True)
class Sizes:
    domains: int
    """Certificates per certsvc and bare-loop throughput run."""
    peer_certificates: int
    """Certificates certbot and lego issue, one after the other."""
    latency_samples: int
    """Certificates certsvc issues one at a time for the unloaded latency."""
    profile_domains: int
    run_limit_seconds: float
    """Time limit of each run; a run cut short reports what it finished."""


FULL = Sizes(domains=200, peer_certificates=20, latency_samples=20, profile_domains=60,
             run_limit_seconds=300)
SMOKE = Sizes(domains=4, peer_certificates=1, latency_samples=2, profile_domains=0,
              run_limit_seconds=60)


def _hostnames(label: str, count: int) -> list[str]:
    run_id = uuid.uuid4().hex[:6]
    return [f"{label}-{index}-{run_id}.example.com" for index in range(count)]


def _row(name: str, run: IssuerRun | None, note: str = "") -> dict:
    if run is None:
        return {"issuer": name, "certificates": None, "per_minute": None, "p50_ms": None,
                "p99_ms": None, "cpu_seconds_per_certificate": None, "note": note}
    p50 = percentile(run.latencies_seconds, 0.5)
    p99 = percentile(run.latencies_seconds, 0.99)
    return {
        "issuer": name,
        "certificates": run.issued,
        "failed": run.failed,
        "per_minute": run.per_minute,
        "p50_ms": p50 * 1000 if p50 is not None else None,
        "p99_ms": p99 * 1000 if p99 is not None else None,
        "cpu_seconds_per_certificate": run.cpu_seconds_per_certificate,
        "note": note,
    }


# --- the limit: the bare acme loop ----------------------------------------------------


def run_bare(workdir: Path, sizes: Sizes) -> tuple[IssuerRun, IssuerRun]:
    pebble = LocalPebble.on_free_ports(workdir / "pebble-bare", nonce_reject_percent=0)
    pebble.start()
    try:
        sequential = bare_acme.run_loop(pebble.directory_url, str(pebble.ca_bundle),
                                        pebble.http_port, _hostnames("bare1", sizes.domains),
                                        1, sizes.run_limit_seconds)
        threaded = bare_acme.run_loop(pebble.directory_url, str(pebble.ca_bundle),
                                      pebble.http_port, _hostnames("bare4", sizes.domains),
                                      BARE_THREADS, sizes.run_limit_seconds)
    finally:
        pebble.stop()
    return sequential, threaded


# --- certsvc --------------------------------------------------------------------------


@dataclasses.dataclass
class CertsvcResults:
    runs: dict[int, IssuerRun]
    cpu_by_role: dict[int, dict[str, float]]
    """CPU seconds per role (api, responder, workers...) during each throughput run."""
    one_at_a_time: IssuerRun | None
    api_rss: int | None
    worker_rss: int | None
    profile: str | None


def _throughput_run(fleet: CertsvcFleet, workers: int,
                    sizes: Sizes) -> tuple[IssuerRun, dict[str, float]]:
    """Issue sizes.domains certificates at once; return the run and CPU seconds by role."""
    hostnames = _hostnames(f"w{workers}", sizes.domains)
    fleet.add_domains(hostnames)
    cpu_before = fleet.cpu_snapshot()
    issuance_ids = fleet.request(hostnames)
    fleet.wait_finished(issuance_ids, Deadline(sizes.run_limit_seconds))
    cpu_after = fleet.cpu_snapshot()
    run = _issuer_run(fleet, issuance_ids, cpu_used(cpu_before, cpu_after))
    return run, cpu_used_by_role(cpu_before, cpu_after, fleet.roles())


def _issuer_run(fleet: CertsvcFleet, issuance_ids: list[uuid.UUID],
                cpu_seconds: float) -> IssuerRun:
    timings = fleet.timings(issuance_ids)
    succeeded = [timing for timing in timings if timing.state == "SUCCEEDED"]
    if succeeded:
        first = min(timing.created_at for timing in timings)
        last = max(timing.updated_at for timing in succeeded)
        elapsed = (last - first).total_seconds()
    else:
        elapsed = 0.0
    return IssuerRun(issued=len(succeeded), failed=len(timings) - len(succeeded),
                     elapsed_seconds=elapsed,
                     latencies_seconds=[timing.latency_seconds for timing in succeeded],
                     cpu_seconds=cpu_seconds)


def run_certsvc(workdir: Path, sizes: Sizes, py_spy: Path | None) -> CertsvcResults:
    pebble = LocalPebble.on_free_ports(workdir / "pebble-certsvc", nonce_reject_percent=0)
    pebble.start()
    try:
        with scratch_stack("issuance") as scratch:
            fleet = CertsvcFleet(scratch, pebble)
            try:
                fleet.start()
                return _run_fleet(fleet, sizes, py_spy, workdir)
            finally:
                fleet.close()
    finally:
        pebble.stop()


def _run_fleet(fleet: CertsvcFleet, sizes: Sizes, py_spy: Path | None,
               workdir: Path) -> CertsvcResults:
    runs: dict[int, IssuerRun] = {}
    cpu_by_role: dict[int, dict[str, float]] = {}
    one_at_a_time = None
    worker_rss: list[int] = []
    for workers in WORKER_COUNTS:
        fleet.start_workers(workers)
        # Each worker opens its ACME session on its first job; keep that out of the clock.
        warm_up = _hostnames(f"warm{workers}", workers)
        fleet.add_domains(warm_up)
        fleet.wait_finished(fleet.request(warm_up), Deadline(60))
        if workers == 1:
            hostnames = _hostnames("one", sizes.latency_samples)
            fleet.add_domains(hostnames)
            cpu_before = fleet.cpu_snapshot()
            issued = fleet.issue_one_by_one(hostnames, Deadline(sizes.run_limit_seconds))
            one_at_a_time = _issuer_run(fleet, issued,
                                        cpu_used(cpu_before, fleet.cpu_snapshot()))
        runs[workers], cpu_by_role[workers] = _throughput_run(fleet, workers, sizes)
        logger.info("certsvc with %d workers: %d certificates, %.0f per minute", workers,
                    runs[workers].issued, runs[workers].per_minute or 0)
        rss = fleet.max_worker_rss()
        if rss is not None:
            worker_rss.append(rss)
        fleet.stop_workers()

    profile = None
    if py_spy is not None and sizes.profile_domains:
        profile = _profile_worker(fleet, sizes, py_spy, workdir)
    return CertsvcResults(runs=runs, cpu_by_role=cpu_by_role, one_at_a_time=one_at_a_time,
                          api_rss=rss_bytes(fleet.pid("api")),
                          worker_rss=max(worker_rss) if worker_rss else None, profile=profile)


def _profile_worker(fleet: CertsvcFleet, sizes: Sizes, py_spy: Path, workdir: Path) -> str | None:
    """Issue profile_domains certificates with one worker under py-spy (wall clock)."""
    fleet.start_workers(1)
    hostnames = _hostnames("profile", sizes.profile_domains)
    fleet.add_domains(hostnames)
    output = SCRATCH_ROOT / "profiles" / "worker.raw"
    recording = profiling.Recording(py_spy, fleet.worker_pids()[0], output, idle=True,
                                    max_seconds=sizes.run_limit_seconds)
    try:
        fleet.wait_finished(fleet.request(hostnames), Deadline(sizes.run_limit_seconds))
    finally:
        raw = recording.stop()
        fleet.stop_workers()
    if raw is None:
        return None
    summary = profiling.summarize(raw, WORKER_PROFILE_CATEGORIES, root_function="<module>",
                                  focus_files=["worker/", "service/", "rq/worker", "rq/job"])
    return summary.to_markdown(
        f"One worker issuing {sizes.profile_domains} certificates, wall clock (py-spy --idle)")


# --- peers ----------------------------------------------------------------------------


def run_peers(workdir: Path, sizes: Sizes, smoke: bool) -> tuple[IssuerRun | None,
                                                                  IssuerRun | None, list[str]]:
    notes = []
    certbot_run = lego_run = None
    try:
        certbot = (tools.CERTBOT_VENV / "bin" / "certbot") if smoke else tools.ensure_certbot()
        if certbot.exists():
            certbot_run = acme_peers.run_certbot(
                certbot, workdir / "certbot", _hostnames("certbot", sizes.peer_certificates),
                sizes.run_limit_seconds)
        else:
            notes.append("certbot is not installed; the smoke run skips it")
    except tools.ToolMissing as error:
        notes.append(f"certbot: {error}")
    try:
        if not smoke:
            tools.ensure_debian_commands(["lego"])
        lego_run = acme_peers.run_lego(workdir / "lego",
                                       _hostnames("lego", sizes.peer_certificates),
                                       sizes.run_limit_seconds)
    except FileNotFoundError:
        notes.append("lego is not installed; the smoke run skips it")
    except tools.ToolMissing as error:
        notes.append(f"lego: {error}")
    return certbot_run, lego_run, notes


# --- figures --------------------------------------------------------------------------


def build_figures(bare: tuple[IssuerRun, IssuerRun], certsvc: CertsvcResults,
                  certbot: IssuerRun | None, lego: IssuerRun | None, notes: list[str],
                  smoke: bool) -> list[Figure]:
    bare_sequential, bare_threaded = bare
    fleet_of_four = certsvc.runs.get(4)
    throughput_ratio = ratio(fleet_of_four.per_minute if fleet_of_four else None,
                             bare_threaded.per_minute)
    p50 = percentile(certsvc.one_at_a_time.latencies_seconds, 0.5) if certsvc.one_at_a_time else None
    latency_ratio = ratio(p50, percentile(bare_sequential.latencies_seconds, 0.5))

    figure = Figure(
        key="issuance",
        title="Issuance throughput",
        goal="certsvc with 4 workers >= 0.5x the bare acme loop with 4 threads (certificates "
             "per minute); one issuance's p50 latency <= 1.5x the bare loop's",
        ratio=throughput_ratio, target=0.5, higher_is_better=True,
        command=command_line("bench.issuance", smoke),
    )
    figure.add_goal("4 workers / bare loop, 4 threads (certificates per minute)",
                    throughput_ratio, 0.5)
    figure.add_goal("one issuance's p50 latency / bare loop's, one at a time", latency_ratio,
                    1.5, higher_is_better=False)
    limit = bare_threaded.per_minute
    certbot_rate = certbot.per_minute if certbot else None
    rows = [
        _row("bare acme loop, sequential", bare_sequential),
        _row(f"bare acme loop, {BARE_THREADS} threads (the limit)", bare_threaded),
        _row("certsvc, 1 worker, one issuance at a time", certsvc.one_at_a_time,
             "unloaded latency"),
        *(_row(f"certsvc, {workers} worker{'s' if workers > 1 else ''}",
               certsvc.runs.get(workers), "latency includes waiting in the queue")
          for workers in WORKER_COUNTS),
        _row("certbot certonly --standalone, sequential", certbot),
        _row("lego --http, sequential", lego),
    ]
    for row in rows:
        row["x_limit"] = ratio(row["per_minute"], limit)
        row["x_certbot"] = ratio(row["per_minute"], certbot_rate)
    figure.rows = rows
    figure.notes = notes + [
        "CPU seconds per certificate count the issuer's own processes: for certsvc the api, "
        "responder, scheduler, workers and the Postgres backends serving them; Pebble's "
        "and Redis's CPU is not counted for anyone.",
    ]
    for workers, used in certsvc.cpu_by_role.items():
        issued = certsvc.runs[workers].issued or 1
        figure.notes.append(
            f"CPU milliseconds per certificate with {workers} worker"
            f"{'s' if workers > 1 else ''}, by process: "
            + ", ".join(f"{role} {seconds / issued * 1000:.1f}"
                        for role, seconds in sorted(used.items(), key=lambda item: -item[1])))
    if certsvc.profile:
        figure.extra["worker profile"] = certsvc.profile

    memory = Figure(
        key="memory", title="Memory (RSS)", goal="api and worker RSS < 150 MB each",
        command=command_line("bench.issuance", smoke), target=1.0, higher_is_better=False,
    )
    memory.rows = [
        {"process": "worker, after the issuance runs (largest)", "rss_mb": _mb(certsvc.worker_rss)},
        {"process": "api, after the issuance runs", "rss_mb": _mb(certsvc.api_rss)},
    ]
    memory.ratio = ratio(max(filter(None, [certsvc.worker_rss, certsvc.api_rss]), default=None),
                         RSS_LIMIT_BYTES)
    return [figure, memory]


def _mb(value: int | None) -> float | None:
    return value / 1024 / 1024 if value is not None else None


def main() -> None:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    arguments = parser.parse_args()
    configure_logging()
    sizes = SMOKE if arguments.smoke else FULL
    py_spy = None
    if not arguments.smoke and not arguments.no_profile:
        try:
            py_spy = tools.ensure_py_spy()
        except tools.ToolMissing as error:
            logger.warning("no worker profile: %s", error)

    workdir = Path(tempfile.mkdtemp(prefix="certsvc-bench-issuance-"))
    bare = run_bare(workdir, sizes)
    certsvc = run_certsvc(workdir, sizes, py_spy)
    certbot, lego, notes = run_peers(workdir, sizes, arguments.smoke)
    emit(build_figures(bare, certsvc, certbot, lego, notes, arguments.smoke), arguments.output)


if __name__ == "__main__":
    main()
