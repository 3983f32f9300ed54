"""Prometheus metrics of the worker and the scheduler, scraped over HTTP after issuances."""

from __future__ import annotations

import time
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.pebble import free_port
from stacks import isolated_stack

pytestmark = pytest.mark.pebble


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Return every sample of a /metrics page by (name, sorted labels)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as page:
                text = page.read().decode()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_of_each_process(tmp_path) -> None:
    worker_port, scheduler_port, api_port = free_port(), free_port(), free_port()
    with isolated_stack(tmp_path, workers=0, scheduler=False) as deployment:
        deployment.start_workers(1, extra_env={"CERTSVC_METRICS_ADDRESS": f"127.0.0.1:{worker_port}"})
        deployment.start_scheduler(
            extra_env={"CERTSVC_METRICS_ADDRESS": f"127.0.0.1:{scheduler_port}"})
        ids = deployment.add_and_request(
            [f"metrics-{n}-{uuid.uuid4().hex[:8]}.example.com" for n in range(2)])
        states = deployment.wait_until_final(ids)

        deployment.processes.start("api-metrics", "api", extra_env={
            "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
            "CERTSVC_METRICS_ADDRESS": f"127.0.0.1:{api_port}"})

        worker = _scrape(worker_port)
        scheduler = _scrape(scheduler_port)
        api = _scrape(api_port)

    assert sorted(states.values()) == ["SUCCEEDED", "SUCCEEDED"]
    assert worker[("certsvc_issuances_total", (("outcome", "succeeded"),))] == 2
    assert worker[("certsvc_issuance_attempts_total", (("outcome", "succeeded"),))] == 2
    assert worker[("certsvc_issuance_duration_seconds_count", (("outcome", "succeeded"),))] == 2
    assert worker[("certsvc_issuance_attempt_duration_seconds_count", ())] == 2
    # Pebble's certificates last five years.
    expiry = ("certsvc_certificates_by_days_to_expiry",
              (("days_to_expiry", "30+"), ("source", "LETS_ENCRYPT")))
    assert scheduler[expiry] == 2
    assert scheduler[("certsvc_certificates_by_days_to_expiry",
                      (("days_to_expiry", "0-1"), ("source", "CUSTOM")))] == 0
    queue_name = f"{deployment.prefix}-issuance"
    assert scheduler[("certsvc_queue_depth", (("queue", queue_name), ("state", "queued")))] == 0
    assert api[expiry] == 2
    assert api[("certsvc_queue_depth", (("queue", queue_name), ("state", "scheduled")))] == 0
