"""Fixed-horizon ratio test, checked against R's documented poisson.test example and scipy's exact tests.

Sources:
- R `?poisson.test` example "eba1977, compare Fredericia to other three cities for ages 55-59":
  `poisson.test(c(11, 6+8+7), c(800, 1083+1050+878))` prints count1 = 11, expected count1 = 6.7174,
  p-value = 0.07967, 95 percent CI 0.8584264 4.2772659, rate ratio 1.971488 (R 4.x).
- scipy.stats.binomtest (one-sided) and scipy.stats.fisher_exact on fixed tables.
"""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from gatekeeper.stats.errors import StatsInputError
from gatekeeper.stats.proportions import conditional_binomial_test


def test_reproduces_r_poisson_test_example():
    t = conditional_binomial_test(canary_bad=11, canary_total=800, baseline_bad=21, baseline_total=3011)
    assert t.ratio == pytest.approx(1.971488, abs=1e-6)
    assert t.ratio_lower == pytest.approx(0.8584264, abs=1e-7)
    assert t.ratio_upper == pytest.approx(4.2772659, abs=1e-7)
    assert t.p_value_two_sided == pytest.approx(0.07967, abs=1e-5)
    assert t.expected_canary_bad == pytest.approx(6.7174, abs=1e-4)


@pytest.mark.parametrize(
    ("c", "nc", "b", "nb", "margin"),
    [(30, 2000, 100, 18000, 0.0), (9, 500, 40, 4500, 0.2), (0, 100, 12, 900, 0.0), (25, 1000, 25, 1000, 0.5)],
)
def test_one_sided_p_value_equals_scipy_binomtest_on_the_canary_share(c, nc, b, nb, margin):
    t = conditional_binomial_test(
        canary_bad=c, canary_total=nc, baseline_bad=b, baseline_total=nb, margin=margin
    )
    share = nc / (nc + nb)
    theta0 = share * (1 + margin) / (share * (1 + margin) + 1 - share)
    assert t.p_value == pytest.approx(
        stats.binomtest(c, c + b, theta0, alternative="greater").pvalue, rel=1e-12
    )


@pytest.mark.parametrize(("c", "nc", "b", "nb"), [(30, 2000, 100, 18000), (3, 40, 1, 60), (0, 10, 5, 10)])
def test_hypergeometric_method_is_fishers_exact_test(c, nc, b, nb):
    t = conditional_binomial_test(
        canary_bad=c, canary_total=nc, baseline_bad=b, baseline_total=nb, method="hypergeometric"
    )
    table = [[c, nc - c], [b, nb - b]]
    assert t.p_value == pytest.approx(stats.fisher_exact(table, alternative="greater").pvalue, rel=1e-12)


def test_binomial_and_fisher_agree_for_rare_events():
    kw = {"canary_bad": 32, "canary_total": 2000, "baseline_bad": 180, "baseline_total": 18000}
    binom = conditional_binomial_test(**kw).p_value
    fisher = conditional_binomial_test(**kw, method="hypergeometric").p_value
    assert binom == pytest.approx(fisher, rel=0.1)


def test_no_bad_events_is_no_evidence_either_way():
    t = conditional_binomial_test(canary_bad=0, canary_total=500, baseline_bad=0, baseline_total=500)
    assert t.p_value == 1.0
    assert (t.ratio_lower, t.ratio_upper) == (0.0, math.inf)
    assert t.ratio is None


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"canary_bad": 5, "canary_total": 4, "baseline_bad": 1, "baseline_total": 10}, "canary_bad"),
    ({"canary_bad": 0, "canary_total": 0, "baseline_bad": 1, "baseline_total": 10}, "canary_total"),
    ({"canary_bad": -1, "canary_total": 4, "baseline_bad": 1, "baseline_total": 10}, "canary_bad"),
    ({"canary_bad": 1, "canary_total": 4, "baseline_bad": 1, "baseline_total": 10, "margin": -0.1}, "margin"),
])  # fmt: skip
def test_bad_counts_are_rejected_naming_the_argument(kwargs, field):
    with pytest.raises(StatsInputError) as err:
        conditional_binomial_test(**kwargs)
    assert err.value.field == field


arms = st.tuples(st.integers(0, 60), st.integers(60, 5000), st.integers(0, 60), st.integers(60, 5000))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(arms=arms, margin=st.sampled_from([0.0, 0.1, 0.5]))
def test_interval_contains_the_estimate_nests_in_confidence_and_inverts_under_arm_swap(arms, margin):
    c, nc, b, nb = arms
    t = conditional_binomial_test(
        canary_bad=c, canary_total=nc, baseline_bad=b, baseline_total=nb, margin=margin
    )
    wide = conditional_binomial_test(
        canary_bad=c, canary_total=nc, baseline_bad=b, baseline_total=nb, margin=margin, confidence=0.99
    )
    assert t.ratio_lower <= t.ratio_upper
    if t.ratio is not None:
        assert t.ratio_lower <= t.ratio * (1 + 1e-9) and t.ratio <= t.ratio_upper * (1 + 1e-9)
    assert wide.ratio_lower <= t.ratio_lower * (1 + 1e-9) and t.ratio_upper <= wide.ratio_upper * (1 + 1e-9)
    swapped = conditional_binomial_test(canary_bad=b, canary_total=nb, baseline_bad=c, baseline_total=nc)
    if t.ratio_lower > 0 and math.isfinite(t.ratio_upper):
        assert swapped.ratio_lower == pytest.approx(1 / t.ratio_upper, rel=1e-6)
        assert swapped.ratio_upper == pytest.approx(1 / t.ratio_lower, rel=1e-6)
    looser = conditional_binomial_test(
        canary_bad=c, canary_total=nc, baseline_bad=b, baseline_total=nb, margin=margin + 0.5
    )
    assert looser.p_value >= t.p_value - 1e-12
