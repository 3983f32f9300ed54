"""The load process of the GetCertificate figure: asyncio callers in a process of their
own, against certsvc's api (Ping or GetCertificate) or Postgres directly.

Every caller sends one request at a time, back to back, for a warm-up and then a
measured window; only requests that start and finish inside the window count. The
hostnames follow a fixed, seeded sequence, so that every target sees the same one.
Prints one JSON object. Run by bench/get_certificate.py; by hand:

    .venv/bin/python -m bench.grpc_load --target ping --address 127.0.0.1:PORT
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable

import grpc
from psycopg_pool import AsyncConnectionPool

from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc
from service.store.certificates import SERVING_CANDIDATES_QUERY

# Hostnames drawn ahead of the run; callers walk this sequence round robin.
SEQUENCE_LENGTH = 200_000
CALL_TIMEOUT_SECONDS = 5.0
# The api's own pool has 10 connections; the direct limit gets the same.
DIRECT_POOL_SIZE = 10


def hostname_sequence(template: str, domains: int, distribution: str, seed: int) -> list[str]:
    """Draw SEQUENCE_LENGTH hostnames: Zipf with exponent 1 over a shuffled ranking, or uniform."""
    generator = random.Random(seed)
    ranking = list(range(domains))
    generator.shuffle(ranking)
    if distribution == "uniform":
        indexes = [generator.randrange(domains) for _ in range(SEQUENCE_LENGTH)]
    else:
        weights = itertools.accumulate(1.0 / rank for rank in range(1, domains + 1))
        indexes = [ranking[rank] for rank in generator.choices(
            range(domains), cum_weights=list(weights), k=SEQUENCE_LENGTH)]
    return [template.format(index=index) for index in indexes]


class Load:
    """Callers that share a window, a request budget and the tallies."""

    def __init__(self, hostnames: list[str], concurrency: int, warmup_seconds: float,
                 seconds: float, max_requests: int) -> None:
        self.hostnames = hostnames
        self.concurrency = concurrency
        self.max_requests = max_requests
        self.started = time.perf_counter()
        self.window_start = self.started + warmup_seconds
        self.window_end = self.window_start + seconds
        self.sent = 0
        self.errors = 0
        self.wrong_answers = 0
        self.latencies: list[float] = []

    async def run(self, call: Callable[[str], Awaitable[bool]]) -> None:
        await asyncio.gather(*(self._caller(index, call) for index in range(self.concurrency)))

    async def _caller(self, index: int, call: Callable[[str], Awaitable[bool]]) -> None:
        position = index
        while self.sent < self.max_requests:
            begun = time.perf_counter()
            if begun >= self.window_end:
                return
            hostname = self.hostnames[position % len(self.hostnames)]
            position += self.concurrency
            self.sent += 1
            try:
                correct = await call(hostname)
            except (grpc.aio.AioRpcError, OSError, asyncio.TimeoutError):
                self.errors += 1
                continue
            ended = time.perf_counter()
            if not correct:
                self.wrong_answers += 1
            if begun >= self.window_start and ended <= self.window_end:
                self.latencies.append(ended - begun)

    def result(self) -> dict:
        ordered = sorted(self.latencies)
        seconds = self.window_end - self.window_start

        def at(fraction: float) -> float | None:
            return ordered[int((len(ordered) - 1) * fraction)] * 1000 if ordered else None

        return {"requests": len(ordered), "per_second": len(ordered) / seconds,
                "p50_ms": at(0.5), "p99_ms": at(0.99), "errors": self.errors,
                "wrong_answers": self.wrong_answers, "window_seconds": seconds}


async def run_grpc(arguments: argparse.Namespace, load: Load) -> None:
    async with grpc.aio.insecure_channel(arguments.address) as channel:
        stub = certsvc_pb2_grpc.CertificateServiceStub(channel)
        await asyncio.wait_for(channel.channel_ready(), 10)

        async def ping(_hostname: str) -> bool:
            await stub.Ping(pb.PingRequest(), timeout=CALL_TIMEOUT_SECONDS)
            return True

        async def get_certificate(hostname: str) -> bool:
            certificate = await stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname),
                                                    timeout=CALL_TIMEOUT_SECONDS)
            return certificate.hostnames[:1] == [hostname]

        await load.run(ping if arguments.target == "ping" else get_certificate)


async def run_direct(arguments: argparse.Namespace, load: Load) -> None:
    async with AsyncConnectionPool(arguments.database_url, min_size=DIRECT_POOL_SIZE,
                                   max_size=DIRECT_POOL_SIZE, open=False,
                                   kwargs={"autocommit": True}) as pool:
        await pool.wait(10)

        async def query(hostname: str) -> bool:
            # The same candidates GetCertificate looks up: the hostname and the wildcard
            # one label up.
            wildcard = "*." + hostname.partition(".")[2]
            async with pool.connection() as connection:
                cursor = await connection.execute(SERVING_CANDIDATES_QUERY, ([hostname, wildcard],))
                rows = await cursor.fetchall()
            # Columns 1 and 5: the domain's hostname and its certificate's id.
            return any(row[1] == hostname and row[5] is not None for row in rows)

        await load.run(query)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=["ping", "get-certificate", "postgres"],
                        required=True)
    parser.add_argument("--address", help="host:port of the api (ping, get-certificate)")
    parser.add_argument("--database-url", help="Postgres URL (postgres)")
    parser.add_argument("--domains", type=int, default=1, help="number of hostnames")
    parser.add_argument("--template", default="gc{index}.bench.example.com",
                        help="hostname of domain number {index}")
    parser.add_argument("--distribution", choices=["zipf", "uniform"], default="zipf")
    parser.add_argument("--concurrency", type=int, default=64, help="callers at once")
    parser.add_argument("--warmup-seconds", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the window")
    parser.add_argument("--max-requests", type=int, default=2_000_000,
                        help="stop after this many requests even inside the window")
    parser.add_argument("--seed", type=int, default=1)
    arguments = parser.parse_args()

    hostnames = hostname_sequence(arguments.template, arguments.domains,
                                  arguments.distribution, arguments.seed)
    load = Load(hostnames, arguments.concurrency, arguments.warmup_seconds, arguments.seconds,
                arguments.max_requests)
    runner = run_direct if arguments.target == "postgres" else run_grpc
    asyncio.run(runner(arguments, load))
    print(json.dumps(load.result()))


if __name__ == "__main__":
    main()
