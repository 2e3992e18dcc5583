"""Keptn-style scoring (`mode: keptn`): pass/warning criteria per signal, weights, key objectives, a total score.

Rules (Keptn lighthouse-service `evaluate_sli_handler.go` and the slo.yaml reference; where gatekeeper differs,
it is stricter and says so in the reason):

- A criterion is `<op><value>` with op in `<`, `<=`, `=`, `>=`, `>`. A value with a sign (`+10`, `-5`) or a
  `%` suffix is relative: Keptn compares with previous evaluations, gatekeeper with the baseline arm over
  the same window (`<=+10%`: canary <= baseline * 1.10; `<=+10`: canary <= baseline + 10).
- Entries of `passCriteria` / `warningCriteria` are AND-ed; one entry may hold alternatives joined by `||`
  (Keptn's several `- criteria:` blocks, OR-ed, become `a || b` entries).
- Pass scores the signal's weight, warning half of it, fail 0. The maximum is the sum of the weights of the
  voting signals; the total is achieved / maximum in percent. Dry-run signals are Keptn's informational SLIs:
  shown, never scored.
- total >= `scoring.passScore` -> PASS, >= `scoring.marginalScore` -> INCONCLUSIVE (Keptn "warning": a human
  decides), else FAIL. A failing key objective (`key: true`) fails the gate whatever the score.

Stricter than Keptn, on purpose: no value (canary or, for a relative criterion, baseline) is NODATA and the
gate cannot pass (Keptn passes a relative criterion without comparison data); a voting signal without pass
criteria never passes (Keptn passes a gate whose objectives have no criteria with score 100); the gate is
FAIL only when the evidence alone proves it (the score would fail even if every signal without data passed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypedDict

from gatekeeper.judge.aggregate import Judgement
from gatekeeper.spec.evidence import KeptnEvidence, KeptnStatus
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.outcome import Effect, SignalOutcome, Verdict
from gatekeeper.spec.signals import Signal
from gatekeeper.spec.window import Window

__all__ = ["Criterion", "KeptnValues", "parse_criteria", "parse_criterion", "score_gate"]

_CRITERION = re.compile(r"^(<=|>=|<|>|=)([+-]?)(\d+(?:\.\d*)?|\.\d+)(%?)$")
_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}


class KeptnValues(TypedDict, total=False):
    """One signal's fetched SLI values as `score_gate` receives them (every key optional)."""

    canary: float | None
    baseline: float | None
    queries: dict[str, str]
    problem: str | None  # the fetch failed or the answer was unusable: the signal is an ERROR
    waiting: str | None  # e.g. in its initial delay: not scored yet
    same_query: bool  # canary and baseline asked the same query (no ${selector}): nothing relative to compare


@dataclass(frozen=True)
class Criterion:
    """One Keptn criterion. `relative`: compared with the baseline (a sign or a `%`)."""

    text: str
    op: str
    value: float
    sign: str  # "+", "-" or "" (absolute)
    percent: bool

    @property
    def relative(self) -> bool:
        return bool(self.sign) or self.percent

    def target(self, baseline: float | None) -> float | None:
        if not self.relative:
            return self.value
        if baseline is None:
            return None
        up = self.sign != "-"
        if self.percent:
            return baseline * (100.0 + self.value) / 100.0 if up else baseline * (100.0 - self.value) / 100.0
        return baseline + self.value if up else baseline - self.value

    def holds(self, canary: float, baseline: float | None) -> bool | None:
        t = self.target(baseline)
        return None if t is None else _OPS[self.op](canary, t)


def parse_criterion(text: str) -> Criterion:
    """Parse `<=+10%`, `<600`, `>=-5%`…; ValueError naming the accepted form otherwise."""
    compact = str(text).replace(" ", "")
    m = _CRITERION.match(compact)
    if not m:
        raise ValueError(
            f"'{text}' is not a Keptn criterion: write <op><value> with op <, <=, =, >=, > and an optional "
            "sign and %, e.g. '<600' or '<=+10%'"
        )
    op, sign, number, pct = m.groups()
    return Criterion(text=compact, op=op, value=float(number), sign=sign, percent=bool(pct))


