"""The CLI as people read it: RFC 3339 times with a relative part, a compact table that fits 80 columns and a
wide one, one "needs ~N more canary requests" sentence for every signal kind, `get gates -A`, `status -w`,
`route show` without --canary/--stable, and `kubectl gatekeeper` as a kubectl plugin."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gatekeeper.cli.humanize import ago, duration, needs, rfc3339, when
from gatekeeper.cli.main import app
from gatekeeper.sim.scenario import ArmProfile
from gatekeeper.spec.crd import GROUP, PLURAL, VERSION

ROOT = Path(__file__).resolve().parents[1]
GATE = ROOT / "gates" / "http-canary.yaml"


def test_times_are_rfc3339_with_a_relative_part():
    assert rfc3339(1796288580) == "2026-12-03T09:03:00Z"  # date -u -d @1796288580 --iso-8601=seconds
    assert ago(1000.0, now=1000.0 + 12 * 60) == "12 min ago"
    assert ago(1000.0, now=1000.0 + 3 * 3600) == "3 h ago" and ago(2000.0, now=1000.0) == "in 17 min"
    assert when(0.0, now=30.0) == "1970-01-01T00:00:00Z (30 s ago)"
    assert [duration(s) for s in (0, 59, 200, 3600, 7500, 90000)] == [
        "0s",
        "59s",
        "3m 20s",
        "1h",
        "2h 5m",
        "1d 1h",
    ]


def _signal(kind: str, **evidence: Any) -> dict[str, Any]:
    return {"name": kind, "kind": kind, "verdict": "inconclusive", "evidence": evidence}


def test_every_signal_kind_says_what_it_needs_in_the_same_sentence_from_its_own_evidence():
    window = 600.0
    said = {
        kind: needs(
            _signal(kind, more_needed=n, samples={"canary": 1200, "baseline": 24000}), window_seconds=window
        )
        for kind, n in (("ratio", 70920), ("latency", 12), ("invariant", 300))
    }
    assert (
        said["ratio"] == "needs ~70,920 more canary requests (~9h 51m at current traffic)"
    )  # 70920 / 2 per s
    assert said["latency"] == "needs ~12 more canary requests (~6s at current traffic)"
    assert all(
        re.fullmatch(r"needs ~[\d,]+ more canary requests \(~.+ at current traffic\)", s)
        for s in said.values()
    )
    assert needs(_signal("threshold"), window_seconds=window) is None  # the kind reports no such number
    assert needs({**_signal("ratio", more_needed=5), "verdict": "pass"}, window_seconds=window) is None


def _evaluate(url: str, scenario: Any, *extra: str, columns: int) -> subprocess.CompletedProcess[str]:
    end = scenario.end_ms / 1000
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli.main", "evaluate", str(GATE), "--prometheus", url, "--arg",
         f"service={scenario.service}", "--start", f"{end - 1800:.0f}", "--end", f"{end:.0f}", *extra],
        capture_output=True, text=True, timeout=60, cwd=ROOT, env={**os.environ, "COLUMNS": str(columns)},
    )  # fmt: skip


def test_the_evaluate_table_fits_80_columns_and_the_wide_one_shows_every_column(prometheus, load_scenario):
    scenario = load_scenario(
        canary=ArmProfile(requests_per_second=100, error_ratio=0.01),
        baseline=ArmProfile(requests_per_second=100, error_ratio=0.01),
        seed=5,
    )
    compact = _evaluate(prometheus.url, scenario, columns=80)
    assert compact.stdout, compact.stderr
    lines = compact.stdout.splitlines()
    assert max(len(ln.rstrip()) for ln in lines) <= 80, compact.stdout
    header = next(ln for ln in lines if "SIGNAL" in ln)
    assert "EFFECT" in header and "REASON" not in header and "CANARY" not in header
    assert re.search(r"window \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(.+ ago\) → ", compact.stdout), compact.stdout
    assert not re.search(r"\b1[78]\d{8}\b", compact.stdout)  # no unix seconds anywhere
    for name in ("error-rate", "latency-p99"):
        assert any(ln.startswith(name) for ln in lines) and f"  {name}: " in compact.stdout
    wide = _evaluate(prometheus.url, scenario, "-o", "wide", columns=200)
    header = next(ln for ln in wide.stdout.splitlines() if "SIGNAL" in ln)
    assert all(col in header for col in ("CANARY", "BASELINE", "EFFECT", "REASON"))
    auto = _evaluate(prometheus.url, scenario, columns=200)  # a wide terminal gets the wide table by itself
    assert "REASON" in next(ln for ln in auto.stdout.splitlines() if "SIGNAL" in ln)


def test_kubectl_finds_the_plugin_on_path_or_the_entry_point_runs():
    bindir = Path(sys.executable).parent
    plugin = bindir / "kubectl-gatekeeper"
    assert plugin.exists(), "pip install -e . creates the kubectl-gatekeeper console script"
    kubectl = shutil.which("kubectl")
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [kubectl, "gatekeeper", "--version"] if kubectl else [str(plugin), "--version"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("gatekeeper "), done.stdout
    listed = (
        subprocess.run([kubectl, "plugin", "list"], capture_output=True, text=True, timeout=60, env=env)
        if kubectl
        else None
    )
    assert listed is None or "kubectl-gatekeeper" in listed.stdout


def test_shell_completion_is_offered():
    result = CliRunner().invoke(app, ["--show-completion", "bash"], env={"SHELL": "/bin/bash"})
    assert (
        result.exit_code == 0
        and "complete" in result.stdout
        and "_GATEKEEPER_COMPLETE" in result.stdout.upper()
    )


# --- against the real API server ----------------------------------------------------------------------------


@pytest.fixture
def gates(kube_cluster: Any, kube_admin: Any, kube_namespace: str) -> dict[str, Any]:
    from kubernetes import client

    from tests.test_crd import example_spec, gate_resource, install_gate_crd
    from tests.test_routing_kube import CANARY, STABLE, Kube, sample

    install_gate_crd(kube_admin)
    spec = example_spec()
    spec["routing"] = {"kind": "gateway-api", "name": "web", "canaryBackend": CANARY, "stableBackend": STABLE}
    custom = client.CustomObjectsApi(kube_admin)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, gate_resource("gate-web", spec)
    )
    Kube(kube_admin, "gateway-api", kube_namespace).create(sample("gateway-api", canary=7))
    return {"ns": kube_namespace, "kc": str(kube_cluster.kubeconfig), "custom": custom}


def _cli(g: dict[str, Any], *args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--kubeconfig", g["kc"]], env={"COLUMNS": "100"})


@pytest.mark.k8s
def test_get_gates_lists_like_kubectl_with_a_namespace_column_for_all_namespaces(gates):
    mine = _cli(gates, "get", "gates", "-n", gates["ns"])
    assert mine.exit_code == 0, mine.output
    header, row = mine.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "STAGE", "WEIGHT", "VERDICT", "IN", "STAGE", "AGE"]
    assert row.split()[0] == "gate-web" and row.split()[2] == "1/4"
    everywhere = _cli(gates, "get", "gates", "-A")
    assert everywhere.stdout.split()[0] == "NAMESPACE"
    assert any(ln.split()[:2] == [gates["ns"], "gate-web"] for ln in everywhere.stdout.splitlines())


@pytest.mark.k8s
def test_status_watch_prints_again_when_the_gate_changes(gates):
    def change() -> None:
        time.sleep(1.5)
        gates["custom"].patch_namespaced_custom_object_status(
            GROUP, VERSION, gates["ns"], PLURAL, "gate-web",
            {"status": {"phase": "Progressing", "stage": 1, "weight": 5, "verdict": "pass", "reason": "advanced",
                        "stageStartedAt": time.time() - 720}},
        )  # fmt: skip

    worker = threading.Thread(target=change)
    worker.start()
    watched = _cli(gates, "get", "gates", "-n", gates["ns"], "-w", "--interval", "0.3", "--max-updates", "2")
    worker.join()
    assert watched.exit_code == 0, watched.output
    rows = [ln for ln in watched.stdout.splitlines() if ln.startswith("gate-web")]
    assert len(rows) == 2 and "Progressing" in rows[1] and "2/4" in rows[1] and "12m" in rows[1], (
        watched.stdout
    )
    assert watched.stdout.count("NAME") == 1  # one header, then changed rows only, as kubectl -w
    one = _cli(gates, "status", "gate-web", "-n", gates["ns"])
    assert "stage 2 of 4" in one.stdout and re.search(r"stage started: \S+Z \(12 min ago\)", one.stdout), (
        one.stdout
    )


@pytest.mark.k8s
def test_route_show_reads_canary_and_stable_from_the_gate_that_owns_the_route(gates):
    from tests.test_routing_kube import CANARY, STABLE

    shown = _cli(gates, "route", "show", "httproute/web", "-n", gates["ns"], "--json")
    assert shown.exit_code == 0, shown.output
    assert '"canary_percent": 7' in shown.stdout.replace(".0", "") or "7" in shown.stdout
    table = _cli(gates, "route", "show", "httproute/web", "-n", gates["ns"])
    assert f"{CANARY} (canary)" in table.stdout and f"{STABLE} (stable)" in table.stdout
    gates["custom"].delete_namespaced_custom_object(GROUP, VERSION, gates["ns"], PLURAL, "gate-web")
    orphan = _cli(gates, "route", "show", "httproute/web", "-n", gates["ns"])
    assert orphan.exit_code == 2 and "pass --canary and --stable" in orphan.stderr
