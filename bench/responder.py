"""The HTTP-01 responder against nginx serving the same tokens as static files.

wrk (2 threads, 64 connections, 10 s) walks 10,000 distinct tokens, a quarter of
them unknown so that the server must return 404, each with the Host header of its domain.
Both servers run two processes on 127.0.0.1. A sample of responses is checked byte
for byte first, and a run at 1,000 connections must end without a socket error or a
timeout. Run from the repository root:

    .venv/bin/python -m bench.responder [--smoke] [--output FILE]
"""

from __future__ import annotations

import base64
import dataclasses
import http.client
import json
import logging
import os
import random
import secrets
import shutil
import subprocess
from pathlib import Path

import redis

from bench import profiling, tools
from bench.harness import (SCRATCH_ROOT, Figure, ScratchStack, argument_parser, child_pids,
                           command_line, configure_logging, emit, ratio, scratch_stack)
from devtools import stack
from devtools.pebble import free_port
from service.redis_keys import RedisKeys, http01_value

logger = logging.getLogger(__name__)

LUA_SCRIPT = Path(__file__).resolve().parent / "wrk" / "walk_tokens.lua"
PROCESSES = 2
UNKNOWN_SHARE = 0.25
CHALLENGE_PATH = "/.well-known/acme-challenge/"
RESPONDER_PROFILE_CATEGORIES = [
    ("Redis link and RESP parsing (service/responder/redis_link.py, resp.py)",
     profiling.leaf_in_files("responder/redis_link.py", "responder/resp.py")),
    ("asyncio and uvloop machinery", profiling.leaf_in_files("asyncio/", "uvloop/")),
    ("HTTP parsing and responses (service/responder/http.py)",
     profiling.leaf_in_files("responder/http.py")),
    ("the connection protocol (service/responder/protocol.py)",
     profiling.leaf_in_files("responder/protocol.py")),
    ("routing (service/responder/routing.py)",
     profiling.leaf_in_files("responder/routing.py")),
    ("logging", profiling.leaf_in_files("logging/")),
    ("regular expressions", profiling.leaf_in_files("re/", "sre_")),
]


@dataclasses.dataclass(frozen=True)
class Sizes:
    tokens: int
    seconds: int
    connections: int
    many_connections: int
    sample: int


FULL = Sizes(tokens=10_000, seconds=10, connections=64, many_connections=1_000, sample=500)
SMOKE = Sizes(tokens=200, seconds=1, connections=8, many_connections=50, sample=50)


@dataclasses.dataclass(frozen=True)
class Token:
    token: str
    hostname: str
    key_authorization: str | None
    """None for a token no worker wrote: the response must be 404."""


def make_tokens(count: int) -> list[Token]:
    tokens = []
    for index in range(count):
        token = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        thumbprint = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
        known = index >= count * UNKNOWN_SHARE
        tokens.append(Token(token, f"t{index}.bench.example.com",
                            f"{token}.{thumbprint}" if known else None))
    random.Random(2).shuffle(tokens)
    return tokens


def publish_tokens(scratch: ScratchStack, tokens: list[Token]) -> None:
    keys = RedisKeys(scratch.redis_prefix)
    client = redis.Redis.from_url(scratch.redis_url)
    with client.pipeline(transaction=False) as pipeline:
        for token in tokens:
            if token.key_authorization is not None:
                pipeline.set(keys.http01(token.token),
                             http01_value(token.hostname, token.key_authorization), ex=3600)
        pipeline.execute()
    client.close()


def write_static_tree(root: Path, tokens: list[Token]) -> None:
    directory = root / ".well-known" / "acme-challenge"
    directory.mkdir(parents=True)
    for token in tokens:
        if token.key_authorization is not None:
            (directory / token.token).write_text(token.key_authorization)


def write_request_list(path: Path, tokens: list[Token]) -> None:
    path.write_text("".join(f"{t.hostname} {CHALLENGE_PATH}{t.token}\n" for t in tokens))


