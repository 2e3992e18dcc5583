"""Keptn quality gates -> a gate in `mode: keptn`: v1 `slo.yaml` + `sli.yaml`, or v2 `AnalysisDefinition` +
`AnalysisValueTemplate`s (+ `Analysis` args, `KeptnMetricsProvider` address).

Carried over (Keptn's slo reference, lighthouse-service and metrics-operator evaluators): objectives become
signals with `passCriteria` / `warningCriteria` (Keptn syntax; several `- criteria:` blocks, OR-ed in Keptn,
become `a || b` entries), `weight`, `key` (key_sli / keyObjective); `total_score` / `totalScore` become
`scoring`. v2 targets say when an objective fails or warns; they are turned around into pass and warning
criteria with the same outcome. v1 placeholders become arguments (`$SERVICE` -> `${service}`, a filter key
`$mz_id` -> `${mz_id}` with the filter's value), `$DURATION_SECONDS` the evaluation window, and a label
matcher with `$DEPLOYMENT` the arm selector (canary / primary), so relative criteria (`<=+10%`) compare the
canary with the primary over the same window, where Keptn compares with previous evaluations.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from gatekeeper.importers.common import (
    Doc,
    Report,
    arg_name,
    guard_query,
    promql_problem,
    slug,
    unique,
)
from gatekeeper.importers.keptn_shared import absolute_bounds, keptn_gate, meets, percent
from gatekeeper.importers.keptn_v2 import import_v2
from gatekeeper.judge.keptn import parse_criterion

V2_KINDS = ("AnalysisDefinition", "AnalysisValueTemplate", "Analysis", "KeptnMetricsProvider")
_PLACEHOLDER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)?)")
_DEPLOY_MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|=)\s*"([^"]*\$DEPLOYMENT[^"]*)"')


def is_keptn(doc: Doc) -> bool:
    d = doc.data
    if not isinstance(d, dict):
        return False
    api = str(d.get("apiVersion", ""))
    if api.startswith("metrics.keptn.sh/") and doc.kind in V2_KINDS:
        return True
    return "spec_version" in d and ("objectives" in d or "indicators" in d)


def import_keptn(docs: list[Doc], *, report: Report, given: dict[str, str]) -> dict[str, Any]:
    if any(d.kind == "AnalysisDefinition" for d in docs):
        return import_v2(docs, report=report, given=given)
    return _v1(docs, report=report, given=given)


def _dnf_to_cnf(sets: list[list[str]]) -> list[str]:
    """Keptn's OR of AND-sets as AND-ed entries of `||` alternatives (distribution; sets are small)."""
    sets = [s for s in sets if s]
    if len(sets) <= 1:
        return list(sets[0]) if sets else []
    return [" || ".join(dict.fromkeys(choice)) for choice in itertools.product(*sets)]


# --- v1 ---------------------------------------------------------------------------------------------------


def _v1(docs: list[Doc], *, report: Report, given: dict[str, str]) -> dict[str, Any]:
    slos = [d for d in docs if "objectives" in d.data]
    slis = [d for d in docs if "indicators" in d.data]
    if not slos:
        report.error(docs[0], (), "no slo.yaml (objectives) among the inputs")
        return {"name": "keptn", "signals": []}
    slo = slos[0]
    for extra in slos[1:]:
        report.unexpressed(extra, (), "one slo.yaml per import: this one is ignored")
    indicators: dict[str, tuple[Doc, str]] = {}
    for d in slis:
        for k, v in (d.data.get("indicators") or {}).items():
            indicators[str(k)] = (d, str(v))
    filters = {str(k): str(v) for k, v in report.mapping(slo, ("filter",), slo.data.get("filter")).items()}
    args: dict[str, str | None] = {}
    ctx: dict[str, Any] = {"scope": None}
    if slo.data.get("comparison"):
        report.unexpressed(
            slo,
            ("comparison",),
            "Keptn compares with previous evaluations (compare_with, "
            "aggregate_function…); gatekeeper compares the canary with the "
            "primary over the same window",
        )
    signals: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, obj in enumerate(report.sequence(slo, ("objectives",), slo.data.get("objectives"))):
        sig = _objective_v1(slo, ("objectives", i), obj, indicators, filters, args, given, ctx, report)
        if sig is not None:
            sig["name"] = unique(sig["name"], names)
            signals.append(sig)
    if signals and all(s.get("dryRun") for s in signals):
        report.warn(
            slo,
            ("objectives",),
            "no objective has pass criteria: Keptn passes such a gate with score 100; "
            "here the signals vote and, having no criteria, never pass",
        )
        for s in signals:
            s.pop("dryRun")
    if not signals:
        report.error(slo, ("objectives",), "no objective could be imported: a gate needs a signal")
    scoring = _total_v1(slo, report)
    scopes = None
    if ctx["scope"]:
        label, op, template = ctx["scope"]
        pre = "=~" if op == "=~" else ""
        scopes = {
            arm: {label: pre + _args_in(template.replace("$DEPLOYMENT", value), args, filters, given)}
            for arm, value in (("canary", "canary"), ("baseline", "primary"))
        }
    else:
        report.assume(
            slo,
            (),
            "no SLI query tells the arms apart ($DEPLOYMENT): the scopes deployment=canary / "
            "primary are used only by queries with ${selector}",
        )
    return keptn_gate(
        str(filters.get("service") or given.get("service") or "keptn-quality-gate"),
        f"Imported from Keptn SLO {slo.file}",
        signals,
        scoring,
        args,
        scopes,
    )


