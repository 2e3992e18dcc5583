"""The count test's decisions: what FAILs, what PASSes, what stays INCONCLUSIVE, and the error budget of a rollout.

Outside references named per test: scipy.stats.binomtest (the exact conditional binomial test, R's
`binom.test`/`poisson.test`), scipy.stats.binom (the chance of silence), and the issue's own numbers for the
regression just above the tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gatekeeper.signals import EvalContext
from gatekeeper.signals.counts import ArmCounts, count_outcome, merge_orphans
from gatekeeper.spec import Verdict, load_gate_text
from gatekeeper.spec.evidence import ArmPair
from gatekeeper.spec.load import SpecError
from gatekeeper.spec.window import Window
from gatekeeper.stats import planning
from gatekeeper.stats.sequential import ratio_eprocess

STEP = 60.0


def gate(
    signal: str, *, mode: str = "sequential", stages: str = "[{weight: 5, minDuration: 0s, minSamples: 0}]"
):
    return load_gate_text(
        f"""
name: decisions
mode: {mode}
alpha: 0.01
scopes: {{canary: {{track: canary}}, baseline: {{track: baseline}}}}
stages: {stages}
signals:
  - {signal}
"""
    )


RATIO = "{name: errors, kind: ratio, bad: 'x{code=\"5\"}', total: x, tolerance: %s%s}"


def ratio_gate(tolerance: float = 0.0, extra: str = "", **kw):
    return gate(RATIO % (tolerance, extra), **kw)


def arms(c_events, c_exposure, b_events, b_exposure, *, end: float = 6000.0):
    c_events, c_exposure, b_events, b_exposure = (np.asarray(x, dtype=float) for x in (c_events, c_exposure, b_events, b_exposure))  # fmt: skip
    t = end - STEP * np.arange(len(c_events) - 1, -1, -1)
    return ArmCounts(t, c_events, c_exposure), ArmCounts(t, b_events, b_exposure)


def judge(spec, canary, baseline, *, stage: int = 0, carried=None, started: float | None = None):
    end = float(canary.timestamps[-1])
    start = end - STEP * len(canary.timestamps)
    ctx = EvalContext(
        gate=spec,
        metrics=None,  # type: ignore[arg-type]  # count_outcome judges numbers it is handed
        window=Window(start=start, end=end, step=STEP),
        stage=spec.stages[stage],
        alpha=spec.alpha,
        stage_started=start if started is None else started,
        carried=carried or {},
    )
    return count_outcome(
        signal=spec.signals[0],
        ctx=ctx,
        canary=canary,
        baseline=baseline,
        queries={"canary_bad": "q1", "canary_total": "q2"},
    )


def test_a_regression_just_above_the_tolerance_fails_when_the_bounds_exclude_the_tolerance():
    """The issue's case: tolerance 0.2, canary 2,266 bad of 162,201, baseline 1,596 of 161,556 (1.41x). The
    old grid's smallest alternative (1.4 x 1.2) left it INCONCLUSIVE with e-value 0.17 while the confidence
    sequence already excluded 1.2; the exact fixed-horizon test (scipy.stats.binomtest, R's binom.test) agrees
    the ratio is above 1.2."""
    canary, baseline = arms([2266], [162201], [1596], [161556])
    out = judge(ratio_gate(0.2), canary, baseline)
    assert out.verdict == Verdict.FAIL, out.reason
    assert out.effect.lower > 1.2
    share = 162201 / (162201 + 161556)
    theta0 = share * 1.2 / (share * 1.2 + 1 - share)
    assert stats.binomtest(2266, 2266 + 1596, theta0, alternative="greater").pvalue < 1e-6


def test_the_harm_e_value_and_the_bounds_never_disagree():
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(1, 30))
        share = rng.uniform(0.02, 0.6)
        c = rng.poisson(rng.uniform(0, 8), n)
        b = rng.poisson(rng.uniform(1, 30), n)
        tol = float(rng.choice([0.0, 0.1, 0.2, 0.5]))
        r = ratio_eprocess(canary_bad=c, baseline_bad=b, canary_share=share, alpha=0.01, margin=tol)
        harm_now = r.e_value >= r.threshold
        assert (r.ratio_lower >= 1 + tol) == harm_now or (r.ratio_lower > 1 + tol and harm_now)
        assert (r.ratio_upper <= 1 + tol) == r.bounded


@pytest.mark.parametrize(
    ("share", "n_canary", "detectable", "expect"),
    [
        # silence with ~300 requests per arm (e.g. a 0.01% error the canary made 10x more frequent): it passed
        # 4 times in 5 when silence counted as health; it must not pass at all
        (0.5, 300, None, Verdict.INCONCLUSIVE),
        (0.5, 300, 0.001, Verdict.INCONCLUSIVE),  # 300 < log(100)/0.001 = 4,606 requests
        (0.05, 5000, 0.001, Verdict.PASS),  # 5,000 silent canary requests rule out 0.1%
        (0.05, 5000, None, Verdict.INCONCLUSIVE),
        (0.25, 460, 0.01, Verdict.INCONCLUSIVE),  # 460 < 461
        (0.25, 461, 0.01, Verdict.PASS),
    ],
)
def test_silence_passes_only_once_the_canary_would_have_shown_the_detectable_rate(
    share, n_canary, detectable, expect
):
    extra = "" if detectable is None else f", detectableRate: {detectable}"
    n_base = round(n_canary * (1 - share) / share)
    canary, baseline = arms([0], [n_canary], [0], [n_base])
    out = judge(ratio_gate(0.1, extra), canary, baseline)
    assert out.verdict == expect, out.reason
    if detectable is None:
        assert "detectableRate" in out.reason
    elif expect == Verdict.INCONCLUSIVE:
        assert (
            f"needs ~{planning.silence_requests(detectable_rate=detectable, alpha=0.01) - n_canary:,} more"
            in out.reason
        )


def test_the_silence_rule_spends_at_most_alpha_against_the_exact_binomial():
    """scipy.stats.binom: with the canary's rate at the detectable rate, the chance of the silence it needs is
    at most alpha (and just above it one request earlier, for a rate where the Poisson bound is tight)."""
    for f in (0.1, 0.01, 0.001, 0.0001):
        for alpha in (0.05, 0.01, 0.001):
            n = planning.silence_requests(detectable_rate=f, alpha=alpha)
            assert stats.binom.pmf(0, n, f) <= alpha
            assert math.exp(-f * (n - 1)) > alpha


def test_rare_errors_at_low_traffic_never_pass_on_silence_in_simulation():
    """Baseline 0.01 %, canary 10x, ~300 requests per arm, 2,000 seeded runs: no run passes."""
    rng = np.random.default_rng(3)
    spec = ratio_gate(0.1)
    passed = 0
    for _ in range(2000):
        c = rng.binomial(300, 0.001)
        b = rng.binomial(300, 0.0001)
        canary, baseline = arms([c], [300], [b], [300])
        passed += judge(spec, canary, baseline).verdict == Verdict.PASS
    assert passed == 0


def test_a_fail_in_one_direction_stays_when_the_other_direction_leads_later():
    """direction: either: the increase test crosses early; later the canary improves so much that the
    decrease direction has the larger current e-value. The earlier FAIL must stay a FAIL."""
    spec = gate(
        "{name: errors, kind: ratio, bad: 'x{code=\"5\"}', total: x, tolerance: 0.0, direction: either}"
    )
    c_ev = [40, 40] + [0] * 30
    b_ev = [10, 10] + [30] * 30
    canary, baseline = arms(c_ev, [1000] * 32, b_ev, [1000] * 32)
    out = judge(spec, canary, baseline)
    assert out.verdict == Verdict.FAIL, out.reason


def test_more_bad_events_than_requests_is_an_error_naming_the_queries():
    canary, baseline = arms([50], [40], [3], [400])
    out = judge(ratio_gate(), canary, baseline)
    assert out.verdict == Verdict.ERROR
    assert "50 bad events but only 40" in out.reason and "q1" in out.reason and "q2" in out.reason


def test_bad_events_scraped_before_their_exposure_are_counted_with_the_next_step_not_dropped():
    canary, baseline = arms([3, 0, 1], [0, 100, 100], [0, 2, 2], [900, 900, 900])
    c, b, merged = merge_orphans(canary, baseline)
    assert merged == 1
    assert c.total_events == 4 and b.total_events == 4
    assert list(c.exposure) == [100, 100] and list(c.events) == [3, 1]
    out = judge(ratio_gate(), canary, baseline)
    assert out.evidence.events == ArmPair(canary=4, baseline=4)
    assert any("counted with the next step" in n for n in out.evidence.notes)


def test_mann_whitney_is_refused_at_every_look_with_the_reason():
    with pytest.raises(SpecError, match="not valid at every look"):
        gate("{name: errors, kind: ratio, bad: 'x{code=\"5\"}', total: x, test: mann-whitney}")


@pytest.mark.parametrize("how", ["mode", "test"])
def test_a_fixed_test_runs_once_at_the_stages_planned_end_equal_to_the_exact_binomial(how):
    stages = "[{weight: 10, minDuration: 20m, minSamples: 0}]"
    if how == "mode":
        spec = ratio_gate(0.0, mode="fixed", stages=stages)
    else:
        spec = ratio_gate(0.0, ", test: fixed", stages=stages)
    rng = np.random.default_rng(5)
    c = rng.binomial(200, 0.02, 40)
    b = rng.binomial(1800, 0.01, 40)
    canary, baseline = arms(c, [200] * 40, b, [1800] * 40)
    start = float(canary.timestamps[0]) - STEP
    early = judge(spec, ArmCounts(*(x[:10] for x in (canary.timestamps, canary.events, canary.exposure))),
                  ArmCounts(*(x[:10] for x in (baseline.timestamps, baseline.events, baseline.exposure))),
                  started=start)  # fmt: skip
    assert early.verdict == Verdict.INCONCLUSIVE and "planned end" in early.reason
    out = judge(spec, canary, baseline, started=start)
    # scipy: the one exact test on the first 20 minutes only (the planned end), whatever came after
    cc, bb = int(c[:20].sum()), int(b[:20].sum())
    p = stats.binomtest(cc, cc + bb, 0.1, alternative="greater").pvalue
    assert out.evidence.p_value == pytest.approx(p, rel=1e-9)
    assert out.verdict == (Verdict.FAIL if p < 0.01 else out.verdict)
    assert out.evidence.samples.canary == 20 * 200


def test_evidence_carried_into_the_next_stage_continues_the_same_e_process_exactly():
    rng = np.random.default_rng(9)
    spec = ratio_gate(
        0.2,
        stages="[{weight: 5, minDuration: 0s, minSamples: 0}, {weight: 25, minDuration: 0s, minSamples: 0}]",
    )
    c1, b1 = rng.binomial(100, 0.01, 20), rng.binomial(1900, 0.01, 20)
    c2, b2 = rng.binomial(500, 0.01, 20), rng.binomial(1500, 0.01, 20)
    s1 = arms(c1, [100] * 20, b1, [1900] * 20, end=6000)
    s2 = arms(c2, [500] * 20, b2, [1500] * 20, end=9000)
    first = judge(spec, *s1)
    second = judge(spec, *s2, stage=1, carried={"errors": first.carry})
    whole = ratio_eprocess(
        canary_bad=np.concatenate([c1, c2]),
        baseline_bad=np.concatenate([b1, b2]),
        canary_share=np.concatenate([[0.05] * 20, [0.25] * 20]),
        alpha=0.01,
        margin=0.2,
    )
    assert second.evidence.e_value == whole.e_value
    assert (second.effect.lower, second.effect.upper) == (whole.ratio_lower, whole.ratio_upper)
    assert second.evidence.sequential.rollout.stages == 2
    assert second.carry["canaryExposure"] == 20 * 100 + 20 * 500


def test_a_changed_test_does_not_continue_the_old_evidence():
    spec = ratio_gate(0.2)
    first = judge(spec, *arms([3], [100], [20], [1900]))
    out = judge(ratio_gate(0.5), *arms([3], [100], [20], [1900]), carried={"errors": first.carry})
    assert any("starts afresh" in n for n in out.evidence.notes)


def test_a_four_stage_aa_rollout_false_fails_at_most_alpha_with_evidence_carried_through_the_judge():
    """Ville's inequality for the whole rollout: 1,500 seeded A/A rollouts through 1% -> 5% -> 25% -> 50%,
    30 one-minute steps each, 2,000 requests a minute at a 1% base rate that swings with traffic; every stage
    judged by `count_outcome` continuing the previous stage's carried evidence. Restarting at each stage
    with the full alpha was measured at 1.12% against 0.47% here (issue 15)."""
    rng = np.random.default_rng(20261203)
    shares = (0.01, 0.05, 0.25, 0.5)
    spec = ratio_gate(0.0, stages="[" + ", ".join(f"{{weight: {100 * s:g}, minDuration: 0s, minSamples: 0}}" for s in shares) + "]")  # fmt: skip
    alpha = spec.alpha
    runs, steps = 1500, 30
    fails = 0
    for _ in range(runs):
        carried: dict = {}
        failed = False
        for k, share in enumerate(shares):
            traffic = rng.poisson(2000 * (1 + 0.5 * np.sin(np.arange(steps) / 7 + k)))
            base = 0.01 * (1 + 0.4 * np.cos(np.arange(steps) / 5))
            nc = rng.binomial(traffic, share)
            nb = traffic - nc
            c, b = rng.binomial(nc, base), rng.binomial(nb, base)
            out = judge(spec, *arms(c, nc, b, nb, end=10_000.0 * (k + 1)), stage=k, carried=carried)
            if out.verdict == Verdict.FAIL:
                failed = True
                break
            carried = {"errors": out.carry}
        fails += failed
    assert fails / runs <= alpha
