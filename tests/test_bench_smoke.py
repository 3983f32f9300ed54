"""Short runs of each benchmark under bench/: they start, measure and report.

Their numbers mean nothing; the full runs are bench/run-all's. Peers that are not
installed (certbot, lego) are left out of the issuance run; the responder run needs
wrk and nginx and is skipped without them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run_smoke(module: str, tmp_path: Path) -> dict[str, dict]:
    output = tmp_path / f"{module}.json"
    completed = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", "--smoke", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert completed.returncode == 0, completed.stderr[-3000:]
    return {figure["key"]: figure for figure in json.loads(output.read_text())}


@pytest.mark.pebble
def test_issuance_smoke(tmp_path: Path) -> None:
    figures = _run_smoke("issuance", tmp_path)

    rows = {row["issuer"]: row for row in figures["issuance"]["rows"]}
    for name in ("bare acme loop, sequential", "certsvc, 1 worker", "certsvc, 4 workers",
                 "certsvc, 1 worker, one issuance at a time"):
        assert rows[name]["certificates"] > 0, name
        assert rows[name]["failed"] == 0, name
    assert figures["issuance"]["ratio"] is not None
    assert all(row["rss_mb"] for row in figures["memory"]["rows"])


def test_get_certificate_smoke(tmp_path: Path) -> None:
    figures = _run_smoke("get_certificate", tmp_path)

    rows = figures["get_certificate"]["rows"]
    assert len(rows) == 5
    assert [row["errors"] for row in rows] == [0] * len(rows)
    assert all(row["per_second"] > 0 for row in rows)
    assert figures["get_certificate"]["ratio"] is not None


@pytest.mark.skipif(shutil.which("wrk") is None or shutil.which("nginx") is None,
                    reason="wrk and nginx are not installed (apt-get install -y wrk nginx)")
def test_responder_smoke(tmp_path: Path) -> None:
    figures = _run_smoke("responder", tmp_path)

    goals = {goal["name"]: goal["met"] for goal in figures["responder"]["sub_goals"]}
    assert goals["sample of 50 answers correct (1 = yes)"] is True
    rows = figures["responder"]["rows"]
    assert all(row["socket_errors"] == 0 for row in rows)
    assert all(0.2 < row["share_404"] < 0.3 for row in rows)


def test_renewal_sweep_smoke(tmp_path: Path) -> None:
    figures = _run_smoke("renewal_sweep", tmp_path)

    sweep = figures["renewal_sweep"]
    assert sweep["rows"][0]["enqueued"] == 100
    assert "Index" in sweep["extra"]["EXPLAIN (ANALYZE) of the due query"]
