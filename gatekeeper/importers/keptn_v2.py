"""Keptn v2 (metrics-operator): `AnalysisDefinition` objectives with failure/warning targets, their
`AnalysisValueTemplate` queries (Go template `{{.arg}}` filled from an `Analysis`), `KeptnMetricsProvider`
addresses. A target says when an objective fails or warns; gatekeeper writes the same outcome as pass and
warning criteria: pass = not failure and not warning, warning = not failure."""

from __future__ import annotations

import re
from typing import Any

from gatekeeper.importers.common import Doc, Report, arg_name, guard_query, promql_problem, slug, unique
from gatekeeper.importers.keptn_shared import absolute_bounds, keptn_gate, meets, percent

_GO_VAR = re.compile(r"\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


_SUFFIX = {None: 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}  # fmt: skip


_NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def _quantity(value: Any) -> float | None:
    m = _QUANTITY.match(str(value).strip())
    return float(m.group(1)) * _SUFFIX[m.group(2)] if m else None


def _operator_cnf(doc: Doc, path: tuple, op: dict, report: Report) -> list[str] | None:
    """The criteria (CNF entries) under which the failure/warning operator does NOT hold."""
    ops = {"lessThan": "<", "lessThanOrEqual": "<=", "greaterThan": ">", "greaterThanOrEqual": ">="}
    for key, value in op.items():
        value = value if isinstance(value, dict) else {}
        if key in ops:
            v = _quantity(value.get("fixedValue"))
            if v is None:
                break
            return [f"{_NEGATE[ops[key]]}{v:g}"]
        if key == "equalTo":
            v = _quantity(value.get("fixedValue"))
            return None if v is None else [f"<{v:g} || >{v:g}"]
        if key in ("inRange", "notInRange"):
            lo, hi = _quantity(value.get("lowBound")), _quantity(value.get("highBound"))
            if lo is None or hi is None:
                break
            return [f"<{lo:g} || >{hi:g}"] if key == "inRange" else [f">={lo:g}", f"<={hi:g}"]
    report.error(doc, path, f"target operator {op} is not understood (lessThan, …, inRange, notInRange)")
    return None


def import_v2(docs: list[Doc], *, report: Report, given: dict[str, str]) -> dict[str, Any]:
    definition = next(d for d in docs if d.kind == "AnalysisDefinition")
    templates = [d for d in docs if d.kind == "AnalysisValueTemplate"]
    analysis = next((d for d in docs if d.kind == "Analysis"), None)
    providers = [d for d in docs if d.kind == "KeptnMetricsProvider"]
    values = (
        {str(k): str(v) for k, v in ((analysis.data.get("spec") or {}).get("args") or {}).items()}
        if analysis
        else {}
    )
    if analysis and (analysis.data.get("spec") or {}).get("timeframe"):
        report.unexpressed(
            analysis, ("spec", "timeframe"), "the evaluation window is given when the gate runs"
        )
    args: dict[str, str | None] = {}
    signals: list[dict[str, Any]] = []
    names: set[str] = set()
    spec = report.mapping(definition, ("spec",), definition.data.get("spec"))
    urls: list[str] = []
    for i, obj in enumerate(report.sequence(definition, ("spec", "objectives"), spec.get("objectives"))):
        path = ("spec", "objectives", i)
        obj = report.mapping(definition, path, obj)
        ref = report.mapping(
            definition, (*path, "analysisValueTemplateRef"), obj.get("analysisValueTemplateRef")
        )
        t = next((d for d in templates if d.name == ref.get("name")), None)
        if t is None:
            report.unresolved(
                definition,
                (*path, "analysisValueTemplateRef"),
                f"AnalysisValueTemplate '{ref.get('name')}' is not among the inputs",
            )
            continue
        tspec = t.data.get("spec") or {}
        pname = str((tspec.get("provider") or {}).get("name", ""))
        pdoc = next((p for p in providers if p.name == pname), None)
        if pdoc is not None:
            pspec = pdoc.data.get("spec") or {}
            if str(pspec.get("type", "prometheus")) != "prometheus":
                report.unexpressed(
                    pdoc, ("spec", "type"), f"provider type '{pspec.get('type')}': only prometheus maps"
                )
                continue
            if pspec.get("targetServer") and str(pspec["targetServer"]) not in urls:
                urls.append(str(pspec["targetServer"]))

        def go(m: re.Match[str]) -> str:
            name = arg_name(m.group(1))
            args.setdefault(name, given.get(name, values.get(m.group(1))))
            return "${" + name + "}"

        query = _GO_VAR.sub(go, str(tspec.get("query", "")).strip())
        target = report.mapping(definition, (*path, "target"), obj.get("target"))
        fail = (
            _operator_cnf(
                definition,
                (*path, "target", "failure"),
                report.mapping(definition, (*path, "target", "failure"), target["failure"]),
                report,
            )
            if target.get("failure")
            else []
        )
        warn = (
            _operator_cnf(
                definition,
                (*path, "target", "warning"),
                report.mapping(definition, (*path, "target", "warning"), target["warning"]),
                report,
            )
            if target.get("warning")
            else []
        )
        if fail is None or warn is None:
            continue
        sig: dict[str, Any] = {
            "name": slug(t.name),
            "kind": "threshold",
            "description": f"Keptn objective {t.name}",
        }
        passing = fail + warn
        if not passing:
            report.warn(
                definition,
                (*path, "target"),
                "no failure or warning target: Keptn passes this objective "
                "with any value; here a signal without criteria never passes",
            )
        query = guard_query(
            query,
            passes=lambda n, crit=passing: meets(crit, n),
            report=report,
            doc=t,
            path=("spec", "query"),
            what=f"template '{t.name}'",
        )
        problem = promql_problem(query)
        if problem:
            report.error(t, ("spec", "query"), f"PromQL does not parse: {problem}")
            continue
        sig["query"] = query
        sig.update(absolute_bounds(passing))
        if passing:
            sig["passCriteria"] = passing
        if warn and fail:
            sig["warningCriteria"] = fail
        elif warn:
            sig["warningCriteria"] = [
                "<0 || >=0"
            ]  # warning whenever the failure target is not met (none given)
        w = obj.get("weight", 1)
        sig["weight"] = float(w) if w else 1.0
        if obj.get("keyObjective"):
            sig["key"] = True
        sig["name"] = unique(sig["name"], names)
        signals.append(sig)
    if not signals:
        report.error(
            definition, ("spec", "objectives"), "no objective could be imported: a gate needs a signal"
        )
    total = spec.get("totalScore") or {}
    p, w = percent(total.get("passPercentage")), percent(total.get("warningPercentage"))
    scoring = {
        "passScore": p if p is not None else 90.0,
        "marginalScore": min(w if w is not None else (p or 90.0), p or 90.0),
    }
    report.assume(
        definition,
        (),
        "an AnalysisDefinition has no baseline: the scopes deployment=canary / primary "
        "are used only by queries with ${selector}",
    )
    gate = keptn_gate(
        definition.name or "keptn-analysis",
        f"Imported from Keptn AnalysisDefinition {definition.name}",
        signals,
        scoring,
        args,
        None,
    )
    if urls:
        gate = {
            **{k: v for k, v in gate.items() if k != "signals"},
            "source": {"prometheus": {"url": urls[0]}},
            "signals": gate["signals"],
        }
    return gate
