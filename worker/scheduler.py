"""The periodic-job runner of `certsvc scheduler`.

Each PeriodicTask runs in a thread of its own. Before a run, the scheduler takes the
task's Postgres advisory lock on its own connection and moves the task's next_run_at
forward in one statement (service/store/scheduler_tasks.py). So with several scheduler
processes each run happens once, a slow run is never overlapped by the next one, and
when a scheduler dies its session ends and another one carries on.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
import time
from collections.abc import Callable

import psycopg
import redis

from service.backends import Backends
from service.config import Settings
from service.errors import Unavailable
from service.store import locks
from service.store import scheduler_tasks as task_rows

logger = logging.getLogger(__name__)

# How often a task thread checks whether its next run is due.
POLL_SECONDS = 0.5
# How long a task thread waits after it lost its database connection.
RECONNECT_DELAY_SECONDS = 2.0
# A task that keeps failing because Redis or Postgres is down logs this seldom.
OUTAGE_LOG_INTERVAL_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class SchedulerContext:
    """The argument of every periodic task: settings and the process's backends."""

    settings: Settings
    backends: Backends
    scheduler_name: str


@dataclasses.dataclass(frozen=True)
class PeriodicTask:
    """A job that one scheduler process runs every interval_seconds."""

    name: str
    interval_seconds: float
    run: Callable[[SchedulerContext], None]


class Scheduler:
    """Runs periodic tasks until stop() is called."""

    def __init__(self, context: SchedulerContext, tasks: list[PeriodicTask]) -> None:
        names = [task.name for task in tasks]
        if len(names) != len(set(names)):
            raise ValueError(f"periodic task names must be unique: {names}")
        self.context = context
        self.tasks = tasks
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._outage_logged_at: dict[str, float] = {}

    def start(self) -> None:
        for task in self.tasks:
            thread = threading.Thread(target=self._loop, args=(task,),
                                      name=f"task-{task.name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        logger.info("scheduler started name=%s tasks=%s", self.context.scheduler_name,
                    ",".join(f"{task.name}/{task.interval_seconds:g}s" for task in self.tasks))

    def stop(self, timeout_seconds: float = 30.0) -> None:
        """Ask every task thread to stop after its current run and wait for them."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_seconds
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))

    def run_once(self, task: PeriodicTask, connection: psycopg.Connection) -> bool:
        """Run a task now if no other scheduler runs it and its next run is due.

        Returns whether it ran. Failures are logged and recorded on the task's row.
        """
        if not locks.try_lock_task(connection, task.name):
            return False
        try:
            interval = datetime.timedelta(seconds=task.interval_seconds)
            if not task_rows.claim_run(connection, task.name, interval,
                                       self.context.scheduler_name):
                return False
            started = time.monotonic()
            error_text = ""
            try:
                task.run(self.context)
            except (redis.RedisError, Unavailable) as error:
                # An outage fails every run of a frequent task the same way: one line,
                # repeated at most once per OUTAGE_LOG_INTERVAL_SECONDS.
                error_text = f"{type(error).__name__}: {error}"
                if self._outage_log_due(task.name):
                    logger.warning("periodic task failed, will run again in %gs task=%s: %s",
                                   task.interval_seconds, task.name, error_text)
            except Exception as error:  # a task's bug must not stop the others
                error_text = f"{type(error).__name__}: {error}"
                logger.exception("periodic task failed, will run again in %gs task=%s",
                                 task.interval_seconds, task.name)
            task_rows.record_finish(connection, task.name, error_text)
            logger.debug("periodic task ran task=%s seconds=%.3f", task.name,
                         time.monotonic() - started)
            return True
        finally:
            locks.unlock_task(connection, task.name)

    def _outage_log_due(self, task_name: str) -> bool:
        now = time.monotonic()
        last = self._outage_logged_at.get(task_name)
        if last is not None and now - last < OUTAGE_LOG_INTERVAL_SECONDS:
            return False
        self._outage_logged_at[task_name] = now
        return True

    def _loop(self, task: PeriodicTask) -> None:
        connection: psycopg.Connection | None = None
        while not self._stopping.is_set():
            try:
                if connection is None or connection.closed or connection.broken:
                    connection = psycopg.connect(
                        self.context.settings.database_url, autocommit=True, connect_timeout=5,
                        application_name=f"certsvc-scheduler-{task.name}")
                self.run_once(task, connection)
            except (psycopg.Error, Unavailable) as error:
                logger.warning("database unavailable, periodic task waits task=%s: %s",
                               task.name, error)
                if connection is not None:
                    connection.close()
                connection = None
                self._stopping.wait(RECONNECT_DELAY_SECONDS)
                continue
            self._stopping.wait(min(POLL_SECONDS, task.interval_seconds))
        if connection is not None:
            connection.close()
