"""The "which arm" e-process for count signals: closed forms, exact agreement, invariants and an A/A check.

Sources:
- The Beta-binomial closed form (Lindon & Malek 2022 §3; docs/statistics.md §8) vs direct numeric integration (scipy.integrate.quad).
- Likelihood ratios recomputed from scipy.stats.binom.pmf (the conditional binomial law of Lindon & Malek 2022).
- Wald's approximation E[N] ≈ log(1/α)/KL with KL from scipy.stats.entropy (planning).
- Ville's inequality: a seeded A/A simulation over stages 1% → 5% → 25% → 50% must false-alarm in at most α.
"""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, stats

from gatekeeper.stats import _ratio_math as rm
from gatekeeper.stats.betabinomial import beta_binomial_evalue
from gatekeeper.stats.decision import Decision, decide_ratio
from gatekeeper.stats.errors import StatsInputError
from gatekeeper.stats.planning import requests_needed, requests_to_detect
from gatekeeper.stats.sequential import RatioState, new_ratio_state, ratio_eprocess, update_ratio


@pytest.mark.parametrize(
    ("c", "b", "rho", "k", "margin"),
    [(12, 27, 0.1, 10.0, 0.0), (3, 40, 0.05, 2.0, 0.0), (30, 30, 0.5, 10.0, 0.2), (0, 15, 0.25, 5.0, 0.0)],
)
@pytest.mark.parametrize("one_sided", [True, False])
def test_beta_binomial_closed_form_equals_numeric_integration(c, b, rho, k, margin, one_sided):
    e = beta_binomial_evalue(
        canary_bad=c, baseline_bad=b, canary_share=rho, margin=margin, concentration=k, one_sided=one_sided
    )
    theta0 = e.null_probability
    lower = theta0 if one_sided else 0.0
    mass = stats.beta.sf(theta0, e.a, e.b) if one_sided else 1.0
    mode = c / (c + b) if c + b else 0.5
    integral, _ = integrate.quad(
        lambda t: t**c * (1 - t) ** b * stats.beta.pdf(t, e.a, e.b),
        lower,
        1.0,
        points=[mode] if lower < mode < 1 else None,
        epsabs=0,
        epsrel=1e-11,
        limit=200,
    )
    direct = integral / mass / (theta0**c * (1 - theta0) ** b)
    assert e.e_value == pytest.approx(direct, rel=1e-7)


def _direct_log_lr(c, b, share, ratio, r0=1.0):
    """Σ_k log[Binom(c_k; m_k, θ_k(ratio)) / Binom(c_k; m_k, θ_k(r0))] with scipy's pmf."""
    c, b, share = map(np.asarray, (c, b, share))
    theta = share * ratio / (share * ratio + 1 - share)
    theta0 = share * r0 / (share * r0 + 1 - share)
    return float(np.sum(stats.binom.logpmf(c, c + b, theta) - stats.binom.logpmf(c, c + b, theta0)))


def test_e_value_is_the_weighted_mixture_of_binomial_likelihood_ratios_with_time_varying_share():
    c, b = [0, 1, 2, 5, 9, 4], [30, 22, 14, 12, 10, 5]
    share = [0.01, 0.05, 0.05, 0.25, 0.5, 0.5]
    grid, weights = (1.5, 2.0, 4.0), (0.5, 0.3, 0.2)
    r = ratio_eprocess(
        canary_bad=c, baseline_bad=b, canary_share=share, alpha=0.01, margin=0.1, grid=grid, weights=weights
    )
    direct = sum(
        w * math.exp(_direct_log_lr(c, b, share, 1.1 * g, r0=1.1)) for g, w in zip(grid, weights, strict=True)
    )
    assert r.e_value == pytest.approx(direct, rel=1e-10)
    prefix = sum(
        w * math.exp(_direct_log_lr(c[:3], b[:3], share[:3], g))
        for g, w in zip(grid, (0.5, 0.3, 0.2), strict=True)
    )
    r3 = ratio_eprocess(
        canary_bad=c[:3], baseline_bad=b[:3], canary_share=share[:3], alpha=0.01, grid=grid, weights=weights
    )
    assert r3.path[-1] == pytest.approx(prefix, rel=1e-10)


def test_batch_and_incremental_forms_agree_exactly_across_a_serialised_restart():
    rng = np.random.default_rng(3)
    share = np.repeat([0.01, 0.05, 0.25, 0.5], 15)
    c = rng.binomial(2000 * share.astype(int) + 40, 0.015)
    b = rng.binomial(2000, 0.01, size=share.size)
    batch = ratio_eprocess(canary_bad=c, baseline_bad=b, canary_share=share, alpha=0.01, margin=0.05)
    state = new_ratio_state(alpha=0.01, margin=0.05)
    for k in range(share.size):
        if k == 30:  # a controller restart: the state goes through JSON in the resource status
            state = RatioState.from_dict(json.loads(json.dumps(state.to_dict())))
        state = update_ratio(
            state, canary_bad=int(c[k]), baseline_bad=int(b[k]), canary_share=float(share[k])
        )
    assert state == batch.state
    assert state.log_e == batch.log_e
    assert state.ratio_bounds == (batch.ratio_lower, batch.ratio_upper)


