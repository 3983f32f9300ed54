"""Faults with real processes and a real Pebble: killed workers, a Redis that loses its
data, a Postgres that restarts, a CA that loses its accounts, a CA that rejects nonces."""

from __future__ import annotations

import signal
import time
import uuid

import grpc
import pytest

from devtools.private_servers import PrivatePostgres, PrivateRedis
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.store.migrate import migrate
from stacks import IsolatedStack, isolated_stack

pytestmark = pytest.mark.pebble


def _hostnames(label: str, count: int) -> list[str]:
    return [f"{label}-{number}-{uuid.uuid4().hex[:8]}.example.com" for number in range(count)]


def _wait_for_state(deployment: IsolatedStack, issuance_id: str, states: tuple[str, ...],
                    timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = deployment.issuance_states([issuance_id])[issuance_id]
        if state in states:
            return state
        if time.monotonic() > deadline:
            pytest.fail(f"issuance {issuance_id} never reached {states}; it is {state}")
        time.sleep(0.02)


def _wait_for_any_validating(deployment: IsolatedStack, issuance_ids: list[str],
                             timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        states = deployment.issuance_states(issuance_ids)
        if "VALIDATING" in states.values():
            return
        if time.monotonic() > deadline:
            pytest.fail(f"no issuance reached VALIDATING; states: {states}")
        time.sleep(0.02)


def _event_types(deployment: IsolatedStack, issuance_id: str) -> list[str]:
    rows = deployment.query("SELECT type FROM events WHERE issuance_id = %s ORDER BY id",
                            uuid.UUID(issuance_id))
    return [row[0] for row in rows]


def test_sigkill_mid_order_resumes(tmp_path) -> None:
    # Pebble waits up to 7 s before each validation request, so the worker is still
    # polling the order when it is killed.
    with isolated_stack(tmp_path, workers=1, pebble_options={"va_sleep_seconds": 8}) as deployment:
        [issuance_id] = deployment.add_and_request(_hostnames("killed", 1))
        _wait_for_state(deployment, issuance_id, ("VALIDATING",))
        order_url_before = deployment.query("SELECT order_url FROM issuances WHERE id = %s",
                                            uuid.UUID(issuance_id))[0][0]

        deployment.processes.stop("worker-1", sig=signal.SIGKILL)
        deployment.start_workers(1, first=2)
        states = deployment.wait_until_final([issuance_id], timeout=240)

        attempt, order_url_after, key_left = deployment.query(
            "SELECT attempt, order_url, order_key_sealed IS NOT NULL FROM issuances "
            "WHERE id = %s", uuid.UUID(issuance_id))[0]
        types = _event_types(deployment, issuance_id)
        orders = deployment.query("SELECT count(*) FROM acme_ledger WHERE issuance_id = %s",
                                  uuid.UUID(issuance_id))[0][0]

    assert states[issuance_id] == "SUCCEEDED"
    assert attempt == 2
    assert order_url_after == order_url_before
    assert key_left is False
    assert types.count("ISSUANCE_RECOVERED") == 1
    assert types.count("ORDER_RESUMED") == 1
    assert types.count("ORDER_CREATED") == 1
    assert orders == 1


def test_sigterm_finishes_current_job(tmp_path) -> None:
    with isolated_stack(tmp_path, workers=1, scheduler=False,
                        pebble_options={"va_sleep_seconds": 4}) as deployment:
        [issuance_id] = deployment.add_and_request(_hostnames("sigterm", 1))
        _wait_for_state(deployment, issuance_id, ("VALIDATING",))

        exit_code = deployment.processes.stop("worker-1", sig=signal.SIGTERM, timeout=120)
        states = deployment.issuance_states([issuance_id])
        log = deployment.log_text("worker-1")

    assert exit_code == 0
    assert states[issuance_id] == "SUCCEEDED"
    assert "warm shut down requested" in log
    assert "worker stopped" in log


def test_redis_restart_mid_batch(tmp_path) -> None:
    redis_server = PrivateRedis(tmp_path / "redis")
    redis_server.start()
    try:
        with isolated_stack(tmp_path, workers=2, redis_url=redis_server.url,
                            pebble_options={"va_sleep_seconds": 2}) as deployment:
            deployment.start_scheduler("scheduler-2")
            ids = deployment.add_and_request(_hostnames("redis", 12))
            _wait_for_state(deployment, ids[0], ("VALIDATING", "FINALIZING", "SUCCEEDED"))

            # Down longer than a worker's pause between work loops, so workers also
            # start while Redis is unreachable.
            redis_server.restart(down_seconds=6)
            states = deployment.wait_until_final(ids, timeout=300)

            recovered = deployment.query(
                "SELECT issuance_id, count(*) FROM events WHERE type = 'ISSUANCE_RECOVERED' "
                "GROUP BY issuance_id")
            active = deployment.query("SELECT count(*) FROM domains WHERE status = 'ACTIVE'")[0][0]
    finally:
        redis_server.stop()

    assert sorted(states.values()) == ["SUCCEEDED"] * 12
    assert active == 12
    assert len(recovered) >= 1
    # Two schedulers ran the recovery; each lost job was queued again once.
    assert max(count for _, count in recovered) == 1


def test_bad_nonces_cost_attempts_not_issuances(tmp_path) -> None:
    with isolated_stack(tmp_path, workers=2,
                        pebble_options={"nonce_reject_percent": 30}) as deployment:
        ids = deployment.add_and_request(_hostnames("nonce", 10))
        states = deployment.wait_until_final(ids, timeout=300)

        attempts = deployment.query(
            "SELECT i.id::text, i.attempt, count(e.id) FILTER (WHERE e.type = 'ISSUANCE_STARTED') "
            "FROM issuances i JOIN events e ON e.issuance_id = i.id "
            "WHERE i.id = ANY(%s) GROUP BY i.id, i.attempt", [uuid.UUID(i) for i in ids])
        logs = deployment.log_text("worker-1") + deployment.log_text("worker-2")

    assert sorted(states.values()) == ["SUCCEEDED"] * 10
    assert len(attempts) == 10
    for _, attempt, started_events in attempts:
        assert attempt >= 1
        assert attempt == started_events
    assert "retrying request after badNonce" in logs


def test_postgres_restart_under_load(tmp_path) -> None:
    reason = PrivatePostgres.available()
    if reason:
        pytest.skip(reason)
    postgres = PrivatePostgres()
    postgres.init()
    postgres.start()
    try:
        database_url = postgres.create_database("certsvc_fault")
        migrate(database_url)
        with isolated_stack(tmp_path, workers=2, database_url=database_url,
                            pebble_options={"va_sleep_seconds": 2}) as deployment:
            hostnames = _hostnames("pgdown", 6)
            ids = deployment.add_and_request(hostnames)

            postgres.stop("fast")
            with pytest.raises(grpc.RpcError) as get_failed:
                deployment.stub.GetDomain(pb.GetDomainRequest(hostname=hostnames[0]), timeout=60)
            with pytest.raises(grpc.RpcError) as request_failed:
                deployment.stub.RequestCertificate(
                    pb.RequestCertificateRequest(hostname=hostnames[1]), timeout=60)
            postgres.start()

            domain = _get_domain_when_back(deployment, hostnames[0])
            states = deployment.wait_until_final(ids, timeout=300)
    finally:
        postgres.remove()

    assert get_failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "database" in get_failed.value.details()
    assert request_failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert domain.hostname == hostnames[0]
    assert sorted(states.values()) == ["SUCCEEDED"] * 6


def _get_domain_when_back(deployment: IsolatedStack, hostname: str) -> pb.Domain:
    deadline = time.monotonic() + 120
    while True:
        try:
            return deployment.stub.GetDomain(pb.GetDomainRequest(hostname=hostname), timeout=30)
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def test_pebble_restart_registers_one_account(tmp_path) -> None:
    with isolated_stack(tmp_path, workers=2) as deployment:
        first = deployment.add_and_request(_hostnames("before", 1))
        before = deployment.wait_until_final(first)

        deployment.pebble.restart_pebble()
        after_ids = deployment.add_and_request(_hostnames("after", 4))
        after = deployment.wait_until_final(after_ids, timeout=240)
        accounts = deployment.query("SELECT status, count(*) FROM acme_accounts GROUP BY status")

    assert list(before.values()) == ["SUCCEEDED"]
    assert sorted(after.values()) == ["SUCCEEDED"] * 4
    assert dict(accounts) == {"valid": 1, "deactivated": 1}


def test_pebble_restart_mid_validation(tmp_path) -> None:
    """Orders the CA forgot are replaced, not retried until the issuance fails."""
    # Pebble sleeps a whole number of seconds, 0 to 7, before each validation. An order
    # whose sleep is 0 can pass VALIDATING between two polls, so any of three orders seen
    # in VALIDATING starts the restart.
    with isolated_stack(tmp_path, workers=2,
                        pebble_options={"va_sleep_seconds": 8}) as deployment:
        ids = deployment.add_and_request(_hostnames("forgotten", 3))
        _wait_for_any_validating(deployment, ids)

        deployment.pebble.restart_pebble()
        states = deployment.wait_until_final(ids, timeout=300)
        logs = deployment.log_text("worker-1") + deployment.log_text("worker-2")

    assert sorted(states.values()) == ["SUCCEEDED"] * 3
    assert "cannot resume order, placing a new one" in logs
