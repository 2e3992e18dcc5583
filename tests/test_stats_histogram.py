"""Histogram buckets: PromQL's histogram_quantile / histogram_fraction and the fixed-horizon comparison.

Sources:
- prometheus/prometheus `promql/promqltest/testdata/histograms.test` (classic `_bucket` series evaluated at
  50m and 7m: the expected values below are copied from its `eval` lines).
- scipy.stats.mannwhitneyu on the same requests expanded from bucket counts; scipy.stats.binomtest.
"""

import math

import numpy as np
import pytest
from scipy import stats

from gatekeeper.stats.errors import StatsInputError
from gatekeeper.stats.histogram import compare_buckets, count_above, fraction_above, quantile_from_buckets

POSITIVE = (["0.1", ".2", "1e0", "+Inf"], [50, 70, 110, 120])  # testhistogram{start="positive"} at 50m
NEGATIVE = (["-.2", "-0.1", "0.3", "+Inf"], [10, 20, 20, 30])  # testhistogram{start="negative"} at 50m
MIDDLE = (["0", "2", "4", "6", "+Inf"], [0, 10, 20, 30, 30])  # testhistogram2 at 50m


@pytest.mark.parametrize(("hist", "q", "expected"), [
    (POSITIVE, 0.0, 0.0), (POSITIVE, 0.2, 0.048), (POSITIVE, 0.5, 0.15), (POSITIVE, 0.8, 0.72), (POSITIVE, 1.0, 1.0),
    (NEGATIVE, 0.0, -0.2), (NEGATIVE, 0.2, -0.2), (NEGATIVE, 0.5, -0.15), (NEGATIVE, 0.8, 0.3), (NEGATIVE, 1.0, 0.3),
    (MIDDLE, 1 / 6, 1.0), (MIDDLE, 0.5, 3.0), (MIDDLE, 5 / 6, 5.0),
    ((["0.1", "0.2", "+Inf"], [100, 190, 250]), 0.3, 0.075),  # sum by (le) of request_duration_seconds_bucket
    ((["0.1", "0.2", "+Inf"], [100, 190, 250]), 0.5, 0.1277777777777778),
    ((["0.1", "0.2", "+Inf"], [30, 40, 60]), 0.3, 0.06),  # job2/ins1
])  # fmt: skip
def test_quantiles_match_promql_histogram_quantile(hist, q, expected):
    le, cum = hist
    assert quantile_from_buckets(q, le=le, cumulative=cum) == pytest.approx(expected, abs=1e-12)


def test_quantile_edge_cases_follow_promql():
    le, cum = POSITIVE
    assert quantile_from_buckets(-0.1, le=le, cumulative=cum) == -math.inf
    assert quantile_from_buckets(1.01, le=le, cumulative=cum) == math.inf
    assert math.isnan(quantile_from_buckets(float("nan"), le=le, cumulative=cum))
    assert math.isnan(quantile_from_buckets(0.5, le=le, cumulative=[0, 0, 0, 0]))
    # mixed spellings of one bound merge (histograms.test "mixed" series), non-monotonic counts are forced up
    assert quantile_from_buckets(
        0.5, le=["0.1", "0.2", "2e-1", "+Inf"], cumulative=[1, 1, 1, 4]
    ) == pytest.approx(quantile_from_buckets(0.5, le=["0.1", "0.2", "+Inf"], cumulative=[1, 2, 4]))
    assert quantile_from_buckets(0.5, le=["0.1", "0.2", "+Inf"], cumulative=[5, 3, 10]) == pytest.approx(0.1)


def test_fraction_interpolates_like_promql_histogram_fraction():
    le, cum = MIDDLE
    assert 1 - fraction_above(3.5, le=le, cumulative=cum) == pytest.approx(0.5833333333333334)
    assert 1 - fraction_above(4, le=le, cumulative=cum) == pytest.approx(0.6666666666666666)
    positive3 = (["0", "0.1", ".2", "1e0", "+Inf"], [0, 50, 70, 110, 110])  # testhistogram3 positive
    assert 1 - fraction_above(0.2, le=positive3[0], cumulative=positive3[1]) == pytest.approx(
        0.6363636363636364
    )


def test_count_above_needs_a_bucket_bound_and_says_which_ones_exist():
    le, cum = POSITIVE
    assert count_above(0.2, le=le, cumulative=cum) == 50
    with pytest.raises(StatsInputError, match=r"0\.1, 0\.2, 1"):
        count_above(0.3, le=le, cumulative=cum)


def test_missing_inf_bucket_is_an_input_error():
    with pytest.raises(StatsInputError, match="Inf"):
        compare_buckets(le=["0.1", "0.2"], canary_counts=[1, 2], baseline_counts=[1, 2])


def test_rank_test_on_buckets_equals_scipy_mann_whitney_on_the_expanded_requests():
    le = ["0.1", "0.2", "0.5", "+Inf"]
    canary, baseline = [10, 30, 45, 50], [30, 60, 75, 80]
    r = compare_buckets(le=le, canary_counts=canary, baseline_counts=baseline, threshold=0.2, quantile=0.9)
    x = np.repeat(np.arange(4), np.diff(canary, prepend=0))
    y = np.repeat(np.arange(4), np.diff(baseline, prepend=0))
    ref = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic", use_continuity=True)
    assert r.u == ref.statistic
    assert r.p_value_slower == pytest.approx(ref.pvalue, rel=1e-12)
    assert r.slow_test.p_value == pytest.approx(
        stats.binomtest(20, 40, 50 / 130, alternative="greater").pvalue
    )
    assert (r.canary_fraction_above, r.baseline_fraction_above) == (0.4, 0.25)
    assert r.canary_quantile == pytest.approx(0.5) and r.baseline_quantile == pytest.approx(0.44)


def test_same_distribution_is_not_significantly_slower():
    le = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"]
    r = compare_buckets(
        le=le,
        canary_counts=[40, 70, 90, 96, 99, 100],
        baseline_counts=[400, 700, 900, 960, 990, 1000],
        threshold=0.25,
    )
    assert r.p_value_slower > 0.4
    assert r.cles == pytest.approx(0.5)
    assert r.slow_test.ratio == pytest.approx(1.0)