def test_a_fail_stays_a_fail_after_the_e_value_falls_back():
    c = [8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    b = [2] + [10] * 14
    r = ratio_eprocess(canary_bad=c, baseline_bad=b, canary_share=0.1, alpha=0.01)
    assert r.crossed_at == 0
    assert r.e_value < r.threshold <= r.max_e_value
    assert decide_ratio(r, tolerance=0.0, min_samples_met=True).decision == Decision.FAIL


def test_no_events_is_inconclusive_not_pass():
    r = ratio_eprocess(canary_bad=[0] * 10, baseline_bad=[0] * 10, canary_share=0.1, alpha=0.01)
    assert r.e_value == 1.0
    assert (r.ratio_lower, r.ratio_upper) == (0.0, math.inf)
    assert r.estimate is None
    d = decide_ratio(r, tolerance=0.5, min_samples_met=True)
    assert d.decision == Decision.INCONCLUSIVE
    assert "no bad events" in d.reason


def test_decisions_pass_only_with_a_bound_below_the_limit_and_the_stage_minimum():
    rng = np.random.default_rng(11)
    c = rng.binomial(5000, 0.01, size=40)
    b = rng.binomial(5000, 0.01, size=40)
    r = ratio_eprocess(canary_bad=c, baseline_bad=b, canary_share=0.5, alpha=0.01)
    assert r.ratio_lower < 1.0 < r.ratio_upper <= 1.2
    assert decide_ratio(r, tolerance=0.2, min_samples_met=True).decision == Decision.PASS
    assert decide_ratio(r, tolerance=0.2, min_samples_met=False).decision == Decision.INCONCLUSIVE
    assert decide_ratio(r, tolerance=0.01, min_samples_met=True).decision == Decision.INCONCLUSIVE


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"canary_bad": [1, 2], "baseline_bad": [1], "canary_share": 0.1}, "canary_bad, baseline_bad"),
    ({"canary_bad": [1], "baseline_bad": [1], "canary_share": 1.2}, "canary_share"),
    ({"canary_bad": [1], "baseline_bad": [1], "canary_share": 0.0}, "canary_share"),
    ({"canary_bad": [1.5], "baseline_bad": [1], "canary_share": 0.1}, "canary_bad"),
    ({"canary_bad": [1], "baseline_bad": [np.nan], "canary_share": 0.1}, "baseline_bad"),
])  # fmt: skip
def test_bad_input_names_the_argument(kwargs, field):
    with pytest.raises(StatsInputError) as err:
        ratio_eprocess(alpha=0.01, **kwargs)
    assert err.value.field == field


def test_state_from_another_version_is_refused():
    data = new_ratio_state(alpha=0.01).to_dict() | {"version": 99}
    with pytest.raises(StatsInputError, match="new_ratio_state"):
        RatioState.from_dict(data)


series = st.lists(
    st.tuples(st.integers(0, 12), st.integers(0, 40), st.sampled_from([0.05, 0.1, 0.25, 0.5])),
    min_size=1,
    max_size=20,
)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(data=series)
def test_bounds_are_ordered_contain_the_estimate_nest_in_alpha_and_invert_under_arm_swap(data):
    c, b, share = (np.array(x) for x in zip(*data, strict=True))
    r = ratio_eprocess(canary_bad=c, baseline_bad=b, canary_share=share, alpha=0.05)
    strict = ratio_eprocess(canary_bad=c, baseline_bad=b, canary_share=share, alpha=0.001)
    assert r.ratio_lower <= r.ratio_upper
    if r.estimate is not None and 0 < r.estimate < math.inf:
        assert r.ratio_lower <= r.estimate <= r.ratio_upper
    assert strict.ratio_lower <= r.ratio_lower and r.ratio_upper <= strict.ratio_upper
    assert strict.max_log_e == r.max_log_e
    # the lattice confidence sequence inverts under an arm swap (the reported bounds add the sticky FAIL at
    # the tolerance on one side only, so they are compared before that adjustment)
    swapped = ratio_eprocess(canary_bad=b, baseline_bad=c, canary_share=1 - share, alpha=0.05)

    def lattice(res):
        s = res.state
        return rm.confidence_bounds(
            np.asarray(s.support_f), math.log(s.threshold), rm.lattice_offsets(s.grid), np.log(s.weights)
        )

    lo, up = lattice(r)
    inv = (1 / up if up > 0 else math.inf, 1 / lo if lo > 0 else math.inf)
    assert lattice(swapped)[0] == pytest.approx(inv[0], rel=1e-9)
    assert lattice(swapped)[1] == pytest.approx(inv[1], rel=1e-9)
    # with no margin, harm of one is safety of the other, now
    assert swapped.state.log_safety == pytest.approx(r.state.log_e, abs=1e-9)