def parse_criteria(entries: list[str]) -> list[tuple[Criterion, ...]]:
    """AND-ed entries, each a `||`-joined alternative of criteria."""
    return [tuple(parse_criterion(part) for part in entry.split("||")) for entry in entries]


def _satisfied(
    cnf: list[tuple[Criterion, ...]], canary: float, baseline: float | None
) -> tuple[bool | None, list[dict[str, Any]]]:
    """True/False, or None when a relative criterion needed a baseline value that is missing."""
    targets: list[dict[str, Any]] = []
    result: bool | None = True
    for alternatives in cnf:
        any_true, unknown = False, False
        for c in alternatives:
            ok = c.holds(canary, baseline)
            targets.append({"criteria": c.text, "target": c.target(baseline), "violated": ok is False})
            any_true |= ok is True
            unknown |= ok is None
        if not any_true:
            if unknown and result is not False:
                result = None
            elif not unknown:
                result = False
    return result, targets


@dataclass(frozen=True)
class _Scored:
    outcome: SignalOutcome
    score: float
    maximum: float
    status: KeptnStatus
    key: bool


def _score_signal(
    signal: Signal,
    canary: float | None,
    baseline: float | None,
    *,
    queries: dict[str, str],
    problem: str | None,
    waiting: str | None,
) -> _Scored:
    weight = 0.0 if signal.dry_run else float(signal.weight)

    def done(
        status: KeptnStatus,
        verdict: Verdict,
        reason: str,
        score: float = 0.0,
        *,
        pass_targets: list[dict[str, Any]] | None = None,
        warning_targets: list[dict[str, Any]] | None = None,
    ) -> _Scored:
        evidence = KeptnEvidence(
            status=status,
            score=score,
            max=weight,
            pass_targets=None if pass_targets is None else tuple(pass_targets),
            warning_targets=None if warning_targets is None else tuple(warning_targets),
        )
        out = SignalOutcome.of(
            signal,
            verdict,
            reason,
            canary={"value": canary},
            baseline={"value": baseline},
            effect=Effect(measure="value", estimate=canary),
            queries=queries,
            evidence=evidence,
            critical=bool(signal.critical or signal.key),
        )
        return _Scored(out, score, weight, status, bool(signal.key) and not signal.dry_run)

    if problem:
        return done("error", Verdict.ERROR, problem)
    try:
        passing, warning = parse_criteria(signal.pass_criteria), parse_criteria(signal.warning_criteria)
    except ValueError as e:
        return done("error", Verdict.ERROR, str(e))
    if waiting:
        return done("waiting", Verdict.INCONCLUSIVE, waiting)
    if canary is None:
        return done("nodata", Verdict.NODATA, "no canary value in the window: no data is not a pass")
    if not passing:
        status: KeptnStatus = "info" if signal.dry_run else "nocriteria"
        why = (
            "informational (dry run): shown, not scored"
            if signal.dry_run
            else ("no pass criteria: a signal without criteria never passes here (Keptn would not score it)")
        )
        return done(status, Verdict.INCONCLUSIVE, why)
    ok, targets = _satisfied(passing, canary, baseline)
    if ok is None:
        return done(
            "nodata", Verdict.NODATA, "no baseline value for a relative criterion", pass_targets=targets
        )
    if ok:
        return done(
            "pass", Verdict.PASS, f"{canary:.4g} meets {_text(passing)}", weight, pass_targets=targets
        )
    warn, wtargets = _satisfied(warning, canary, baseline) if warning else (False, [])
    if warn:
        return done(
            "warning",
            Verdict.INCONCLUSIVE,
            f"{canary:.4g} misses {_text(passing)} but meets warning {_text(warning)}",
            weight / 2.0,
            pass_targets=targets,
            warning_targets=wtargets,
        )
    if warn is None:
        return done("nodata", Verdict.NODATA, "no baseline value for a relative warning criterion")
    key = " (key objective)" if signal.key else ""
    return done(
        "fail",
        Verdict.FAIL,
        f"{canary:.4g} misses {_text(passing)}{key}",
        pass_targets=targets,
        warning_targets=wtargets,
    )


