"""Threshold signals on a real Prometheus: `initialDelay` as Argo Rollouts defines it (no measurement until the
delay after the stage start has passed; argo-rollouts docs, analysis.md "Delay Analysis Runs"), so steps inside
the delay never count toward `failureLimit`."""

from __future__ import annotations

import numpy as np

from gatekeeper.evaluation import judge_gate
from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.fetch import grid
from gatekeeper.sim.scenario import ArmProfile
from gatekeeper.sources.prometheus import PrometheusSource
from gatekeeper.spec import load_gate_text
from gatekeeper.spec.window import Window

ERRORS = 'sum(rate(http_requests_total{${selector},code=~"5.."}[2m])) / sum(rate(http_requests_total{${selector}}[2m]))'


def gate(service: str, delay: str) -> object:
    return load_gate_text(
        f"""
name: threshold-delay
scopes:
  canary: {{service: {service}, track: canary}}
  baseline: {{service: {service}, track: baseline}}
source: {{prometheus: {{step: 60s}}}}
stages: [{{weight: 10, minDuration: 1m, minSamples: 0}}]
signals:
  - {{name: errors, kind: threshold, query: '{ERRORS}', max: 0.02, failureLimit: 0, initialDelay: {delay}}}
"""
    )


def test_initial_delay_skips_measuring_and_never_counts_its_steps(prometheus, load_scenario) -> None:  # type: ignore[no-untyped-def]
    sc = load_scenario(
        canary=ArmProfile(requests_per_second=100, error_ratio=0.05),  # every step is over the 2% bound
        baseline=ArmProfile(requests_per_second=100, error_ratio=0.01),
        duration_seconds=1800,
    )
    end = sc.end_ms / 1000
    start = end - 1500
    source = PrometheusSource(prometheus.url)
    window = Window(start, end, 60)

    inside = judge_gate(gate(sc.service, "30m"), metrics=source, window=window, stage=0, stage_started=start)
    assert inside.signals[0].verdict == "inconclusive" and "initial delay (1800s)" in inside.signals[0].reason

    spec = gate(sc.service, "15m")
    after = judge_gate(spec, metrics=source, window=window, stage=0, stage_started=start)
    out = after.signals[0]
    assert out.verdict == "fail"
    points = grid(EvalContext(gate=spec, metrics=source, window=window, stage=spec.stages[0], alpha=0.01))
    measured = int(np.sum(points >= start + 900))
    assert out.evidence.failed_measurements == measured < len(points), (measured, len(points))

    undelayed = judge_gate(
        gate(sc.service, "0s"), metrics=source, window=window, stage=0, stage_started=start
    )
    assert undelayed.signals[0].evidence.failed_measurements > measured