def test_planning_matches_walds_approximation_for_a_single_alternative():
    p, rho, ratio, alpha = 0.01, 0.5, 1.5, 0.01
    theta1, theta0 = rho * ratio / (rho * ratio + 1 - rho), rho
    kl = stats.entropy([theta1, 1 - theta1], [theta0, 1 - theta0])
    wald = math.log(1 / alpha) / kl / (p * (ratio + (1 - rho) / rho))
    assert requests_to_detect(
        baseline_rate=p, canary_share=rho, ratio=ratio, alpha=alpha, grid=[1.5], weights=[1.0]
    ) == pytest.approx(wald, rel=1e-12)
    # docs/statistics.md §6 (bench/detection.py's oracle): the two-sample oracle with β = 0.05 needs ≈ 8,300 canary requests here
    assert wald * ((0.95 * math.log(95) + 0.05 * math.log(0.05 / 0.99)) / math.log(100)) == pytest.approx(
        8300, rel=0.01
    )


def test_planning_needs_more_requests_for_smaller_effects_and_tighter_limits():
    kw = {"baseline_rate": 0.01, "canary_share": 0.1, "alpha": 0.01}
    assert (
        requests_to_detect(ratio=1.5, **kw)
        > requests_to_detect(ratio=2.0, **kw)
        > requests_to_detect(ratio=5, **kw)
    )
    assert (
        requests_needed(limit=1.1, **kw) > requests_needed(limit=1.2, **kw) > requests_needed(limit=2.0, **kw)
    )
    assert requests_needed(limit=1.2, ratio=1.3, **kw) is None


def test_aa_false_alarm_rate_stays_below_alpha_across_stage_changes_and_traffic_swings():
    """Seeded A/A: 4,000 runs x 240 one-minute looks, shares 1% -> 5% -> 25% -> 50%, diurnal traffic and a
    base error rate that moves with it. The harm e-process and the confidence sequence's bounds on r = 1."""
    rng = np.random.default_rng(20261125)
    runs, looks, alpha = 4000, 240, 0.05
    share = np.repeat([0.01, 0.05, 0.25, 0.5], looks // 4)
    traffic = (2000 * (1 + 0.6 * np.sin(np.arange(looks) / 40))).astype(int)
    base = 0.01 * (1 + 0.5 * np.cos(np.arange(looks) / 25))
    nc = np.maximum(1, (traffic * share).astype(int))
    c = rng.binomial(nc, base, size=(runs, looks))
    b = rng.binomial(traffic - nc, base, size=(runs, looks))
    obs_share = nc / traffic
    grid, w = np.asarray(rm.DEFAULT_GRID), np.asarray(rm.DEFAULT_WEIGHTS)
    harm = np.cumsum(rm.log_lik_increments(c, b, obs_share, np.concatenate([[1.0], grid])), axis=1)
    log_e = rm.logsumexp_rows(harm[..., 1:] - harm[..., :1] + np.log(w))
    alarms = np.any(log_e >= math.log(1 / alpha), axis=1)
    assert alarms.mean() <= alpha
    # the confidence sequence excludes the true r = 1 (F(1) = 0) from either side at most 2α of the time
    f_down = np.cumsum(rm.log_lik_increments(c, b, obs_share, 1 / grid), axis=1)
    excluded = (log_e >= math.log(1 / alpha)) | (rm.logsumexp_rows(f_down + np.log(w)) >= math.log(1 / alpha))
    assert np.any(excluded, axis=1).mean() <= 2 * alpha
    # the library's own loop gives the same e-values on a few of these runs
    for i in range(3):
        r = ratio_eprocess(canary_bad=c[i], baseline_bad=b[i], canary_share=obs_share, alpha=alpha)
        assert r.log_path == pytest.approx(log_e[i], rel=1e-9, abs=1e-9)
        assert r.crossed == bool(alarms[i])


def test_the_vectorised_batch_equals_interval_by_interval_updates_bit_for_bit():
    """`ratio_eprocess` sums all intervals at once; `update_ratio` is the definition, one interval at a time.
    Random runs with quiet intervals (no bad events), tiny and large shares, and crossings in the middle."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        n = int(rng.integers(1, 60))
        share = rng.uniform(0.01, 0.6, n)
        c = rng.poisson(rng.uniform(0, 4), n)
        b = rng.poisson(rng.uniform(0, 30), n)
        c[rng.random(n) < 0.2] = 0
        b[c == 0] *= rng.random() < 0.5  # some intervals without any bad event
        batch = ratio_eprocess(canary_bad=c, baseline_bad=b, canary_share=share, alpha=0.01, margin=0.1)
        state, path = new_ratio_state(alpha=0.01, margin=0.1), []
        for k in range(n):
            state = update_ratio(
                state, canary_bad=int(c[k]), baseline_bad=int(b[k]), canary_share=float(share[k])
            )
            path.append(state.log_e)
        assert state == batch.state
        assert np.array_equal(np.array(path), batch.log_path)
