"""The `certsvc worker` and `certsvc scheduler` commands."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading

import redis
import rq

from service.backends import Backends
from service.config import DEV_INSECURE_WARNING, Settings
from service.metrics import start_metrics_server
from worker.context import WorkerContext, set_context
from worker.periodic_tasks import periodic_tasks
from worker.scheduler import Scheduler, SchedulerContext

logger = logging.getLogger(__name__)

# After RQ's work loop ended on a Redis failure, the worker starts it again this much later.
WORK_LOOP_RESTART_SECONDS = 2.0
# How long the thread that listens for RQ commands (shutdown, kill-horse) blocks per
# read. RQ uses 60 s, and redis-py 8 waits for that read to end when the worker stops.
# A shorter read keeps a worker that got SIGTERM from lingering for up to a minute.
COMMAND_LISTENER_POLL_SECONDS = 1


class IssuanceWorker(rq.SimpleWorker):
    """An RQ worker that runs each job in its own process instead of a forked child.

    Jobs then share one Postgres pool, one Redis client and one ACME session (with its
    account and nonces) across the life of the worker, and no gRPC channel or Postgres
    connection is ever forked. A job's time limit still holds: SimpleWorker enforces it
    with SIGALRM in this process.
    """

    stop_signalled = False

    def subscribe(self) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=COMMAND_LISTENER_POLL_SECONDS, daemon=True,
            exception_handler=self._pubsub_exception_handler)

    def request_stop(self, signum, frame):  # noqa: ANN001 (RQ's signal handler signature)
        # SIGTERM or SIGINT: RQ finishes the current job, then leaves its work loop.
        self.stop_signalled = True
        super().request_stop(signum, frame)


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
    start_metrics_server(settings, "worker")
    queue = context.backends.issuance_queue()
    # The prefix keeps the names of deployments that share one Redis apart.
    base_name = arguments.name or (
        f"{settings.redis_prefix}-{socket.gethostname()}-{os.getpid()}")
    stopping = threading.Event()
    loop = 0
    while not stopping.is_set():
        # A fresh name per work loop: after a Redis failure the old registration may
        # still be there, and RQ refuses two live workers of one name.
        name = base_name if loop == 0 else f"{base_name}-{loop}"
        worker = None
        try:
            _forget_dead_worker(context.backends.redis, name)
            worker = IssuanceWorker([queue], connection=context.backends.redis, name=name)
            logger.info("worker starting name=%s queue=%s burst=%s", name, queue.name,
                        arguments.burst)
            worker.work(burst=arguments.burst, logging_level=settings.log_level)
        except redis.RedisError as error:
            logger.warning("worker lost Redis name=%s: %s", name, error)
        if worker is not None and (worker.stop_signalled or arguments.burst):
            break
        logger.warning("work loop ended unexpectedly, restarting in %gs name=%s",
                       WORK_LOOP_RESTART_SECONDS, name)
        _stop_on_signal(stopping)
        stopping.wait(WORK_LOOP_RESTART_SECONDS)
        loop += 1
    context.close()
    context.backends.close()
    logger.info("worker stopped name=%s", base_name)


def _forget_dead_worker(connection: redis.Redis, name: str) -> None:
    """Clear the RQ registration of a worker of this name that died on this host.

    A worker killed with SIGKILL leaves its registration for minutes, and RQ refuses to
    start another worker of the same name, so a supervisor restarting a worker with a
    fixed --name would loop. A registration from another host, or of a live process,
    is left alone, and RQ then reports the name as taken.
    """
    previous = IssuanceWorker.find_by_key(IssuanceWorker.redis_worker_namespace_prefix + name,
                                          connection=connection)
    if previous is None or previous.hostname != socket.gethostname() or not previous.pid:
        return
    try:
        os.kill(previous.pid, 0)
    except ProcessLookupError:
        logger.warning("clearing the registration of dead worker name=%s pid=%d", name,
                       previous.pid)
        previous.register_death()
    except PermissionError:
        pass  # the process exists, under another user


def run_scheduler(settings: Settings, argv: list[str]) -> None:
    argparse.ArgumentParser(
        prog="certsvc scheduler",
        description="Run the periodic jobs: due retries, lost-job recovery, renewals, "
                    "expiry warnings.",
    ).parse_args(argv)
    if settings.dev_insecure:
        logger.warning(DEV_INSECURE_WARNING)
    backends = Backends.connect(settings)
    start_metrics_server(settings, "scheduler", backends)
    name = f"certsvc-scheduler-{socket.gethostname()}-{os.getpid()}"
    scheduler = Scheduler(SchedulerContext(settings, backends, name), periodic_tasks(settings))
    stopping = threading.Event()
    _stop_on_signal(stopping)
    scheduler.start()
    stopping.wait()
    logger.info("scheduler stopping name=%s", name)
    scheduler.stop()
    backends.close()
    logger.info("scheduler stopped name=%s", name)


def _stop_on_signal(stopping: threading.Event) -> None:
    def request_stop(signum: int, _frame: object) -> None:
        logger.info("received %s; stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
