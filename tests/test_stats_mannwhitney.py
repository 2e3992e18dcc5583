"""Mann–Whitney with R's interval, checked against R's numbers (via Kayenta's MannWhitneySuite) and scipy.

Sources:
- spinnaker/kayenta `kayenta-mannwhitney/src/test/scala/.../MannWhitneySuite.scala`: "Tie out with R Version",
  "(Large)" and "Intermediate Values": expected numbers produced by R's
  `wilcox.test(x, y, conf.int = TRUE, exact = FALSE, correct = TRUE)` (x = experiment, y = control).
- scipy.stats.mannwhitneyu(method="asymptotic", use_continuity=True) for U and the p-value.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from gatekeeper.stats.errors import StatsInputError
from gatekeeper.stats.mannwhitney import hodges_lehmann, mann_whitney, wilcoxon_z

# MannWhitneySuite "Tie out with R Version" (R: wilcox.test(experiment, control, conf.int=TRUE, exact=FALSE))
R_CONTROL = [
    1.5, 6.0, 5.0, 2.5, 2.5, 2.0, 2.0, 3.5, 3.0, 3.0, 3.0, 2.0, 3.0, 8.0, 4.0, 2.5, 3.0, 2.5, 2.5, 2.0,
    2.5, 2.0, 2.0, 2.5, 3.5, 3.0, 1.5, 5.0, 2.5, 5.5, 2.0, 2.5, 3.5, 2.0, 2.5, 4.0, 2.0, 2.0, 2.0, 2.0,
    5.5, 4.5, 4.0, 3.0, 3.0, 3.5, 2.5, 3.0, 2.5, 4.0, 6.0, 2.0, 5.0, 6.0, 3.5, 3.0, 54.5, 3.0, 5.0, 6.0,
    3.5, 4.5, 2.5, 2.0, 6.0, 5.0, 2.5, 3.5, 2.0, 3.0, 2.5, 3.5, 3.5, 2.5, 3.0, 4.5, 3.0, 15.5, 5.0, 2.5,
    3.0, 4.0, 3.5, 4.0, 4.0, 2.0, 4.5, 2.5, 4.0, 3.0,
]  # fmt: skip
R_EXPERIMENT = [
    2.5, 2.5, 2.0, 2.5, 3.5, 2.0, 3.5, 1.5, 3.0, 3.0, 2.5, 3.5, 2.0, 2.5, 2.0, 2.0, 5.0, 3.0, 2.0, 1.5,
    2.0, 4.0, 3.0, 2.5, 3.0, 2.0, 2.0, 2.0, 2.5, 3.5, 1.5, 1.5, 3.5, 2.0, 2.5, 2.5, 3.0, 3.5, 2.5, 6.5,
    2.5, 4.0, 2.5, 3.0, 2.5, 6.5, 2.5, 3.0, 1.5, 2.0, 2.5, 3.0, 7.5, 1.5, 2.0, 4.0, 2.5, 2.0, 2.5, 3.5,
    4.0, 2.5, 3.0, 2.5, 2.0, 3.5, 3.0, 16.5, 3.0, 3.0, 7.0, 4.5, 5.0, 2.0, 3.5, 6.0, 1.5, 3.0, 2.5, 4.0,
    3.0, 1.5, 5.0, 3.0, 2.5, 5.5, 3.0, 1.5, 2.5, 6.0,
]  # fmt: skip

# MannWhitneySuite "Tie out with R Version (Large)", conf.level = 0.98
R_LARGE_EXPERIMENT = [
    1.5, 2.0, 5.0, 1.5, 1.5, 8.5, 1.0, 1.0, 2.0, 1.0, 1.5, 0.5, 2.0, 1.5, 2.0, 1.5, 1.0, 2.5, 1.5, 1.5,
    2.0, 1.5, 1.5, 1.5, 2.0, 2.0, 1.0, 5.5, 1.5, 2.0, 1.5, 1.5, 1.0, 2.5, 1.0, 2.0, 1.5, 1.5, 2.0, 2.0,
    1.5, 1.5, 1.0, 1.0, 2.0, 0.5, 1.5, 0.5, 3.5, 1.5, 3.0, 19.0, 0.5, 1.5, 0.5, 1.5, 2.0, 1.5, 1.5, 1.5,
    1.5, 2.0, 1.5, 2.0, 2.0, 1.5, 1.0, 1.5, 1.0, 2.0, 1.0, 2.0, 1.5, 1.5, 3.0, 2.0, 1.5, 1.5, 0.5, 2.0,
    1.5, 1.0, 2.0, 1.0, 1.0, 2.0, 1.0, 2.0, 1.5, 1.0, 1.0, 2.0, 1.5, 1.5, 1.5, 0.5, 1.5, 1.5, 0.5, 1.0,
    1.5, 1.5, 1.5, 1.0, 2.0, 2.0, 2.0, 1.5, 1.0, 1.5, 1.0, 1.0, 1.5, 3.5, 2.0, 1.5, 1.0, 2.0, 1.5, 5.5,
    0.5, 2.0, 3.5, 1.5, 1.0, 2.0, 0.5, 2.5, 1.0, 1.5, 0.5, 2.0, 2.0, 1.0, 0.5, 1.5, 1.0, 1.5, 0.5, 0.5,
    1.0, 1.5, 1.0, 1.5, 0.5, 1.5, 1.0, 1.0, 0.5, 1.0, 0.5, 4.0, 1.0, 1.5, 2.0, 5.5, 1.5, 0.5, 2.0, 1.0,
    1.5, 1.0, 1.5, 1.5, 1.0, 1.5, 1.5, 1.5, 1.5, 1.5, 1.5, 2.0, 0.5, 1.5, 1.0, 2.0, 1.0, 1.0, 0.5, 1.0,
]  # fmt: skip
R_LARGE_CONTROL = [
    1.5, 1.5, 1.0, 2.0, 1.5, 1.5, 1.5, 2.0, 1.0, 1.0, 2.0, 1.5, 1.5, 1.0, 1.5, 1.5, 1.5, 1.5, 1.5, 2.0,
    1.0, 1.5, 3.0, 2.0, 1.0, 1.5, 1.5, 1.5, 2.0, 1.5, 1.0, 1.0, 1.5, 2.5, 2.0, 0.0, 1.0, 2.0, 2.0, 1.5,
    3.0, 2.0, 1.0, 2.5, 0.5, 1.5, 0.5, 2.5, 2.0, 1.5, 1.5, 2.0, 1.0, 4.5, 2.5, 0.5, 2.5, 1.5, 1.5, 1.0,
    2.0, 1.0, 2.5, 1.5, 2.0, 1.5, 3.0, 1.5, 1.5, 1.5, 1.5, 2.0, 1.0, 2.5, 1.0, 1.5, 2.5, 1.5, 2.5, 2.0,
    1.5, 1.5, 1.5, 2.5, 1.0, 7.5, 1.5, 3.0, 5.5, 1.0, 1.5, 2.0, 1.0, 1.5, 2.5, 2.5, 1.0, 1.0, 2.5, 1.5,
    1.5, 3.0, 4.0, 1.0, 1.5, 2.0, 1.5, 1.5, 1.5, 2.5, 1.5, 3.5, 2.5, 1.5, 2.0, 1.0, 4.0, 1.5, 1.0, 1.5,
    2.5, 2.5, 2.0, 2.5, 1.5, 1.5, 2.0, 1.0, 1.5, 2.0, 1.5, 1.0, 2.5, 1.5, 1.5, 2.0, 2.0, 1.0, 1.5, 2.5,
    0.5, 2.0, 2.5, 2.0, 1.0, 2.0, 0.5, 1.5, 1.0, 2.5, 1.0, 1.5, 1.0, 7.0, 1.0, 3.5, 1.5, 2.0, 1.5, 1.5,
    2.0, 3.0, 1.5, 1.5, 2.0, 1.5, 2.0, 1.5, 4.0, 2.0, 1.5, 1.5, 1.5, 1.5, 1.5, 0.5, 2.0, 1.0, 1.5, 0.5,
]  # fmt: skip

# MannWhitneySuite "Intermediate Values / Variables" (also ClassifierSuite "High Metric (Large Input)")
SPARSE_X = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.6666666666666572, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    3.7037037037036811, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5625000000000142, 0.0, 0.0, 0.0, 0.0,
    3.3333333333333428, 0.0, 1.7543859649122737, 0.0, 1.8518518518518476, 0.0, 0.0, 1.8518518518518476,
    0.0, 0.0, 1.5151515151515156, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.7857142857142776,
    1.3333333333333286, 0.0, 3.1250000000000142, 1.9607843137255117, 1.4492753623188293,
    2.4390243902438868, 1.6393442622950687, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.6129032258064484,
    1.9607843137255117, 1.5873015873015817, 0.0, 0.0, 2.8169014084507182, 0.0, 0.0, 3.0303030303030454,
    0.0, 0.0, 3.3898305084745743, 0.0, 0.0, 1.234567901234584, 0.0, 0.0, 0.0, 0.0, 1.7241379310344769,
    0.0, 0.0, 0.0, 0.0, 1.6949152542372872, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.470588235294116, 0.0,
    0.0, 1.3698630136986196, 3.225806451612911, 1.7543859649122879, 3.4482758620689538, 0.0,
    3.3333333333333428, 0.0, 0.0, 0.0, 1.818181818181813, 0.0, 0.0, 1.4285714285714448, 0.0, 0.0,
    1.8867924528301927, 2.0000000000000284, 0.0, 0.0, 0.0, 2.985074626865682, 0.0, 0.0,
    1.6666666666666714, 0.0, 0.0, 1.5625, 1.9230769230769198, 0.0, 1.8518518518518619, 0.0,
    2.7027027027027088, 0.0, 0.0, 0.0, 1.3513513513513544, 0.0, 1.818181818181813, 0.0,
    1.6666666666666572, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.818181818181813, 0.0, 1.4285714285714164,
    0.0, 0.0, 4.1095890410959015, 0.0, 0.0, 0.0, 1.8518518518518619, 0.0, 0.0, 1.8518518518518476,
    1.3888888888888857, 0.0, 0.0, 0.0, 0.0, 1.8867924528301785, 1.4285714285714164, 0.0, 0.0, 1.5625,
    1.8867924528301927, 0.0, 0.0, 0.0, 0.0, 2.040816326530603, 1.818181818181813, 0.0, 0.0,
    1.6393442622950687, 0.0, 1.7241379310344769, 1.5151515151515156, 2.564102564102555, 0.0, 0.0, 0.0,
    0.0, 5.5555555555555571, 0.0, 0.0, 4.0816326530612059, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    3.5714285714285836, 0.0, 2.040816326530603, 3.1746031746031633, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0,
]  # fmt: skip
SPARSE_Y = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5625000000000142, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 1.3888888888888857, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5384615384615614, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.4925373134328339, 0.0, 0.0, 0.0,
    1.6949152542373014, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    1.470588235294116, 0.0, 0.0, 0.0, 0.0, 1.7543859649122879, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    1.8518518518518619, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    1.6393442622950687, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.7241379310344769, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5873015873015817, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.4925373134328339, 0.0, 0.0, 0.0,
    3.1249999999999858, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.4925373134328339, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    2.9850746268656536, 0.0, 2.5000000000000284, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 1.7857142857142776, 0.0, 0.0, 0.0,
]  # fmt: skip

E = 1e-6  # MannWhitneySuite's tolerance for interval ends


def test_interval_ties_out_with_r_wilcox_test_at_95_percent():
    r = mann_whitney(np.array(R_EXPERIMENT), np.array(R_CONTROL), confidence=0.95)
    assert r.lower == pytest.approx(-0.500002521696696, abs=E)
    assert r.upper == pytest.approx(-3.486287505871302e-5, abs=E)
    assert r.estimate == pytest.approx(-0.4999393907180323, abs=1e-4)  # R's own uniroot tol is 1e-4


def test_interval_ties_out_with_r_wilcox_test_on_the_large_sample_at_98_percent():
    r = mann_whitney(np.array(R_LARGE_EXPERIMENT), np.array(R_LARGE_CONTROL), confidence=0.98)
    assert r.lower == pytest.approx(-0.4999173250549087, abs=E)
    assert r.upper == pytest.approx(-6.912685789769486e-6, abs=E)
    assert r.estimate == pytest.approx(-3.45044082729315e-5, abs=1e-4)


def test_intermediate_wilcoxon_values_match_r():
    x, y = np.array(SPARSE_X), np.array(SPARSE_Y)
    mu_min, mu_max = x.min() - y.max(), x.max() - y.min()
    assert mu_min == pytest.approx(-3.124999999999986, abs=E)
    assert mu_max == pytest.approx(5.555555555555557, abs=E)
    zq = stats.norm.ppf(0.975)
    assert zq == pytest.approx(1.9599639845400536, abs=E)
    assert wilcoxon_z(mu_min, zq, x, y) == pytest.approx(17.090968923762254, abs=E)
    assert wilcoxon_z(mu_max, zq, x, y) == pytest.approx(-20.997687930433106, abs=E)
    assert wilcoxon_z(mu_min, -zq, x, y) == pytest.approx(21.01089689284236, abs=E)
    assert wilcoxon_z(mu_max, -zq, x, y) == pytest.approx(-17.077759961353, abs=E)
    r = mann_whitney(x, y, confidence=0.95)
    assert r.lower == pytest.approx(3.521755377702165e-5, abs=E)
    assert r.upper == pytest.approx(2.02456461662334e-5, abs=E)
    assert r.estimate == pytest.approx(2.6279243045155653e-5, abs=E)


def test_u_and_p_value_match_scipy_asymptotic_test_with_continuity():
    rng = np.random.default_rng(7)
    x = np.round(rng.normal(1.0, 1.0, 23), 1)
    y = np.round(rng.normal(0.4, 1.0, 31), 1)
    ref = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
    r = mann_whitney(x, y)
    assert r.u == pytest.approx(ref.statistic)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert r.cles == pytest.approx(ref.statistic / (x.size * y.size))


def test_hodges_lehmann_is_the_median_of_pairwise_differences_and_close_to_rs_estimate():
    x = np.array([0.80, 0.83, 1.89, 1.04, 1.45, 1.38, 1.91, 1.64, 0.73, 1.46])
    y = np.array([1.15, 0.88, 0.90, 0.74, 1.21])
    assert hodges_lehmann(x, y) == pytest.approx(np.median([a - b for a in x for b in y]))
    r = mann_whitney(x, y, confidence=0.95)
    assert r.lower <= r.estimate <= r.upper
    assert abs(r.estimate - r.hodges_lehmann) < 0.05


def test_constant_arms_give_the_exact_shift_instead_of_rs_error():
    r = mann_whitney(np.full(5, 10.0), np.full(5, 1.0))
    assert r.all_tied
    assert (r.lower, r.estimate, r.upper) == (9.0, 9.0, 9.0)
    assert r.u == 25.0


def test_empty_or_nan_input_is_rejected_naming_the_argument():
    with pytest.raises(StatsInputError, match="canary"):
        mann_whitney(np.array([]), np.array([1.0]))
    with pytest.raises(StatsInputError, match="baseline"):
        mann_whitney(np.array([1.0]), np.array([np.nan, 2.0]))


samples = st.lists(st.integers(min_value=-20, max_value=20), min_size=2, max_size=25)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(x=samples, y=samples)
def test_interval_is_ordered_nested_in_confidence_and_antisymmetric(x, y):
    a, b = np.array(x, dtype=float) / 4, np.array(y, dtype=float) / 4
    if np.all(a == a[0]) and np.all(b == b[0]):
        return
    r90 = mann_whitney(a, b, confidence=0.90)
    r99 = mann_whitney(a, b, confidence=0.99)
    assert r90.lower <= r90.upper
    assert r99.lower <= r90.lower + 1e-3 and r90.upper <= r99.upper + 1e-3
    swapped = mann_whitney(b, a, confidence=0.90)
    assert swapped.lower == pytest.approx(-r90.upper, abs=2e-4)
    assert swapped.upper == pytest.approx(-r90.lower, abs=2e-4)
    assert swapped.p_value == pytest.approx(r90.p_value)
