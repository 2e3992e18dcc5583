"""Folded queries: one query for both arms when the scopes differ only in exact-valued labels. On a real
Prometheus the folded path gives the same counts, evidence and verdicts per arm as one query per arm, records
the exact query text it ran, still catches a canary that stops reporting, and falls back to one query per arm
for scopes that cannot be folded."""

from __future__ import annotations

import re
from dataclasses import asdict

import pytest

from gatekeeper.evaluation import judge_gate
from gatekeeper.judge import Judgement
from gatekeeper.signals import EvalContext, render_queries
from gatekeeper.signals.render import matchers, split_arms
from gatekeeper.sim.remote_write import RemoteWriteClient, Series
from gatekeeper.sim.scenario import ArmProfile, Scenario, canary_scenario
from gatekeeper.sources.base import QueryResult
from gatekeeper.sources.prometheus import PrometheusSource
from gatekeeper.spec import GateSpec, Verdict, load_gate_text
from gatekeeper.spec.window import Window
from tests.fixtures.prometheus import current_step_ms

SIGNALS = """
signals:
  - {name: errors, kind: ratio, bad: 'http_requests_total{code=~"5.."}', total: http_requests_total,
     tolerance: 0.2}
  - {name: p99, kind: latency, histogram: http_request_duration_seconds, quantile: 0.99, tolerance: 0.5}
  - {name: slow, kind: latency, histogram: http_request_duration_seconds, slowerThan: 1s, tolerance: 0.5}
"""
WORSE = ArmProfile(requests_per_second=50, error_ratio=0.03, latency_median_seconds=0.2)
BASE = ArmProfile(requests_per_second=50, error_ratio=0.01)


class Recording:
    """A MetricsSource that forwards to the real Prometheus source and keeps every query it was asked."""

    def __init__(self, inner: PrometheusSource) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def instant(self, query: str, *, at: float) -> QueryResult:
        self.calls.append(("instant", query))
        return self.inner.instant(query, at=at)

    def range(self, query: str, *, start: float, end: float, step: float) -> QueryResult:
        self.calls.append(("range", query))
        return self.inner.range(query, start=start, end=end, step=step)


def gate(canary: dict[str, str], baseline: dict[str, str]) -> GateSpec:
    scopes = f"scopes:\n  canary: {canary!r}\n  baseline: {baseline!r}\n"
    return load_gate_text(
        f"name: fold\n{scopes}stages: [{{weight: 10, minDuration: 1m, minSamples: 100}}]\n"
        f"source: {{prometheus: {{step: 60s}}}}\n{SIGNALS}"
    )


def evaluate(url: str, spec: GateSpec, end_ms: int) -> tuple[Judgement, list[tuple[str, str]]]:
    """The judgement over the scenario's last 30 minutes, and the (kind, query) pairs that reached Prometheus."""
    source = Recording(PrometheusSource(url))
    try:
        window = Window(start=end_ms / 1000 - 1800, end=end_ms / 1000, step=60)
        return judge_gate(spec, metrics=source, window=window), source.calls
    finally:
        source.inner.close()


def without_queries(judgement: Judgement) -> list[dict]:
    return [{k: v for k, v in asdict(s).items() if k != "queries"} for s in judgement.signals]


def load(prometheus, scenario: Scenario, relabel=lambda labels: [labels]) -> None:  # type: ignore[no-untyped-def]
    series = [
        Series(labels=lab, samples=s.samples) for s in scenario.series for lab in relabel(dict(s.labels))
    ]
    RemoteWriteClient(prometheus.remote_write_url).write(series)


def test_scopes_fold_only_when_they_differ_in_exact_values_of_the_same_labels():
    split = split_arms({"service": "=~a|b", "track": "canary"}, {"service": "=~a|b", "track": "baseline"})
    assert split is not None
    assert matchers(split.scope) == 'service=~"a|b",track=~"canary|baseline"'
    assert split.arm_of({"track": "baseline", "le": "1"}) == "baseline"
    assert split.arm_of({"track": "canary-shadow"}) is None
    assert split_arms({"s": "x", "track": "canary"}, {"s": "x", "track": "=~baseline"}) is None  # a regex
    assert split_arms({"s": "x", "track": "!=baseline"}, {"s": "x", "track": "baseline"}) is None  # negative
    assert split_arms({"s": "x", "track": "canary"}, {"s": "x", "track": "baseline", "job": "a"}) is None
    assert split_arms({"s": "x", "track": "canary"}, {"s": "x", "track": ""}) is None  # "" matches "no label"
    assert split_arms({"s": "x"}, {"s": "x"}) is None  # nothing tells the arms apart


def test_folded_values_are_matched_literally_even_with_regex_metacharacters():
    split = split_arms({"v": "2.0+rc(1)", "t": "c"}, {"v": "1.0", "t": "b"})
    assert split is not None
    pattern = re.search(r'v=~"(.*?)",', matchers(split.scope)).group(1).replace("\\\\", "\\")  # type: ignore[union-attr]
    assert re.fullmatch(pattern, "2.0+rc(1)") and re.fullmatch(pattern, "1.0")
    assert not re.fullmatch(pattern, "2x0+rc(1)") and not re.fullmatch(pattern, "1x0")


