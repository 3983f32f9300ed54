"""Lost-job recovery and periodic-task claims, run in this process against real Postgres and
Redis, with issuance rows and RQ jobs set up in each state."""

from __future__ import annotations

import datetime
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from rq.registry import ScheduledJobRegistry

from devtools import stack
from service.backends import Backends
from service.config import Settings
from service.queueing import enqueue_issuance
from service.store import domains as domain_rows
from service.store import issuances as issuance_rows
from service.store import locks
from service.store.migrate import migrate
from worker.recovery import recover_lost_issuances
from worker.scheduler import PeriodicTask, Scheduler, SchedulerContext


@pytest.fixture(scope="module")
def context() -> Iterator[SchedulerContext]:
    """A database and Redis prefix of this module's own; no certsvc process uses them."""
    name = stack.unique_name("recovery")
    url = stack.create_database(name)
    migrate(url)
    prefix = f"certsvc-recovery-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env({"CERTSVC_DATABASE_URL": url, "CERTSVC_REDIS_URL": stack.REDIS_URL,
                                  "CERTSVC_REDIS_PREFIX": prefix, "CERTSVC_DEV_INSECURE": "1"})
    backends = Backends.connect(settings)
    yield SchedulerContext(settings, backends, "test-scheduler")
    backends.close()
    stack.delete_redis_namespace(stack.REDIS_URL, prefix)
    stack.drop_database(name)


def _issuance(context: SchedulerContext, *, state: str = "QUEUED", job: str = "missing",
              age_seconds: int = 120, next_attempt_in: int | None = None) -> uuid.UUID:
    """Insert a domain and an issuance whose job is "missing", "queued" or "scheduled"."""
    hostname = f"lost-{uuid.uuid4().hex[:10]}.example.com"
    queue = context.backends.issuance_queue()
    with context.backends.database.transaction() as connection:
        domain, _ = domain_rows.insert_domain(connection, hostname=hostname,
                                              unicode_hostname=hostname, app_id="app-1",
                                              wildcard=False)
        issuance, _ = issuance_rows.create_or_get_in_flight(connection, domain.id, hostname)
    job_id = f"{queue.name}-{issuance.id}-original"
    if job == "queued":
        enqueue_issuance(queue, issuance.id, job_id=job_id)
    elif job == "scheduled":
        enqueue_issuance(queue, issuance.id, job_id=job_id,
                         at=datetime.datetime.now(datetime.timezone.utc)
                         + datetime.timedelta(hours=1))
    next_attempt_at = None if next_attempt_in is None else (
        datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=next_attempt_in))
    with context.backends.database.transaction() as connection:
        connection.execute(
            "UPDATE issuances SET state = %s, job_id = %s, attempt = 1, next_attempt_at = %s, "
            "updated_at = now() - make_interval(secs => %s) WHERE id = %s",
            (state, job_id, next_attempt_at, age_seconds, issuance.id))
    return issuance.id


def _row(context: SchedulerContext, issuance_id: uuid.UUID) -> tuple:
    with context.backends.database.transaction() as connection:
        return connection.execute(
            "SELECT state, job_id, error, next_attempt_at, "
            "(SELECT count(*) FROM events WHERE issuance_id = i.id AND type = 'ISSUANCE_RECOVERED') "
            "FROM issuances i WHERE id = %s", (issuance_id,)).fetchone()


def test_missing_job_queued_again(context) -> None:
    issuance_id = _issuance(context, job="missing")

    recover_lost_issuances(context)

    state, job_id, _, _, recovered = _row(context, issuance_id)
    queue = context.backends.issuance_queue()
    assert state == "QUEUED"
    assert not job_id.endswith("-original")
    assert job_id in queue.get_job_ids()
    assert recovered == 1


def test_queued_and_scheduled_jobs_left_alone(context) -> None:
    queued = _issuance(context, job="queued")
    scheduled = _issuance(context, job="scheduled", next_attempt_in=3600)

    recover_lost_issuances(context)

    assert _row(context, queued)[1].endswith("-original")
    assert _row(context, scheduled)[1].endswith("-original")
    assert _row(context, queued)[4] == 0
    assert _row(context, scheduled)[4] == 0