class Nginx:
    """An nginx with two worker processes serving root on 127.0.0.1:port."""

    def __init__(self, workdir: Path, root: Path, port: int) -> None:
        self.workdir = workdir
        self.port = port
        (workdir / "temp").mkdir(parents=True, exist_ok=True)
        self.config = workdir / "nginx.conf"
        temp = workdir / "temp"
        self.config.write_text(f"""
worker_processes {PROCESSES};
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 100000;
    open_file_cache max=20000 inactive=60s;
    open_file_cache_errors on;
    default_type text/plain;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location {CHALLENGE_PATH} {{ try_files $uri =404; }}
    }}
}}
""")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        log = (self.workdir / "nginx.out").open("ab")
        self.process = subprocess.Popen(
            ["nginx", "-p", str(self.workdir), "-c", str(self.config), "-e",
             str(self.workdir / "error.log")], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        stack.wait_for_port("127.0.0.1", self.port, process=self.process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # nginx's fast shutdown
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def check_sample(port: int, tokens: list[Token], count: int) -> list[str]:
    """Fetch count tokens one by one; return a description of every wrong response."""
    wrong = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    for token in random.Random(3).sample(tokens, min(count, len(tokens))):
        connection.request("GET", CHALLENGE_PATH + token.token,
                           headers={"Host": token.hostname})
        response = connection.getresponse()
        body = response.read().decode(errors="replace")
        if token.key_authorization is None:
            if response.status != 404:
                wrong.append(f"{token.token}: {response.status} for an unknown token")
        elif response.status != 200 or body != token.key_authorization:
            wrong.append(f"{token.token}: {response.status} {body[:20]!r}")
    connection.close()
    return wrong


def run_wrk(port: int, request_list: Path, connections: int, seconds: int,
            count_statuses: bool = False) -> dict:
    arguments = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "2s",
                 "-s", str(LUA_SCRIPT), f"http://127.0.0.1:{port}/", "--", str(request_list)]
    if count_statuses:
        arguments.append("count")
    completed = subprocess.run(arguments, capture_output=True, text=True, check=True,
                               timeout=seconds + 60)
    line = next(line for line in completed.stdout.splitlines() if line.startswith("{"))
    result = json.loads(line)
    seconds_measured = result["duration_us"] / 1e6
    statuses: dict[int, int] = {}
    for status, count in result.pop("statuses"):
        statuses[status] = statuses.get(status, 0) + count
    result.update({
        "per_second": result["requests"] / seconds_measured,
        "p50_ms": result["p50_us"] / 1000,
        "p99_ms": result["p99_us"] / 1000,
        "socket_errors": (result["connect_errors"] + result["read_errors"]
                          + result["write_errors"] + result["timeouts"]),
        "not_found_share": result["status_errors"] / max(result["requests"], 1),
        "statuses": statuses,
    })
    return result


def profile_responder(parent_pid: int, port: int, request_list: Path, sizes: Sizes,
                      py_spy: Path) -> str | None:
    """Record one responder process (of PROCESSES) while wrk runs: CPU, not wall clock."""
    children = child_pids(parent_pid)
    output = SCRATCH_ROOT / "profiles" / "responder.raw"
    recording = profiling.Recording(py_spy, children[0] if children else parent_pid, output,
                                    idle=False, max_seconds=sizes.seconds + 5)
    try:
        run_wrk(port, request_list, sizes.connections, sizes.seconds)
    finally:
        raw = recording.stop()
    if raw is None:
        return None
    summary = profiling.summarize(raw, RESPONDER_PROFILE_CATEGORIES, root_function="<module>",
                                  focus_files=["service/"])
    return summary.to_markdown(f"One of {PROCESSES} responder processes under wrk, "
                               f"{sizes.connections} connections, CPU samples (py-spy)")


def main() -> None:
    parser = argument_parser(__doc__.splitlines()[0])
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    arguments = parser.parse_args()
    configure_logging()
    sizes = SMOKE if arguments.smoke else FULL
    if not arguments.smoke:
        tools.ensure_debian_commands(["wrk", "nginx"])
    py_spy = None
    if not arguments.smoke and not arguments.no_profile:
        py_spy = tools.ensure_py_spy()
    if shutil.which("wrk") is None or shutil.which("nginx") is None:
        raise SystemExit("wrk and nginx are needed: apt-get install -y wrk nginx")

    tokens = make_tokens(sizes.tokens)
    with scratch_stack("responder") as scratch:
        # nginx's workers run as an unprivileged user and must read the tree.
        os.chmod(scratch.workdir, 0o755)
        static_root = scratch.workdir / "www"
        write_static_tree(static_root, tokens)
        request_list = scratch.workdir / "requests.txt"
        write_request_list(request_list, tokens)
        publish_tokens(scratch, tokens)

        responder_port = free_port()
        responder = scratch.processes.start(
            "responder", "responder", "--processes", str(PROCESSES),
            extra_env={"CERTSVC_RESPONDER_ADDRESS": f"127.0.0.1:{responder_port}",
                       # wrk connects from one address; the default limit per address
                       # (an abuse guard) would refuse most of the 1,000 connections.
                       "CERTSVC_RESPONDER_MAX_CONNECTIONS_PER_ADDRESS":
                           str(sizes.many_connections + 24)})
        stack.wait_for_port("127.0.0.1", responder_port, process=responder)
        nginx = Nginx(scratch.workdir / "nginx", static_root, free_port())
        nginx.start()
        try:
            wrong = {"certsvc": check_sample(responder_port, tokens, sizes.sample),
                     "nginx": check_sample(nginx.port, tokens, sizes.sample)}
            results = {
                "certsvc responder": run_wrk(responder_port, request_list, sizes.connections,
                                             sizes.seconds),
                "nginx, static files": run_wrk(nginx.port, request_list, sizes.connections,
                                               sizes.seconds),
            }
            many = run_wrk(responder_port, request_list, sizes.many_connections, sizes.seconds,
                           count_statuses=True)
            profile = (profile_responder(responder.pid, responder_port, request_list, sizes,
                                         py_spy) if py_spy else None)
        finally:
            nginx.stop()

    emit([build_figure(results, many, wrong, sizes, profile, arguments.smoke)],
         arguments.output)


def build_figure(results: dict[str, dict], many: dict, wrong: dict[str, list[str]],
                 sizes: Sizes, profile: str | None, smoke: bool) -> Figure:
    certsvc, nginx = results["certsvc responder"], results["nginx, static files"]
    throughput_ratio = ratio(certsvc["per_second"], nginx["per_second"])
    correct = not wrong["certsvc"]
    clean_at_many = (many["socket_errors"] == 0
                     and set(many["statuses"]) <= {200, 404}
                     and abs(many["not_found_share"] - UNKNOWN_SHARE) < 0.02)
    figure = Figure(
        key="responder", title="HTTP-01 responder",
        goal=f"requests/s >= 0.5x nginx with correct answers; no error or timeout at "
             f"{sizes.many_connections} connections",
        ratio=throughput_ratio, target=0.5, command=command_line("bench.responder", smoke))
    figure.add_goal("certsvc responder / nginx requests per second", throughput_ratio, 0.5)
    figure.add_goal(f"sample of {sizes.sample} answers correct (1 = yes)",
                    1.0 if correct else 0.0, 1.0)
    figure.add_goal(f"{sizes.many_connections} connections: no socket error, timeout or "
                    "unexpected status (1 = yes)", 1.0 if clean_at_many else 0.0, 1.0)
    rows = []
    for name, result in [*results.items(),
                         (f"certsvc responder, {sizes.many_connections} connections, "
                          "statuses counted", many)]:
        rows.append({"server": name, "per_second": result["per_second"],
                     "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
                     "x_nginx": ratio(result["per_second"], nginx["per_second"]),
                     "socket_errors": result["socket_errors"],
                     "share_404": result["not_found_share"]})
    figure.rows = rows
    figure.notes = [
        f"{sizes.tokens} tokens, {UNKNOWN_SHARE:.0%} unknown; both servers run "
        f"{PROCESSES} processes; wrk -t2 -c{sizes.connections} -d{sizes.seconds}s with "
        "bench/wrk/walk_tokens.lua. The responder runs with "
        f"CERTSVC_RESPONDER_MAX_CONNECTIONS_PER_ADDRESS={sizes.many_connections + 24}, "
        "because all of wrk's connections come from 127.0.0.1.",
        f"Statuses at {sizes.many_connections} connections: "
        + ", ".join(f"{status}: {count}" for status, count in sorted(many["statuses"].items())),
        "Wrong answers in the checked sample: "
        + "; ".join(f"{server}: {len(found)}" for server, found in wrong.items()),
    ]
    if profile:
        figure.extra["responder profile"] = profile
    return figure


if __name__ == "__main__":
    main()