def _args_in(text: str, args: dict, filters: dict, given: dict) -> str:
    def repl(m: re.Match[str]) -> str:
        raw = m.group(1)
        if raw == "DURATION_SECONDS":
            return "${window}"
        name = arg_name(raw.lower().replace(".", "_") if raw.isupper() or raw.startswith("LABEL.") else raw)
        key = raw.lower() if raw.isupper() else raw
        args.setdefault(name, given.get(name, given.get(raw, filters.get(key))))
        return "${" + name + "}"

    return _PLACEHOLDER.sub(repl, text)


def _objective_v1(slo, path, obj, indicators, filters, args, given, ctx, report) -> dict[str, Any] | None:
    if not isinstance(obj, dict) or not obj.get("sli"):
        report.error(slo, path, "an objective needs 'sli'")
        return None
    sli = str(obj["sli"])
    if sli not in indicators:
        report.unresolved(slo, (*path, "sli"), f"SLI '{sli}' has no query in any sli.yaml among the inputs")
        return None
    sdoc, raw = indicators[sli]
    query = raw.strip()
    m = _DEPLOY_MATCHER.search(query)
    if m:
        triple = (m.group(1), m.group(2), m.group(3))
        same = all((x.group(1), x.group(2), x.group(3)) == triple for x in _DEPLOY_MATCHER.finditer(query))
        if ctx["scope"] in (None, triple) and same:
            ctx["scope"] = triple
            query = _DEPLOY_MATCHER.sub("${selector}", query)
    query = _args_in(query, args, filters, given)
    sets = {
        k: [
            [
                str(c)
                for c in report.sequence(
                    slo, (*path, k, j, "criteria"), report.mapping(slo, (*path, k, j), b).get("criteria")
                )
            ]
            for j, b in enumerate(report.sequence(slo, (*path, k), obj.get(k)))
        ]
        for k in ("pass", "warning")
    }
    try:
        for k in sets:
            for s in sets[k]:
                for c in s:
                    parse_criterion(c)
    except ValueError as e:
        report.error(slo, (*path, "pass"), str(e))
        return None
    relative = any(parse_criterion(c).relative for s in sets["pass"] + sets["warning"] for c in s)
    if relative and "${selector}" not in query:
        report.unexpressed(
            slo,
            (*path, "pass"),
            f"relative criteria of '{sli}' compare with previous evaluations in "
            "Keptn; its query has no $DEPLOYMENT to select the primary, so they "
            "are dropped here (add ${selector} to the query to keep them)",
        )
        sets = {k: [[c for c in s if not parse_criterion(c).relative] for s in v] for k, v in sets.items()}
    passing, warning = _dnf_to_cnf(sets["pass"]), _dnf_to_cnf(sets["warning"])
    sig: dict[str, Any] = {"name": slug(sli), "kind": "threshold", "description": f"Keptn SLI '{sli}'"}
    query = guard_query(
        query,
        passes=lambda n: meets(passing, n),
        report=report,
        doc=sdoc,
        path=("indicators", sli),
        what=f"SLI '{sli}'",
    )
    problem = promql_problem(query)
    if problem:
        report.error(sdoc, ("indicators", sli), f"PromQL does not parse: {problem}")
        return None
    sig["query"] = query
    sig.update(absolute_bounds(passing))
    weight = obj.get("weight", 1)
    if passing:
        sig["passCriteria"] = passing
    else:
        sig["dryRun"] = True
        report.unexpressed(
            slo, path, f"'{sli}' has no pass criteria: informational in Keptn, a dry-run signal here"
        )
    if warning:
        sig["warningCriteria"] = warning
    if weight is not None and float(weight) > 0:
        sig["weight"] = float(weight)
    elif weight is not None:
        sig["dryRun"] = True
        report.unexpressed(slo, (*path, "weight"), "weight 0: shown, not scored")
    if obj.get("key_sli"):
        sig["key"] = True
    report.leftovers(
        slo,
        path,
        obj,
        {"sli", "pass", "warning", "weight", "key_sli", "displayName"},
        "no gatekeeper equivalent",
    )
    return sig


def _total_v1(slo: Doc, report: Report) -> dict[str, float]:
    total = report.mapping(slo, ("total_score",), slo.data.get("total_score"))
    p, w = percent(total.get("pass")), percent(total.get("warning"))
    if p is None:
        report.assume(
            slo, ("total_score",), "no total_score.pass (Keptn fails the evaluation without it): 90% used"
        )
        p = 90.0
    if w is None:
        report.assume(slo, ("total_score",), "no total_score.warning: no warning band (warning = pass)")
        w = p
    return {"passScore": p, "marginalScore": min(w, p)}


# --- v2 ---------------------------------------------------------------------------------------------------
