"""Kayenta mode: NetflixACAJudge's classifier and scorer against Kayenta's own test suites.

Sources (Apache-2.0 test data, numbers only):
- spinnaker/kayenta `kayenta-judge/src/test/scala/com/netflix/kayenta/judge/ClassifierSuite.scala`
  (MannWhitneyClassifier with tolerance, confLevel, effect-size and critical thresholds as in each case).
- spinnaker/kayenta `kayenta-judge/src/test/scala/com/netflix/kayenta/judge/ScorerSuite.scala`
  (WeightedSumScorer expected summary scores).
"""

import math

import numpy as np
import pytest

from gatekeeper.stats.errors import StatsInputError
from gatekeeper.stats.kayenta import Label, classify_metric
from gatekeeper.stats.kayenta_score import MetricResult, ScoreClass, score_metrics
from tests.test_stats_mannwhitney import SPARSE_X, SPARSE_Y

PASS_EXPERIMENT = [
    9.7767343120109462, 10.587071850477695, 7.8375506388901766, 9.3243326886113884, 8.3774505409784421,
    8.9359264399606282, 8.2707663324728511, 9.7484308126716925, 11.623746715547156, 9.2753442679633942,
    8.1538047749171518, 10.562020975754294, 13.498135575451835, 11.054419256110332, 6.9538903590055092,
    12.521008342195479, 9.0216358603546443, 4.9234856699531662, 11.251360203607172, 11.598449508040337,
    8.435232204668182, 11.110228516867279, 10.70063380164755, 8.9212773652115249, 10.086167067942661,
    11.42107515483087, 9.3792347813644952, 7.7980320148552593, 10.62339807275746, 11.909642062063739,
]  # fmt: skip
CONTROL = [
    11.1453586774086, 9.9618059885597017, 7.068574306369829, 7.3012661810483657, 9.7944630265656727,
    9.6037918603687302, 6.1867793350339388, 12.345599159550174, 10.371891733859533, 8.6094300785016724,
    9.913162673361084, 10.361375299003466, 14.206800387518818, 10.946153754753301, 10.215876627044048,
    11.739760899484603, 10.907627468626439, 12.823353694464775, 8.1018609771732137, 8.4981616408804932,
    12.113441374697231, 13.272210809932028, 10.114579381663297, 6.9463958767978067, 6.2105278541727778,
    10.160401684903775, 8.3457712066455461, 8.383822063895833, 7.0020205070083765, 10.755757401808442,
]  # fmt: skip
HIGH_EXPERIMENT = [
    20.878412601720026, 21.78550581191622, 19.70828084717019, 15.859946903461562, 19.510058772176841,
    19.392005525270303, 22.926528314912101, 17.156530276709894, 18.655117916226171, 23.422607911610392,
    24.055817684156644, 22.62689958516501, 21.979472967817678, 21.659318607218694, 20.067707574072426,
    22.119570836305414, 16.44037132663307, 21.559622826341268, 21.000181443489218, 17.779369411412663,
    17.806006358943584, 18.537200618386109, 20.555550300210797, 19.552928184468378, 21.771118944087092,
    21.809622806176627, 20.961762909905271, 20.977571577503021, 19.106303205498794, 16.976918966987078,
]  # fmt: skip
LOW_CONTROL = [
    20.758113589510348, 22.802059629464559, 20.612340363492208, 20.973274654749986, 23.469237330498622,
    21.53133988954805, 21.767353687439805, 18.308050730374301, 19.062145167827566, 25.879498436001779,
    18.982629726336128, 19.387920182269266, 18.995398251246982, 24.228420230932805, 20.050985172694688,
    18.2340451091756, 17.870515494460435, 23.058103863806618, 18.400259567501134, 16.971352091177167,
    19.467529066052151, 17.90465423342031, 17.553948617825831, 16.104611843907193, 24.38171081433039,
    15.919294339922635, 20.479409626304697, 19.08307201492406, 17.455788050722866, 18.853826823235142,
]  # fmt: skip
CLES_PASS_EXPERIMENT = [
    0.0, 0.0, 1.46580998e-04, 0.0, 0.0, 0.0, 7.94701987e-05, 0.0, 0.0, 0.0, 2.68889486e-05, 0.0,
    0.0, 2.64935753e-05, 0.0, 0.0, 0.0, 2.61608895e-05, 1.27824931e-04, 0.0, 0.0, 0.0, 2.54511211e-05,
    2.58665287e-05, 7.63339355e-05, 0.0, 2.54239443e-05, 0.0, 0.0, 0.0, 2.61001201e-05, 5.20101940e-05,
    0.0, 2.64452319e-05, 5.27551370e-05, 7.83719533e-05, 5.19467027e-05, 2.58344528e-05, 2.58899676e-05,
    0.0, 2.59497613e-05, 2.57938043e-05, 7.78553448e-05, 2.60593110e-05, 2.61001201e-05, 0.0, 0.0,
    2.59349551e-05, 2.60559160e-05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.58819267e-05, 0.0, 2.58825965e-05,
    2.57572635e-05, 2.56877906e-05,
]  # fmt: skip
CLES_PASS_CONTROL = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.91528191e-05, 0.0, 0.0, 0.0, 2.98284862e-05, 5.99916012e-05,
    0.0, 5.92276712e-05, 0.0, 2.98053709e-05, 0.0, 2.97309350e-05, 5.92153960e-05, 0.0, 0.0, 0.0,
    2.92800047e-05, 0.0, 2.94550810e-05, 0.0, 0.0, 0.0, 5.83958656e-05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 2.88600289e-05, 2.90334756e-05, 2.91740817e-05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.92765758e-05,
    0.0, 0.0, 0.0, 0.0, 0.0, 2.94637596e-05, 5.89136326e-05, 0.0, 0.0, 0.0,
]  # fmt: skip
CLES_HIGH_EXPERIMENT = [
    0.00689808, 0.00568664, 0.00680876, 0.00642045, 0.00561825, 0.00472294, 0.00398378, 0.00392403,
    0.00421201, 0.0047529, 0.00460853, 0.00439888, 0.00561875, 0.01998866, 0.0124369, 0.00624391,
    0.00444361, 0.00442059, 0.00372095, 0.00540736, 0.00715402, 0.00425974, 0.00414409, 0.01172436,
    0.0125959, 0.00371891, 0.00429855, 0.00369876, 0.00325709, 0.00415943, 0.00371754, 0.00445212,
    0.00521721, 0.00443938, 0.00380859, 0.01602997, 0.00788885, 0.0038155, 0.00326921, 0.00336928,
    0.00365917, 0.00333869, 0.00427639, 0.00355911, 0.00381224, 0.00360057, 0.00349305, 0.00401164,
    0.00351947, 0.00356299, 0.003407, 0.00414397, 0.00393346, 0.00413318, 0.00359041, 0.00366314,
    0.00309383, 0.00383733, 0.00363324, 0.00280674,
]  # fmt: skip
CLES_HIGH_CONTROL = [
    0.00081956, 0.00239282, 0.00133685, 0.00094917, 0.00029518, 0.00035344, 0.00048194, 0.00034893,
    0.0003202, 0.00079814, 0.00090881, 0.00072599, 0.00037819, 0.00038286, 0.00057604, 0.00064821,
    0.00032194, 0.0002245, 0.00025202, 0.00071997, 0.00022721, 0.00042578, 0.00042496, 0.00045613,
    0.00037072, 0.0003317, 0.00032889, 0.00032749, 0.00036093, 0.00029285, 0.00038401, 0.00044467,
    0.00071086, 0.00036692, 0.00052079, 0.00074974, 0.00128791, 0.00062046, 0.00086345, 0.00118563,
    0.00103379, 0.00028913, 0.00057628, 0.00057943, 0.00048735, 0.00029409, 0.0002005, 0.00016612,
    0.00089312, 0.00059367, 0.00061706, 0.00163313, 0.00097784, 0.00029305, 0.00058839, 0.00085212,
    0.00048298, 0.00035546, 0.00025866, 0.00038767,
]  # fmt: skip
CLES_LOW_EXPERIMENT = [
    24.24693907, 26.13330099, 22.50056744, 24.36646841, 23.19935673, 19.43801304, 20.99654102,
    18.90793651, 21.31949881, 21.83528381, 21.64211206, 23.13365968, 21.09163134, 19.45540615,
    20.74783158, 22.25527831, 19.82051791, 20.9865487, 19.94450026, 23.2904056, 18.18408424,
    22.13843542, 19.42896044, 19.84140464, 23.91557662, 21.00981557, 21.8594633, 23.11630163,
    22.95700392, 17.80045135,
]  # fmt: skip
CLES_LOW_CONTROL = [
    25.09626848, 26.15032198, 24.88431438, 24.18870163, 22.14684987, 28.01743443, 21.29910501,
    27.24688773, 28.64187535, 27.03504445, 24.67888311, 22.35137878, 27.41640397, 26.00225548,
    23.02118534, 25.99647292, 22.77446912, 25.56704719, 25.57025827, 21.2721602, 23.12987357,
    24.59111604, 27.48865016, 27.21967755, 23.5951111, 22.5429607, 25.83015564, 23.31965305,
    24.3911644, 25.11468194,
]  # fmt: skip
SMALL_HIGH = ([20.0, 22.0, 21.0, 25.0, 30.0], [1.0, 2.2, 1.1, 2.5, 3.0])

