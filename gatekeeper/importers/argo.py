"""Argo Rollouts `AnalysisTemplate` / `ClusterAnalysisTemplate` / `AnalysisRun` (and a `Rollout`'s canary steps
and analysis args, when given) -> a gate of threshold signals.

Semantics carried over (Argo's analysis controller and `evaluate.EvaluateResult`): a measurement fails when
the failure condition holds or, with only a success condition, when it does not; `failureLimit` (default 0)
failed measurements are tolerated; `inconclusiveLimit`, `initialDelay`, `dryRun` and `consecutiveErrorLimit`
(default 4) keep their names. Conditions become inclusive `min`/`max` bounds; a metric without conditions is
always Successful in Argo and becomes a dry-run signal here. Argo's `{{args.x}}` becomes the gate argument
`${x}`. A `Rollout`'s `setWeight`/`pause` steps become stages, its `progressDeadlineSeconds` (default 600)
the gate's `progressDeadline`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from gatekeeper.importers import argo_expr
from gatekeeper.importers.argo_rollout import rollout_analysis, rollout_stages
from gatekeeper.importers.common import (
    Doc,
    Report,
    arg_name,
    bounds,
    ensure_voting,
    go_duration_seconds,
    guard_query,
    inside,
    promql_problem,
    slug,
    unique,
)

TEMPLATE_KINDS = ("AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun")
_ARG = re.compile(r"\{\{\s*args\.([A-Za-z0-9_.-]+)\s*\}\}")
_LEFTOVER = re.compile(r"\{\{[^}]*\}\}")
_METRIC_KEYS = {
    "name", "provider", "successCondition", "failureCondition", "interval", "count", "initialDelay",
    "failureLimit", "inconclusiveLimit", "consecutiveErrorLimit", "dryRun", "consecutiveSuccessLimit",
}  # fmt: skip
_ALL = re.compile(r"^\s*all\(\s*result\s*,\s*(?P<inner>.*)\)\s*$", re.DOTALL)
_HASHES = ("${canary_hash}", "${stable_hash}")
ARGO_DEFAULT_CONSECUTIVE_ERRORS = 4


def is_argo(doc: Doc) -> bool:
    api = str(doc.data.get("apiVersion", "")) if isinstance(doc.data, dict) else ""
    return api.startswith("argoproj.io/") and doc.kind in (*TEMPLATE_KINDS, "Rollout")


def templating(text: str, args: dict[str, str]) -> str:
    """`{{args.service-name}}` -> `${service_name}` (recording the argument name)."""

    def repl(m: re.Match[str]) -> str:
        name = arg_name(m.group(1))
        args.setdefault(m.group(1), name)
        return "${" + name + "}"

    return _ARG.sub(repl, str(text))


def import_argo(docs: list[Doc], *, report: Report, given: dict[str, str]) -> dict[str, Any]:
    templates = [d for d in docs if d.kind in TEMPLATE_KINDS]
    rollouts = [d for d in docs if d.kind == "Rollout"]
    for extra in rollouts[1:]:
        report.unexpressed(
            extra, (), "only the first Rollout's steps become stages: import one gate at a time"
        )
    rollout = rollouts[0] if rollouts else None
    analysis = rollout_analysis(rollout, templates, report) if rollout else None
    used = analysis["templates"] if analysis else templates
    arg_values: dict[str, str | None] = {}
    for t in used:
        _template_args(t, arg_values, report)
    if analysis:
        arg_values.update(analysis["args"])
    for key, value in given.items():
        arg_values[key] = value
    refs: dict[str, str] = {}
    signals: list[dict[str, Any]] = []
    ctx: dict[str, Any] = {
        "urls": [],
        "intervals": [],
        "counts": [],
        "errors": [],
        "timeouts": [],
        "headers": {},
    }
    names: set[str] = set()
    for t in used:
        spec = report.mapping(t, ("spec",), t.data.get("spec"))
        dry = [str(x.get("metricName", "")) for x in spec.get("dryRun") or [] if isinstance(x, dict)]
        dry += analysis["dryRun"] if analysis else []
        report.leftovers(t, ("spec",), spec, {"args", "metrics", "dryRun", "templates"}, _WHY_SPEC)
        _nested(t, spec, templates, report)
        for i, metric in enumerate(report.sequence(t, ("spec", "metrics"), spec.get("metrics"))):
            sig = _metric(t, i, metric, report=report, refs=refs, ctx=ctx, dry=dry)
            if sig is not None:
                sig["name"] = unique(sig["name"], names)
                signals.append(sig)
    _hash_args(signals, refs, arg_values, first=rollout or docs[0], report=report)
    first = rollout or (used[0] if used else docs[0])
    if not signals:
        report.error(
            first, ("spec", "metrics"), "no Prometheus metric could be imported: a gate needs a signal"
        )
    gate: dict[str, Any] = {
        "apiVersion": "gatekeeper.dev/v1alpha1",
        "kind": "Gate",
        "name": slug(first.name or "argo-analysis"),
        "description": "Imported from Argo Rollouts " + ", ".join(f"{d.kind} {d.name}" for d in used),
    }
    gate_args = _gate_args(refs, arg_values, first, report)
    if gate_args:
        gate["args"] = gate_args
    prom: dict[str, Any] = {}
    if ctx["urls"]:
        prom["url"] = ctx["urls"][0]
    if ctx["timeouts"]:
        prom["timeout"] = f"{min(ctx['timeouts']):g}s"
    if ctx["headers"]:
        prom["headers"] = ctx["headers"]
    interval = min(ctx["intervals"]) if ctx["intervals"] else None
    if interval:
        prom["step"] = f"{interval:g}s"
    if prom:
        gate["source"] = {"prometheus": prom}
    gate["scopes"] = {
        "canary": {"rollouts_pod_template_hash": "${canary_hash}"},
        "baseline": {"rollouts_pod_template_hash": "${stable_hash}"},
    }
    gate.setdefault("args", []).extend(
        [
            {"name": "canary_hash", "value": "latest", "description": "pod-template-hash of the canary"},
            {"name": "stable_hash", "value": "stable", "description": "pod-template-hash of the stable"},
        ]
    )
    report.assume(
        first,
        (),
        "an AnalysisTemplate has no baseline: the imported threshold signals select their series with their "
        "own queries; the gate's scopes (rollouts_pod_template_hash = ${canary_hash} / ${stable_hash}) are "
        "used only by comparative signals you add",
    )
    if interval:
        gate["interval"] = f"{interval:g}s"
    gate["consecutiveErrorLimit"] = min(ctx["errors"]) if ctx["errors"] else ARGO_DEFAULT_CONSECUTIVE_ERRORS
    if rollout:
        stages, deadline = rollout_stages(rollout, report)
        if stages:
            gate["stages"] = stages
        gate["progressDeadline"] = f"{deadline:g}s"
    elif ctx["counts"]:
        gate["stages"] = [{"weight": 100, "minDuration": f"{max(ctx['counts']):g}s"}]
    ensure_voting(signals, gate, report, first)
    gate["signals"] = signals
    return gate


_WHY_SPEC = "no gatekeeper equivalent (measurement history is kept bounded in the gate's status)"


def _nested(t: Doc, spec: dict, templates: list[Doc], report: Report) -> None:
    """An AnalysisTemplate that lists other templates (`spec.templates`): each must be among the inputs
    (their metrics are imported with every given template)."""
    for i, r in enumerate(report.sequence(t, ("spec", "templates"), spec.get("templates"))):
        name = str(r.get("templateName", "")) if isinstance(r, dict) else ""
        kind = (
            "ClusterAnalysisTemplate" if isinstance(r, dict) and r.get("clusterScope") else "AnalysisTemplate"
        )
        if not any(d.name == name and d.kind == kind for d in templates):
            report.unresolved(
                t,
                ("spec", "templates", i),
                f"template '{name}' ({kind}) is not among the inputs: give it too",
            )


def _hash_args(
    signals: list[dict[str, Any]], refs: dict[str, str], values: dict, *, first: Doc, report: Report
) -> None:
    """Arguments a Rollout fills with `podTemplateHashValue: Latest|Stable` are the gate's canary/stable
    hash arguments: their uses are renamed and the argument dropped."""
    for argo_name, name in list(refs.items()):
        value = values.get(argo_name)
        if value not in _HASHES:
            continue
        for sig in signals:
            sig["query"] = sig["query"].replace("${" + name + "}", value)
        del refs[argo_name]
        report.assume(
            first,
            (),
            f"argument '{argo_name}' is the {'Latest' if value == _HASHES[0] else 'Stable'} pod-template hash: "
            f"it became {value}, the gate's arm argument",
        )


def _template_args(t: Doc, values: dict[str, str | None], report: Report) -> None:
    spec = t.data.get("spec") if isinstance(t.data.get("spec"), dict) else {}
    for i, a in enumerate(spec.get("args") if isinstance(spec.get("args"), list) else []):
        if not isinstance(a, dict) or "name" not in a:
            continue
        name = str(a["name"])
        if "valueFrom" in a:
            report.unexpressed(
                t,
                ("spec", "args", i, "valueFrom"),
                f"argument '{name}' comes from {next(iter(a['valueFrom']))}: pass it with --arg {name}=VALUE",
            )
        value = a.get("value")
        old = values.get(name)
        if value is not None and old is not None and str(old) != str(value):
            report.error(
                t, ("spec", "args", i), f"argument '{name}' has two different defaults (Argo rejects it too)"
            )
        if value is not None or name not in values:
            values[name] = None if value is None else str(value)


def _gate_args(refs: dict[str, str], values: dict[str, str | None], doc: Doc, report: Report) -> list[dict]:
    out = []
    for argo_name, name in refs.items():
        value = values.get(argo_name, values.get(name))
        item: dict[str, Any] = {"name": name, "description": f"Argo argument '{argo_name}'"}
        if value is not None:
            item["value"] = value
        out.append(item)
    return out


def _metric(
    t: Doc, i: int, m: Any, *, report: Report, refs: dict[str, str], ctx: dict[str, Any], dry: list[str]
) -> dict[str, Any] | None:
    path = ("spec", "metrics", i)
    if not isinstance(m, dict) or not m.get("name"):
        report.error(t, path, "a metric needs a name")
        return None
    name = str(m["name"])
    provider = m.get("provider") or {}
    prom = provider.get("prometheus") if isinstance(provider, dict) else None
    if not isinstance(prom, dict) or not prom.get("query"):
        kinds = ", ".join(provider) if isinstance(provider, dict) else "none"
        report.unexpressed(
            t, (*path, "provider"), f"metric '{name}' uses provider {kinds}: only prometheus maps"
        )
        return None
    report.leftovers(t, path, m, _METRIC_KEYS, "no gatekeeper equivalent for this metric field")
    if m.get("consecutiveSuccessLimit") is not None:
        report.unexpressed(
            t,
            (*path, "consecutiveSuccessLimit"),
            "Argo ends the analysis Successful after that many consecutive successes; a stage passes here on "
            "evidence, after its minDuration and minSamples",
        )
    query = templating(str(prom["query"]).strip(), refs)
    if _LEFTOVER.search(query):
        report.unresolved(
            t,
            (*path, "provider", "prometheus", "query"),
            f"template variable {_LEFTOVER.search(query).group(0)} has no gatekeeper equivalent",
        )
        return None
    _provider_settings(t, path, prom, ctx, refs, report)
    sig: dict[str, Any] = {"name": slug(name), "kind": "threshold", "description": f"Argo metric '{name}'"}
    b = _conditions(t, path, m, report)
    if b is None:
        return None
    if b == "none":
        report.warn(
            t,
            path,
            f"metric '{name}' has no success or failure condition: Argo counts every measurement "
            "Successful; imported as a dry-run signal (measured, never votes)",
        )
        sig.update({"max": math.inf, "dryRun": True})
    else:
        query = guard_query(
            query,
            passes=lambda n: inside(n, b),
            report=report,
            doc=t,
            path=(*path, "provider", "prometheus", "query"),
            what=f"metric '{name}'",
        )
        sig.update(b)
    problem = promql_problem(query)
    if problem:
        report.error(t, (*path, "provider", "prometheus", "query"), f"PromQL does not parse: {problem}")
        return None
    sig["query"] = query
    _limits(t, path, m, sig, ctx, report)
    if any(re.fullmatch(rx, name) for rx in dry if rx):
        sig["dryRun"] = True
    return sig


def _provider_settings(t: Doc, path: tuple, prom: dict, ctx: dict, refs: dict, report: Report) -> None:
    ppath = (*path, "provider", "prometheus")
    if prom.get("address"):
        url = templating(str(prom["address"]), refs)
        if ctx["urls"] and url != ctx["urls"][0]:
            report.unexpressed(
                t, (*ppath, "address"), f"a second Prometheus address ({url}): a gate reads one source"
            )
        elif not ctx["urls"]:
            ctx["urls"].append(url)
    if prom.get("timeout") is not None:
        sec = go_duration_seconds(prom["timeout"])
        if sec:
            ctx["timeouts"].append(sec)
    for h in prom.get("headers") or []:
        if isinstance(h, dict) and "key" in h:
            ctx["headers"][str(h["key"])] = templating(str(h.get("value", "")), refs)
    if isinstance(prom.get("rangeQuery"), dict):
        report.unexpressed(
            t,
            (*ppath, "rangeQuery"),
            "the gate's evaluation window and step replace the range (start/end/step): each step is a measurement",
        )
    report.leftovers(
        t,
        ppath,
        prom,
        {"address", "query", "timeout", "headers", "rangeQuery"},
        "no gatekeeper equivalent (authentication, TLS and environment are set on the source)",
    )


def _conditions(t: Doc, path: tuple, m: dict, report: Report) -> dict[str, float] | str | None:
    """Bounds of the passing region; "none" without conditions; None when not expressible (listed)."""
    parsed: dict[str, argo_expr.Pred] = {}
    for key in ("successCondition", "failureCondition"):
        if m.get(key) not in (None, ""):
            text = str(m[key])
            every = _ALL.match(text)
            if every and "#" in every.group("inner"):
                text = every.group("inner").replace("#", "result[0]")
                report.assume(
                    t,
                    (*path, key),
                    f"'{m[key]}': every value of the range must meet it; here each step of the window is "
                    "one measurement judged by it",
                )
            try:
                parsed[key] = argo_expr.parse_condition(text)
            except argo_expr.Unsupported as e:
                report.unresolved(t, (*path, key), f"'{m[key]}' cannot be expressed as bounds: {e}")
                return None
    if not parsed:
        return "none"
    s, f = parsed.get("successCondition"), parsed.get("failureCondition")
    passing = s & ~f if s and f else (s if s else ~f)  # type: ignore[operator]
    iv = passing.interval()
    if iv is None:
        where = "successCondition" if s else "failureCondition"
        report.unresolved(
            t,
            (*path, where),
            "the passing values are not one interval (e.g. 'a < 1 || a > 5'): split it into two metrics",
        )
        return None
    if s and f and argo_expr.complement(argo_expr.union(s.region, f.region)):
        report.unexpressed(
            t,
            (*path, "failureCondition"),
            "values meeting neither condition are Inconclusive in Argo and count as failed measurements here",
        )
    for label, attr in (("an empty result", "empty"), ("NaN (e.g. 0/0 without traffic)", "nan")):
        sv, fv = (getattr(s, attr) if s else None), (getattr(f, attr) if f else None)
        passes = (sv is True and fv is False) if s and f else (sv is True if s else fv is False)
        if passes:
            key = "successCondition" if s else "failureCondition"
            report.warn(
                t,
                (*path, key),
                f"in Argo {label} counts as a Successful measurement; here it is NODATA and never passes",
            )
    return bounds(iv.lo, iv.hi, lo_closed=iv.lo_closed, hi_closed=iv.hi_closed)


def _limits(t: Doc, path: tuple, m: dict, sig: dict, ctx: dict, report: Report) -> None:
    for key, field in (("failureLimit", "failureLimit"), ("inconclusiveLimit", "inconclusiveLimit")):
        if m.get(key) is None:
            continue
        try:
            value = int(m[key])
            if value < 0:
                raise ValueError
            sig[field] = value
        except (TypeError, ValueError):
            report.unexpressed(
                t, (*path, key), f"'{m[key]}' is not a count >= 0 (percentages and -1 do not map)"
            )
    if m.get("initialDelay") is not None:
        sec = go_duration_seconds(m["initialDelay"])
        if sec is None:
            report.unexpressed(t, (*path, "initialDelay"), f"'{m['initialDelay']}' is not a duration")
        else:
            sig["initialDelay"] = f"{sec:g}s"
    if m.get("dryRun"):
        sig["dryRun"] = True
    interval = go_duration_seconds(m["interval"]) if m.get("interval") is not None else None
    if interval:
        ctx["intervals"].append(interval)
    if m.get("count") is not None:
        try:
            count = int(m["count"])
            ctx["counts"].append(count * (interval or 60.0))
        except (TypeError, ValueError):
            report.unexpressed(t, (*path, "count"), f"'{m['count']}' is not a number")
    if m.get("consecutiveErrorLimit") is not None:
        try:
            ctx["errors"].append(int(m["consecutiveErrorLimit"]))
        except (TypeError, ValueError):
            report.unexpressed(t, (*path, "consecutiveErrorLimit"), "not a number")
