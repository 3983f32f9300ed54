"""The `certsvc worker` and `certsvc scheduler` commands."""

from __future__ import annotations

import argparse
import logging
import os
import socket

import rq
from rq.scheduler import RQScheduler

from service.backends import connect_redis
from service.config import DEV_INSECURE_WARNING, Settings
from service.redis_keys import RedisKeys
from worker.context import WorkerContext, set_context
from worker.mirror_rebuild import start_mirror_rebuilds

logger = logging.getLogger(__name__)


class IssuanceWorker(rq.SimpleWorker):
    """An RQ worker that runs each job in its own process instead of a forked child.

    Jobs then share one Postgres pool, one Redis client and one ACME session (with its
    account and nonces) across the life of the worker. A job's time limit still holds:
    SimpleWorker enforces it with SIGALRM in this process.
    """


def run_worker(settings: Settings, argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="certsvc worker",
                                     description="Run issuance jobs from the RQ queue.")
    parser.add_argument("--burst", action="store_true",
                        help="exit when the queue is empty instead of waiting for jobs")
    parser.add_argument("--name", default=None,
                        help="worker name shown by RQ (default: host name and process id)")
    arguments = parser.parse_args(argv)
    if settings.dev_insecure:
        logger.warning(DEV_INSECURE_WARNING)

    context = WorkerContext(settings)
    set_context(context)
    queue = context.backends.issuance_queue()
    name = arguments.name or f"certsvc-{socket.gethostname()}-{os.getpid()}"
    worker = IssuanceWorker([queue], connection=context.backends.redis, name=name)
    logger.info("worker starting name=%s queue=%s burst=%s", name, queue.name, arguments.burst)
    worker.work(burst=arguments.burst, logging_level=settings.log_level)
    context.backends.close()


def run_scheduler(settings: Settings, argv: list[str]) -> None:
    argparse.ArgumentParser(
        prog="certsvc scheduler",
        description="Move issuance retries to the queue when they are due.",
    ).parse_args(argv)
    connection = connect_redis(settings.redis_url)
    queue = rq.Queue(RedisKeys(settings.redis_prefix).issuance_queue, connection=connection)
    # RQ's scheduler takes a lock per queue in Redis, so several scheduler processes
    # move each scheduled job once.
    scheduler = RQScheduler([queue], connection=connection, interval=1)
    scheduler.acquire_locks()
    logger.info("scheduler starting queue=%s active=%s", queue.name,
                bool(scheduler.acquired_locks))
    start_mirror_rebuilds(settings)
    scheduler.work()