SUITE = 0.10, 0.95  # tolerance and confLevel used throughout ClassifierSuite
CASES = [
    # (suite test name, canary, baseline, options, expected label, expected critical)
    ("Pass Metric", PASS_EXPERIMENT, CONTROL, {}, Label.PASS, False),
    ("High Metric", HIGH_EXPERIMENT, CONTROL, {}, Label.HIGH, False),
    ("Low Metric", PASS_EXPERIMENT, LOW_CONTROL, {}, Label.LOW, False),
    ("Directional Test: Increase", PASS_EXPERIMENT, LOW_CONTROL, {"direction": "increase"}, Label.PASS, False),
    ("Directional Test: Decrease", HIGH_EXPERIMENT, CONTROL, {"direction": "decrease"}, Label.PASS, False),
    ("Directional Test: High Metric", HIGH_EXPERIMENT, CONTROL, {"direction": "increase"}, Label.HIGH, False),
    ("Directional Test: Low Metric", PASS_EXPERIMENT, LOW_CONTROL, {"direction": "decrease"}, Label.LOW, False),
    ("High Metric (Large Input)", SPARSE_X, SPARSE_Y, {}, Label.HIGH, False),
    ("Mean Ratio Effect Size: High", *SMALL_HIGH, {"allowed_decrease": 0.8, "allowed_increase": 1.2}, Label.HIGH,
     False),
    ("Mean Ratio Effect Size: Low", PASS_EXPERIMENT, LOW_CONTROL,
     {"direction": "decrease", "allowed_decrease": 0.8, "allowed_increase": 1.2}, Label.LOW, False),
    ("Mean Ratio Effect Size: Pass", [10.0, 12.2, 10.1, 12.5, 23.0], [20.0, 22.0, 21.0, 25.0, 30.0],
     {"allowed_decrease": 0.5, "allowed_increase": 1.0}, Label.PASS, False),
    ("Mean Ratio Effect Size: Pass (Large Input)", SPARSE_X, SPARSE_Y,
     {"allowed_decrease": 1.0, "allowed_increase": 5.0}, Label.PASS, False),
    ("CLES Effect Size: Pass", CLES_PASS_EXPERIMENT, CLES_PASS_CONTROL,
     {"tolerance": 0.2, "confidence": 0.98, "allowed_decrease": 0.5, "allowed_increase": 0.8,
      "effect_size_measure": "cles"}, Label.PASS, False),
    ("CLES Effect Size: High", CLES_HIGH_EXPERIMENT, CLES_HIGH_CONTROL,
     {"tolerance": 0.2, "confidence": 0.98, "allowed_decrease": 0.2, "allowed_increase": 0.8,
      "effect_size_measure": "cles"}, Label.HIGH, False),
    ("CLES Effect Size: Low", CLES_LOW_EXPERIMENT, CLES_LOW_CONTROL,
     {"tolerance": 0.2, "confidence": 0.98, "allowed_decrease": 0.2, "allowed_increase": 0.8,
      "effect_size_measure": "cles"}, Label.LOW, False),
    ("Critical Effect Size: Critical High", *SMALL_HIGH,
     {"critical": True, "critical_decrease": 1.0, "critical_increase": 1.2}, Label.HIGH, True),
    ("Critical Effect Size: Critical Low", [2.0, 2.0, 2.0, 2.0, 3.0], [10.0, 20.2, 10.1, 20.5, 30.0],
     {"critical": True, "critical_decrease": 1.2, "critical_increase": 1.0}, Label.LOW, True),
    ("Critical Effect Size: High", *SMALL_HIGH,
     {"critical": True, "allowed_decrease": 1.0, "allowed_increase": 5.0, "critical_decrease": 1.0,
      "critical_increase": 13.0}, Label.HIGH, False),
    ("Critical Effect Size: Pass", *SMALL_HIGH,
     {"critical": True, "allowed_decrease": 1.0, "allowed_increase": 13.0, "critical_decrease": 1.0,
      "critical_increase": 15.0}, Label.PASS, False),
    ("Critical High (Default Thresholds)", *SMALL_HIGH, {"critical": True}, Label.HIGH, True),
    ("Tied Observations", [1.0, 1.0, 1.0], [1.0, 1.0], {"direction": "decrease"}, Label.PASS, False),
    ("Identical Populations", [1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0], {"direction": "decrease"},
     Label.PASS, False),
    ("Leading Zero Identical Population", [0.0, 1.0, 1.0, 1.0, 1.0], [1.0] * 5, {"direction": "decrease"},
     Label.PASS, False),
    ("Missing Experiment Data", [], [1.0, 2.0, 3.0, 4.0, 5.0], {"direction": "decrease"}, Label.NODATA, False),
    ("Missing Experiment Data: Critical Metric", [], [1.0, 2.0, 3.0, 4.0, 5.0],
     {"direction": "decrease", "critical": True}, Label.NODATA, True),
    ("Majority Tied Observations", [1.0, 1.0, 1.0, 1.0, 10.0], [1.0] * 5, {}, Label.PASS, False),
    ("Tied Ranks", [10.0] * 5, [1.0] * 5, {}, Label.HIGH, False),
    ("Tied Ranks With Zeros", [10.0] * 5, [0.0] * 5, {}, Label.HIGH, False),
    ("Zero Mean: High Metric with Effect Size", [54.9, 54.5, 55.1, 55.6, 57.4], [0.0] * 5,
     {"allowed_decrease": 0.8, "allowed_increase": 1.2}, Label.HIGH, False),
    ("Zero Mean: Low Metric with Effect Size", [0.0] * 5, [54.9, 54.5, 55.1, 55.6, 57.4],
     {"allowed_decrease": 0.8, "allowed_increase": 1.2}, Label.LOW, False),
    ("Zero Mean: Critical Metric",
     [0.05000000074505806, 0.05000000074505806, 0.01666666753590107, 0.01666666753590107, 0.01666666753590107,
      0.05000000074505806, 0.03333333507180214, 0.05000000260770321, 0.05000000260770321, 0.13333333656191826],
     [0.0] * 10, {"nan_strategy": "replace", "critical": True, "critical_decrease": 0.8, "critical_increase": 1.2},
     Label.HIGH, True),
    ("Zero Mean: Pass Metric", [0.0] * 5, [0.0] * 5, {"allowed_decrease": 0.8, "allowed_increase": 1.2},
     Label.PASS, False),
]  # fmt: skip