def test_interrupted_attempt_queued_now(context) -> None:
    issuance_id = _issuance(context, state="VALIDATING", job="missing")

    recover_lost_issuances(context)

    state, job_id, error, next_attempt_at, recovered = _row(context, issuance_id)
    assert state == "QUEUED"
    assert "attempt 1 was interrupted in state VALIDATING" in error
    assert next_attempt_at is None
    assert job_id in context.backends.issuance_queue().get_job_ids()
    assert recovered == 1


def test_lost_retry_keeps_its_time(context) -> None:
    issuance_id = _issuance(context, job="missing", next_attempt_in=600)

    recover_lost_issuances(context)

    _, job_id, _, _, recovered = _row(context, issuance_id)
    scheduled = ScheduledJobRegistry(queue=context.backends.issuance_queue())
    assert recovered == 1
    assert job_id in scheduled.get_job_ids(cleanup=False)
    assert job_id not in context.backends.issuance_queue().get_job_ids()


def test_locked_domain_left_alone(context) -> None:
    issuance_id = _issuance(context, state="FINALIZING", job="missing")
    with context.backends.database.transaction() as connection:
        domain_id = issuance_rows.get_issuance(connection, issuance_id).domain_id
    with psycopg.connect(context.settings.database_url, autocommit=True) as worker_session:
        assert locks.try_lock_domain(worker_session, domain_id)

        recover_lost_issuances(context)

        state, job_id, _, _, recovered = _row(context, issuance_id)
    assert state == "FINALIZING"
    assert job_id.endswith("-original")
    assert recovered == 0


def test_recent_change_left_alone(context) -> None:
    issuance_id = _issuance(context, job="missing", age_seconds=0)

    recover_lost_issuances(context)

    assert _row(context, issuance_id)[4] == 0


def test_task_runs_once_per_interval(context) -> None:
    runs: list[str] = []
    task = PeriodicTask(f"count-{uuid.uuid4().hex[:8]}", 3600, lambda ctx: runs.append(ctx.scheduler_name))
    first = Scheduler(SchedulerContext(context.settings, context.backends, "first"), [task])
    second = Scheduler(SchedulerContext(context.settings, context.backends, "second"), [task])
    url = context.settings.database_url

    with psycopg.connect(url, autocommit=True) as one, psycopg.connect(url, autocommit=True) as two:
        results = [first.run_once(task, one), second.run_once(task, two), first.run_once(task, one)]
        one.execute("UPDATE scheduler_tasks SET next_run_at = now() - interval '1 second' "
                    "WHERE name = %s", (task.name,))
        results.append(second.run_once(task, two))

    assert results == [True, False, False, True]
    assert runs == ["first", "second"]


def test_task_skipped_while_another_runs_it(context) -> None:
    runs: list[str] = []
    task = PeriodicTask(f"busy-{uuid.uuid4().hex[:8]}", 1, lambda ctx: runs.append("ran"))
    scheduler = Scheduler(context, [task])
    url = context.settings.database_url

    with psycopg.connect(url, autocommit=True) as running, \
            psycopg.connect(url, autocommit=True) as waiting:
        assert locks.try_lock_task(running, task.name)
        skipped = scheduler.run_once(task, waiting)
        locks.unlock_task(running, task.name)
        ran = scheduler.run_once(task, waiting)

    assert skipped is False
    assert ran is True
    assert runs == ["ran"]


def test_failing_task_recorded(context) -> None:
    def broken(_context: SchedulerContext) -> None:
        raise RuntimeError("mirror source unreachable")

    task = PeriodicTask(f"broken-{uuid.uuid4().hex[:8]}", 60, broken)
    scheduler = Scheduler(context, [task])

    with psycopg.connect(context.settings.database_url, autocommit=True) as connection:
        ran = scheduler.run_once(task, connection)
        last_error = connection.execute("SELECT last_error FROM scheduler_tasks WHERE name = %s",
                                        (task.name,)).fetchone()[0]

    assert ran is True
    assert last_error == "RuntimeError: mirror source unreachable"
