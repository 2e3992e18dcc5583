"""The README's first command, in CI: three gated rollouts on real components, and nothing left running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.k8s
def test_demo_promotes_the_healthy_canary_reverts_the_leaky_one_and_halts_the_subtle_one(
    tmp_path, kube_cluster
):
    proc = subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli.main", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    summary = out[out.index("summary") :]
    assert re.search(r"✔ healthy\s+Promoted", summary)
    assert re.search(r"✔ leaky\s+RolledBack", summary)
    assert re.search(r"✔ subtle\s+Halted", summary)
    # the leaky canary is caught in the first stage, on the trace invariant, naming example traces
    assert re.search(
        r"leaky revert stage 1 \(1%\) FAIL .*partial-checkout.*example canary traces: [0-9a-f]{32}", out, re.S
    )
    # the subtle one is found after the rollback window closed: halt, forward fix, runbook, owners
    assert "not reverted because" in out and "forwardFix:" in out and "runbook:" in out and "owners:" in out
    assert "route now: storefront-stable 100%, storefront-canary 0%" in out  # the leaky route restored
    assert "route now: storefront-stable 0%, storefront-canary 100%" in out  # the healthy one promoted
    for name in ("healthy", "leaky", "subtle"):
        report = tmp_path / f"report-{name}.html"
        assert report.stat().st_size > 100_000 and "plotly" in report.read_text()[:2_000_000]
    # every process the demo started is gone
    pids = [
        int(p)
        for m in re.findall(r"\(pids? ([\d, ]+)\)|in process (\d+)", out)
        for g in m
        for p in g.split(",")
        if p.strip()
    ]
    assert pids
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
        )
