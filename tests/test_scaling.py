"""Several workers share one queue: every domain ends with one certificate, none twice."""

from __future__ import annotations

import concurrent.futures
import logging
import os
import time
import uuid

import pytest

from stacks import isolated_stack

pytestmark = pytest.mark.pebble
logger = logging.getLogger(__name__)

# The worker count of the 40-domain test; set 1 to compare (see README, Scaling).
SCALE_WORKERS = int(os.environ.get("CERTSVC_TEST_SCALE_WORKERS", "4"))
DOMAINS = 40


def test_forty_domains_four_workers(tmp_path) -> None:
    hostnames = [f"scale-{number:02d}-{uuid.uuid4().hex[:8]}.example.com"
                 for number in range(DOMAINS)]

    with isolated_stack(tmp_path, workers=SCALE_WORKERS) as deployment:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            ids = list(pool.map(lambda name: deployment.add_and_request([name])[0], hostnames))
        states = deployment.wait_until_final(ids, timeout=600)
        elapsed = time.monotonic() - started
        logger.info("%d domains with %d workers took %.1f s", DOMAINS, SCALE_WORKERS, elapsed)

        domains = deployment.query(
            "SELECT hostname, status, certificate_id IS NOT NULL FROM domains "
            "WHERE hostname = ANY(%s)", hostnames)
        certificates = deployment.query(
            "SELECT d.hostname, count(c.id) FROM domains d LEFT JOIN certificates c "
            "ON c.domain_id = d.id WHERE d.hostname = ANY(%s) GROUP BY d.hostname", hostnames)
        orders = deployment.query(
            "SELECT hostname, count(*) FROM acme_ledger WHERE kind = 'order' "
            "AND hostname = ANY(%s) GROUP BY hostname", hostnames)
        unfinished = deployment.query(
            "SELECT count(*) FROM issuances WHERE state NOT IN ('SUCCEEDED', 'FAILED')")[0][0]
        worker_logs = [deployment.log_text(f"worker-{n}") for n in range(1, SCALE_WORKERS + 1)]

    assert sorted(states.values()) == ["SUCCEEDED"] * DOMAINS
    assert len(domains) == DOMAINS
    assert all(status == "ACTIVE" for _, status, _ in domains)
    assert all(has_certificate for _, _, has_certificate in domains)
    assert dict(certificates) == {hostname: 1 for hostname in hostnames}
    assert dict(orders) == {hostname: 1 for hostname in hostnames}
    assert unfinished == 0
    # Every worker took a share of the jobs.
    assert all("issuance job started" in text for text in worker_logs)
