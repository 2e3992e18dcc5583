"""Latency: Howard & Ramdas time-uniform bands, and the sequential bucket tests.

Sources:
- Howard & Ramdas (2022), Bernoulli 28(3), Theorem 2 (A = 0.85; C ≈ 8.123 / 9.284 / 10.943 at α = 0.05 / 0.01 /
  0.001, solved from the theorem's error bound) and gostevehoward/confseq's C++ unit test
  `EXPECT_NEAR(empirical_process_lil_bound(1000, .05, 100, 0.85), 0.08204769, 1e-5)`.
- Time-uniform coverage checked by a seeded simulation (every look counts).
"""

import json
import math

import numpy as np
import pytest

from gatekeeper.stats.decision import Decision
from gatekeeper.stats.errors import StatsInputError
from gatekeeper.stats.quantile_band import cdf_band_radius, compare_quantiles, hr_constant, quantile_bounds
from gatekeeper.stats.sequential import ratio_eprocess
from gatekeeper.stats.sequential_latency import (
    BucketState,
    bucket_eprocess,
    new_bucket_state,
    slow_counts,
    update_buckets,
)

LE = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
BOUNDS = np.array([0.05, 0.1, 0.25, 0.5, 1, 2.5, np.inf])


def _buckets(rng, n, scale, size=None):
    """Cumulative bucket counts of exponential latencies (mean `scale`) per interval."""
    x = rng.exponential(scale, size=(size or 1, n))
    return np.stack([(x <= b).sum(axis=1) for b in BOUNDS], axis=1)


@pytest.mark.parametrize(("alpha", "expected"), [(0.05, 8.123), (0.01, 9.284), (0.001, 10.943)])
def test_howard_ramdas_constant_matches_the_paper(alpha, expected):
    assert hr_constant(alpha) == pytest.approx(expected, abs=5e-4)


def test_band_radius_matches_confseq_reference_value():
    assert cdf_band_radius(1000, alpha=0.05, t_min=100) == pytest.approx(0.08204769, abs=1e-5)
    assert cdf_band_radius(99, alpha=0.05, t_min=100) == math.inf


def test_quantile_bounds_cover_the_true_quantile_at_every_look():
    rng = np.random.default_rng(5)
    q, alpha, scale = 0.9, 0.1, 0.2
    true_q = -scale * math.log(1 - q)  # 0.46: between the 0.25 and 0.5 bounds
    misses = 0
    for _ in range(200):
        cum = np.cumsum(_buckets(rng, 40, scale, size=60), axis=0)
        for row in cum[2:]:
            lo, hi = quantile_bounds(q, le=LE, cumulative=row, alpha=alpha, t_min=100)
            if not (lo < true_q <= hi):
                misses += 1
                break
    assert misses / 200 <= alpha


def test_quantile_comparison_fails_a_slower_canary_and_passes_an_equal_one():
    rng = np.random.default_rng(8)
    baseline = _buckets(rng, 20000, 0.1)[0]
    slow = _buckets(rng, 4000, 0.3)[0]
    same = _buckets(rng, 4000, 0.1)[0]
    fail = compare_quantiles(0.9, le=LE, canary_cumulative=slow, baseline_cumulative=baseline, alpha=0.01)
    assert fail.decision == Decision.FAIL
    assert fail.canary_lower >= fail.baseline_upper
    # bucket resolution: p75 = 0.14 s sits between the 0.1 and 0.25 bounds, so only a 2.5x tolerance can pass
    ok = compare_quantiles(
        0.75, le=LE, canary_cumulative=same, baseline_cumulative=baseline, alpha=0.01, tolerance=1.5
    )
    assert ok.decision == Decision.PASS
    early = compare_quantiles(
        0.9, le=LE, canary_cumulative=slow // 100, baseline_cumulative=baseline, alpha=0.01
    )
    assert early.decision == Decision.INCONCLUSIVE


def test_slow_fraction_feeds_the_ratio_e_process_and_catches_a_slow_canary():
    rng = np.random.default_rng(9)
    canary = _buckets(rng, 100, 0.25, size=30)
    baseline = _buckets(rng, 900, 0.15, size=30)
    c, b, share, n_c = slow_counts(le=LE, canary_buckets=canary, baseline_buckets=baseline, threshold=0.5)
    assert share == pytest.approx(np.full(30, 0.1))
    assert n_c.sum() == 3000
    r = ratio_eprocess(canary_bad=c, baseline_bad=b, canary_share=share, alpha=0.01)
    assert r.crossed
    assert r.ratio_lower > 1.5  # true ratio of P(X > 0.5): exp(-2) / exp(-10/3) = 3.8


def test_bucket_e_process_batch_equals_incremental_and_stays_quiet_in_a_and_a():
    rng = np.random.default_rng(10)
    canary = _buckets(rng, 100, 0.15, size=40)
    baseline = _buckets(rng, 900, 0.15, size=40)
    batch = bucket_eprocess(
        le=LE, canary_buckets=canary, baseline_buckets=baseline, alpha=0.01, thresholds=[0.25, 0.5, 1.0]
    )
    state = new_bucket_state(le=LE, alpha=0.01, thresholds=[0.25, 0.5, 1.0])
    for k in range(40):
        if k == 20:
            state = BucketState.from_dict(json.loads(json.dumps(state.to_dict())))
        state = update_buckets(state, le=LE, canary_cumulative=canary[k], baseline_cumulative=baseline[k])
    assert state == batch.state
    assert not batch.crossed
    slower = bucket_eprocess(
        le=LE, canary_buckets=_buckets(rng, 100, 0.3, size=40), baseline_buckets=baseline, alpha=0.01
    )
    assert slower.crossed


def test_threshold_off_the_bucket_bounds_is_refused_with_the_choices():
    z = np.zeros((2, len(LE)))
    with pytest.raises(StatsInputError, match=r"0\.05, 0\.1, 0\.25"):
        slow_counts(le=LE, canary_buckets=z, baseline_buckets=z, threshold=0.3)
