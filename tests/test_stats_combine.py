"""Several signals under one α: weighted Bonferroni and e-value averaging (Vovk & Wang 2021).

Source: the union bound and Ville's inequality; a seeded A/A simulation with two dependent signals measured
on the same requests checks that averaging keeps P(any alarm) <= α.
"""

import math

import numpy as np
import pytest

from gatekeeper.stats import _ratio_math as rm
from gatekeeper.stats.combine import average_evalues, bonferroni, signal_weights
from gatekeeper.stats.errors import StatsInputError


def test_bonferroni_thresholds_are_one_over_weight_times_alpha():
    r = bonferroni(e_values=[150.0, 250.0, 40.0], alpha=0.01, weights=[2, 1, 1])
    assert r.weights == (0.5, 0.25, 0.25)
    assert r.thresholds == pytest.approx((200.0, 400.0, 400.0))
    assert r.alarms == (False, False, False)
    assert bonferroni(e_values=[250.0, 1.0], alpha=0.01).any_alarm


def test_critical_signals_weigh_more_and_alarm_earlier():
    w = signal_weights(critical=[True, False, False], critical_factor=2.0)
    assert w == pytest.approx([0.5, 0.25, 0.25])
    r = bonferroni(e_values=[250.0, 250.0, 250.0], alpha=0.01, weights=w)
    assert r.alarms == (True, False, False)


def test_average_is_the_weighted_mean_and_names_the_main_contributor():
    r = average_evalues(e_values=[300.0, 0.5, math.inf], alpha=0.01, weights=[1, 1, 0])
    assert r.e_value == pytest.approx(150.25)
    assert r.alarm and r.largest_contributor == 0


def test_averaging_dependent_signals_keeps_the_false_alarm_rate_below_alpha():
    rng = np.random.default_rng(12)
    runs, looks, alpha, share = 3000, 200, 0.05, 0.1
    # two signals on the same requests: errors, and "errors or slow" (a superset, so strongly dependent)
    errors_c = rng.binomial(200, 0.01, size=(runs, looks))
    errors_b = rng.binomial(1800, 0.01, size=(runs, looks))
    slow_c = errors_c + rng.binomial(200, 0.02, size=(runs, looks))
    slow_b = errors_b + rng.binomial(1800, 0.02, size=(runs, looks))
    grid, w = np.asarray(rm.DEFAULT_GRID), np.log(rm.DEFAULT_WEIGHTS)
    e1 = rm.logsumexp_rows(np.cumsum(rm.log_lik_increments(errors_c, errors_b, share, grid), axis=1) + w)
    e2 = rm.logsumexp_rows(np.cumsum(rm.log_lik_increments(slow_c, slow_b, share, grid), axis=1) + w)
    mean = 0.5 * np.exp(e1) + 0.5 * np.exp(e2)
    assert np.any(mean >= 1 / alpha, axis=1).mean() <= alpha


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"e_values": [1.0, -2.0], "alpha": 0.01}, "e_values"),
    ({"e_values": [1.0], "alpha": 1.5}, "alpha"),
    ({"e_values": [1.0, 2.0], "alpha": 0.01, "weights": [1.0]}, "weights"),
])  # fmt: skip
def test_bad_input_names_the_argument(kwargs, field):
    with pytest.raises(StatsInputError) as err:
        average_evalues(**kwargs)
    assert err.value.field == field