def _text(cnf: list[tuple[Criterion, ...]]) -> str:
    return " and ".join(" or ".join(c.text for c in alts) for alts in cnf)


def score_gate(
    gate: GateSpec,
    values: Mapping[str, KeptnValues],
    *,
    window: Window,
    stage: int = 0,
    stage_elapsed: float | None = None,
) -> Judgement:
    """Score fetched `values` (signal name -> `KeptnValues`) as Keptn does.

    Pure: the numbers arrive as arguments. `stage_elapsed` below the stage's `minDuration` holds a pass.
    """
    scored: list[_Scored] = []
    for s in gate.signals:
        v = values.get(s.name, KeptnValues())
        scored.append(
            _score_signal(
                s,
                v.get("canary"),
                v.get("baseline"),
                queries=v.get("queries", {}),
                problem=_problem(s, v),
                waiting=v.get("waiting"),
            )
        )
    voting = [x for x in scored if not x.outcome.dry_run]
    maximum = sum(x.maximum for x in voting)
    achieved = sum(x.score for x in voting)
    total = 100.0 * achieved / maximum if maximum else 0.0
    unknown = [x for x in voting if x.status in ("nodata", "error", "nocriteria", "waiting")]
    optimistic = 100.0 * (achieved + sum(x.maximum for x in unknown)) / maximum if maximum else 0.0
    sc = gate.scoring
    outcomes = []
    for x in scored:
        share = 100.0 * x.score / maximum if maximum and not x.outcome.dry_run else 0.0
        outcomes.append(_with_contribution(x.outcome, round(share, 4)))
    key_failed = [x for x in voting if x.key and x.status == "fail"]
    head = f"keptn: total score {total:.2f}% (pass >= {sc.pass_score:g}%, warning >= {sc.marginal_score:g}%)"
    if key_failed:
        verdict, why = Verdict.FAIL, f"key objective {key_failed[0].outcome.name} failed"
    elif optimistic < sc.marginal_score:
        verdict = Verdict.FAIL
        why = "below the warning score even if every undecided signal passed" if unknown else "fail"
    elif unknown:
        worst = Verdict.worst([x.outcome.verdict for x in unknown])
        names = ", ".join(x.outcome.name for x in unknown if x.outcome.verdict == worst)
        verdict, why = worst, f"not scored: {names}"
    elif total >= sc.pass_score:
        verdict, why = Verdict.PASS, "pass"
    elif total >= sc.marginal_score:
        verdict, why = Verdict.INCONCLUSIVE, "warning: a human decides (Keptn 'warning')"
    else:
        verdict, why = Verdict.FAIL, "fail"
    st = gate.stages[stage]
    if verdict == Verdict.PASS and stage_elapsed is not None and stage_elapsed < st.min_duration:
        verdict = Verdict.INCONCLUSIVE
        why = f"pass, but the stage needs {st.min_duration - stage_elapsed:.0f}s more (minDuration)"
    return Judgement(
        gate=gate.name,
        verdict=verdict,
        reason=f"{head}: {why}",
        signals=tuple(outcomes),
        window={"start": window.start, "end": window.end, "step": window.step},
        stage=stage,
        weight=st.weight,
        mode="keptn",
        critical_failure=bool(key_failed),
        owners=tuple(gate.owners),
    )


def _problem(signal: Signal, v: KeptnValues) -> str | None:
    """Why the values cannot be scored: relative criteria on one query for both arms, or the fetch's problem."""
    if v.get("same_query"):
        try:
            relative = any(c.relative for e in parse_criteria(signal.pass_criteria) for c in e)
        except ValueError as e:
            return f"ValueError: {e}"
        if relative:
            return (
                "relative criteria need canary and baseline queries that differ: add ${selector} to the query"
            )
    return v.get("problem")


def _with_contribution(out: SignalOutcome, share: float) -> SignalOutcome:
    assert isinstance(out.evidence, KeptnEvidence)  # every outcome here is built by `_score_signal`
    return replace(out, evidence=replace(out.evidence, contribution=share))