@pytest.mark.parametrize(("case", "canary", "baseline", "options", "label", "critical"), CASES,
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_classifier_matches_kayenta_classifier_suite(case, canary, baseline, options, label, critical):
    opts = {"tolerance": SUITE[0], "confidence": SUITE[1], **options}
    result = classify_metric(np.array(canary), np.array(baseline), name="m", **opts)
    assert result.label == label
    assert result.critical == critical


def test_zero_baseline_mean_gives_a_nan_deviation_and_zero_zero_gives_one():
    high = classify_metric(
        np.array([54.9, 54.5, 55.1, 55.6, 57.4]), np.zeros(5), tolerance=0.1, confidence=0.95
    )
    assert math.isnan(high.deviation)
    same = classify_metric(np.zeros(5), np.zeros(5))
    assert same.deviation == 1.0


def test_missing_data_never_passes_in_strict_mode_but_does_in_kayenta_replace_mode():
    kayenta = classify_metric(np.array([]), np.arange(1.0, 6.0), nan_strategy="replace", strict=False)
    assert kayenta.label == Label.PASS  # ClassifierSuite "Missing Experiment Data with NaN Replacement"
    strict = classify_metric(np.array([]), np.arange(1.0, 6.0), nan_strategy="replace")
    assert strict.label == Label.NODATA
    both_missing = classify_metric(np.array([]), np.array([]), critical=True)
    assert both_missing.reason  # ClassifierSuite "Missing Data: Reason String"


def test_required_data_on_a_non_critical_metric_is_nodata_fail_metric():
    r = classify_metric(np.array([np.nan, np.nan]), np.array([1.0, 2.0]), must_have_data=True)
    assert r.label == Label.NODATA_FAIL_METRIC


def test_unknown_direction_is_rejected_with_the_allowed_values():
    with pytest.raises(StatsInputError, match="increase, decrease, either"):
        classify_metric(np.array([1.0]), np.array([2.0]), direction="up")


def _m(label, groups, critical=False):
    return MetricResult(name=f"{label}-{groups}", label=label, groups=tuple(groups), critical=critical)


SCORER_CASES = [
    # ScorerSuite test name, metrics, group weights, Kayenta's expected summary score
    ("Single Metric Pass", [_m(Label.PASS, ["g"])], {}, 100.0),
    ("Single Metric Fail", [_m(Label.HIGH, ["g"])], {}, 0.0),
    ("Single group Nodata", [_m(Label.NODATA, ["g"])], {}, 0.0),
    ("Two Groups, one Pass, one Nodata",
     [_m(Label.PASS, ["pass"]), _m(Label.PASS, ["pass"]), _m(Label.NODATA, ["nodata"])], {}, 100.0),
    ("One Group, Two Metrics", [_m(Label.PASS, ["g"]), _m(Label.HIGH, ["g"])], {}, 50.0),
    ("One Group, Three Metrics", [_m(Label.PASS, ["g"]), _m(Label.HIGH, ["g"]), _m(Label.LOW, ["g"])], {}, 33.33),
    ("Two Groups, Three Metrics", [_m(Label.PASS, ["group-1"]), _m(Label.PASS, ["group-1"]),
                                   _m(Label.HIGH, ["group-2"])], {"group-1": 75.0, "group-2": 25.0}, 75.0),
    ("Two Groups, Three Metrics (Equal Weight)", [_m(Label.PASS, ["group-1"]), _m(Label.HIGH, ["group-1"]),
                                                  _m(Label.HIGH, ["group-2"])], {"group-1": 50.0, "group-2": 50.0}, 25.0),
    ("Two Groups, Three Metrics (Equal Weight), one NoData",
     [_m(Label.PASS, ["group-1"]), _m(Label.NODATA, ["group-1"]), _m(Label.HIGH, ["group-2"])],
     {"group-1": 50.0, "group-2": 50.0}, 50.0),
    ("Two Metrics, one good (normal), one fail (critical)",
     [_m(Label.PASS, ["g"]), _m(Label.HIGH, ["g"], critical=True)], {}, 0.0),
    ("Two Metrics, one low (normal), one good (critical)",
     [_m(Label.LOW, ["g"]), _m(Label.PASS, ["g"], critical=True)], {}, 50.0),
    ("Two Metrics, one good (normal), one nodata (critical)",
     [_m(Label.PASS, ["g"]), _m(Label.NODATA, ["g"], critical=True)], {}, 0.0),
    ("Two Groups (Unequal Weight), Four Metrics",
     [_m(Label.HIGH, ["group1"]), _m(Label.LOW, ["group1"]), _m(Label.PASS, ["group1"]), _m(Label.HIGH, ["group2"])],
     {"group1": 15.0, "group2": 85.0}, 5.0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "metrics", "weights", "expected"), SCORER_CASES, ids=[c[0] for c in SCORER_CASES]
)
def test_scorer_matches_kayenta_scorer_suite(case, metrics, weights, expected):
    s = score_metrics(metrics, group_weights=weights, pass_threshold=95, marginal_threshold=75, strict=False)
    assert s.score == pytest.approx(expected, abs=1e-9)


def test_strict_scoring_does_not_let_a_group_without_data_score_100():
    metrics = [_m(Label.PASS, ["pass"]), _m(Label.PASS, ["pass"]), _m(Label.NODATA, ["nodata"])]
    strict = score_metrics(metrics, pass_threshold=95, marginal_threshold=75)
    assert strict.score == 50.0
    assert strict.nodata_groups == ("nodata",)
    assert strict.classification == ScoreClass.FAIL


def test_summary_thresholds_classify_pass_marginal_and_fail():
    one_in_four = [_m(Label.HIGH, ["g"])] + [_m(Label.PASS, ["g"])] * 3
    assert (
        score_metrics(one_in_four, pass_threshold=95, marginal_threshold=75).classification
        == ScoreClass.MARGINAL
    )
    assert (
        score_metrics(one_in_four, pass_threshold=70, marginal_threshold=50).classification == ScoreClass.PASS
    )
    assert (
        score_metrics(one_in_four, pass_threshold=95, marginal_threshold=80).classification == ScoreClass.FAIL
    )


def test_muted_metrics_do_not_count():
    muted = MetricResult(name="noisy", label=Label.HIGH, groups=("g",), muted=True)
    assert (
        score_metrics([_m(Label.PASS, ["g"]), muted], pass_threshold=95, marginal_threshold=75).score == 100.0
    )


# Kayenta's own detector cases (kayenta-judge DetectorSuite: "IQR Detection", "IQR Detect Two Sided",
# "IQR Reduce Sensitivity", "IQR Empty Data"), run on the same inputs with the same options.
KAYENTA_IQR_CASES = [
    ([21.0, 23.0, 24.0, 25.0, 50.0, 29.0, 23.0, 21.0], 1.5, False, [0, 0, 0, 0, 1, 0, 0, 0]),
    ([1.0, 1.0, 1.0, 5.0, -1.0, -1.0, -1.0, -5.0], 1.5, False, [0, 0, 0, 1, 0, 0, 0, 1]),
    ([1.0] * 5 + [20.0] + [1.0] * 5, 3.0, True, [0] * 11),
    ([], 1.5, False, []),
]


@pytest.mark.parametrize(("data", "factor", "reduce", "truth"), KAYENTA_IQR_CASES)
def test_outlier_detection_matches_kayentas_detector_suite(data, factor, reduce, truth):
    from gatekeeper.stats.kayenta import iqr_outliers

    got = iqr_outliers(np.array(data), factor=factor, reduce_sensitivity=reduce)
    assert got.tolist() == [bool(t) for t in truth]


def test_kayentas_percentile_is_type_6_so_short_series_keep_every_value():
    """Commons Math's LEGACY percentile (type 6, clamped) is what makes Kayenta's "IQR Reduce Sensitivity" case
    keep the 20.0; R's default type 7 would put the 99th percentile at 18.1 and remove it."""
    from gatekeeper.stats.kayenta import iqr_outliers

    data = np.array([1.0] * 5 + [20.0] + [1.0] * 5)
    assert np.percentile(data, 99, method="linear") == pytest.approx(18.1)  # type 7: it would be removed
    assert not iqr_outliers(data, factor=3.0).any()
    longer = np.concatenate([np.ones(200), [20.0]])  # 201 points: the 99th percentile is 1, so 20 goes
    assert iqr_outliers(longer, factor=3.0)[-1]