@pytest.mark.parametrize(
    "unfoldable",
    [
        pytest.param({"track": "=~baseline"}, id="baseline-scope-is-a-regex"),
        pytest.param({"track": "baseline", "job": "shop"}, id="scopes-differ-in-label-keys"),
    ],
)
def test_folded_and_per_arm_queries_give_the_same_counts_evidence_and_verdicts(prometheus, unfoldable):
    end = current_step_ms()
    scenario = canary_scenario(
        service=f"fold-same-{len(unfoldable)}", end_ms=end, canary=WORSE, baseline=BASE, seed=5
    )
    load(prometheus, scenario)
    svc = {"service": scenario.service}
    folded = gate({**svc, "track": "canary"}, {**svc, "track": "baseline"})
    per_arm = gate({**svc, "track": "canary"}, {**svc, **unfoldable})  # the same series, not foldable
    assert split_arms(per_arm.scopes.canary, per_arm.scopes.baseline) is None

    one, one_calls = evaluate(prometheus.url, folded, end)
    two, two_calls = evaluate(prometheus.url, per_arm, end)

    assert without_queries(one) == without_queries(two)
    assert one.verdict == Verdict.FAIL  # the comparison is about real evidence: the canary is clearly worse
    errors = next(s for s in one.signals if s.name == "errors")
    assert errors.canary["events"] > 500 and errors.baseline["events"] > 100
    # one raw-sample query per signal for both arms, freshness included (the two latency signals share theirs;
    # the error ratio's bad events are picked from its total's answer)
    assert sorted(kind for kind, _ in one_calls) == ["instant"] * 2
    assert sorted(kind for kind, _ in two_calls) == ["instant"] * 4
    assert all('track=~"canary|baseline"' in q for _, q in one_calls)
    assert all('track="canary"' in q or ("baseline" in q and "canary" not in q) for _, q in two_calls)
    for judgement, calls, spec in ((one, one_calls, folded), (two, two_calls, per_arm)):
        ran = {q for _, q in calls}
        window = Window(start=end / 1000 - 1800, end=end / 1000, step=60)
        ctx = EvalContext(gate=spec, metrics=None, window=window, stage=spec.stages[0], alpha=spec.alpha)  # type: ignore[arg-type]
        for signal, outcome in zip(spec.signals, judgement.signals, strict=True):
            rendered = set(render_queries(signal, ctx).values())
            assert set(outcome.queries.values()) <= ran | rendered, (
                outcome.name
            )  # the text behind every number
            assert rendered == set(outcome.queries.values())  # lint parses exactly what is recorded
            assert ran <= rendered | {q for o in judgement.signals for q in o.queries.values()}


def test_series_of_neither_arm_are_dropped_when_several_labels_tell_the_arms_apart(prometheus):
    end = current_step_ms()
    scenario = canary_scenario(service="fold-versions", end_ms=end, canary=WORSE, baseline=BASE, seed=6)
    version = {"canary": "2.0+rc(1)", "baseline": "1.0"}

    def relabel(labels: dict[str, str]) -> list[dict[str, str]]:
        own = {**labels, "version": version[labels["track"]]}
        if labels["track"] == "canary":  # a decoy the folded matchers select: track=canary, version=1.0
            return [own, {**labels, "version": "1.0"}]
        return [own]

    load(prometheus, scenario, relabel)
    svc = {"service": scenario.service}
    folded = gate(
        {**svc, "track": "canary", "version": version["canary"]},
        {**svc, "track": "baseline", "version": "1.0"},
    )
    per_arm = gate({**svc, "track": "canary", "version": version["canary"]}, {**svc, "track": "=~baseline", "version": "1.0"})  # fmt: skip
    split = split_arms(folded.scopes.canary, folded.scopes.baseline)
    assert split is not None and split.labels == ("track", "version")

    one, one_calls = evaluate(prometheus.url, folded, end)
    two, _ = evaluate(prometheus.url, per_arm, end)

    assert len(one_calls) == 2
    assert without_queries(one) == without_queries(two)
    errors = next(s for s in one.signals if s.name == "errors")
    truth = scenario.truth["canary"]
    assert abs(errors.canary["requests"] - truth.requests) <= 0.05 * truth.requests  # the decoy not counted


@pytest.mark.parametrize(
    ("stops_before_end_s", "markers", "says"),
    [
        pytest.param(180, False, "its newest sample is", id="old-sample"),
        pytest.param(420, False, "its newest sample is", id="beyond-lookback"),
        pytest.param(150, True, "its newest sample is", id="staleness-marker"),
    ],
)
def test_a_canary_that_stops_reporting_is_stale_on_the_folded_path(
    prometheus, stops_before_end_s, markers, says
):
    end = current_step_ms()
    scenario = canary_scenario(
        service=f"fold-stale-{stops_before_end_s}", end_ms=end, canary=BASE, baseline=BASE, seed=7,
        canary_stops_at_ms=end - stops_before_end_s * 1000, stale_markers=markers,
    )  # fmt: skip
    load(prometheus, scenario)
    svc = {"service": scenario.service}
    folded = gate({**svc, "track": "canary"}, {**svc, "track": "baseline"})
    per_arm = gate({**svc, "track": "canary"}, {**svc, "track": "=~baseline"})

    one, one_calls = evaluate(prometheus.url, folded, end)
    two, _ = evaluate(prometheus.url, per_arm, end)

    assert one.verdict == Verdict.NODATA
    for outcome in one.signals:
        assert outcome.verdict == Verdict.NODATA, (outcome.name, outcome.reason)
        assert "canary stopped reporting" in outcome.reason and says in outcome.reason
        assert "while the baseline's is" in outcome.reason  # the baseline is fresh: the canary is the gap
        # freshness is read from the same raw samples as the counts: no query of its own
        assert all('track=~"canary|baseline"' in q for q in outcome.queries.values())
        assert len(one_calls) == 2  # one per signal (the latency signals share theirs)
    assert [s.reason for s in one.signals] == [s.reason for s in two.signals]
