"""Flagger `Canary` (+ `MetricTemplate`s, `AlertProvider`s) -> a gate.

Carried over (Flagger's scheduler and `pkg/metrics/observers`): `analysis.interval` (default 60s, at least 10s)
is the gate's interval and the step of every threshold signal, so one failed step is one failed check;
`threshold` (failed checks before rollback, default 1) is shared by all metrics in Flagger and becomes each
threshold signal's `failureLimit = floor((threshold - 1) / metrics)`, never weaker; `maxWeight`,
`stepWeight`, `stepWeights`, `progressDeadlineSeconds` (default 600) and the webhooks (hook points, timeout
default 10s) keep their names. `thresholdRange` becomes `min`/`max` on the canary's value.

The builtin checks are rendered as Flagger's observer for the mesh provider renders them (istio by default,
kubernetes, linkerd), with the canary's workload as the canary arm and `<target>-primary` as the baseline,
and each gets a comparative companion (a ratio signal for the success rate, a p99 latency signal for the
duration) so the canary is also judged against the primary, not only against a fixed number.
"""

from __future__ import annotations

import re
from typing import Any

from gatekeeper.importers.common import (
    Doc,
    Report,
    go_duration_seconds,
    guard_query,
    inside,
    number,
    promql_problem,
    slug,
    unique,
)
from gatekeeper.importers.flagger_observers import DEFAULT_PROVIDER, PROVIDERS, builtin

_HANDLED_ANALYSIS = {
    "interval", "threshold", "maxWeight", "stepWeight", "stepWeights", "metrics", "webhooks", "alerts",
}  # fmt: skip
_WHY_ANALYSIS = {
    "iterations": "fixed-iteration analysis (A/B, blue/green) is a routing mode; stages here advance on evidence",
    "match": "header/cookie match routes are the routing's (A/B stages)",
    "mirror": "traffic mirroring is the routing's",
    "mirrorWeight": "traffic mirroring is the routing's",
    "stepWeightPromotion": "promotion after the last stage is the controller's",
    "primaryReadyThreshold": "workload readiness is outside the gate",
    "canaryReadyThreshold": "workload readiness is outside the gate",
    "sessionAffinity": "session affinity is the routing's",
}
_VAR = re.compile(r"\{\{\s*\.?([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)?)\s*\}\}")
DEFAULT_METRICS_SERVER = "http://prometheus:9090"  # Flagger's -metrics-server default


def is_flagger(doc: Doc) -> bool:
    api = str(doc.data.get("apiVersion", "")) if isinstance(doc.data, dict) else ""
    return api.startswith("flagger.app/") and doc.kind in ("Canary", "MetricTemplate", "AlertProvider")


def import_flagger(docs: list[Doc], *, report: Report, given: dict[str, str]) -> dict[str, Any]:
    canaries = [d for d in docs if d.kind == "Canary"]
    if not canaries:
        report.error(docs[0], (), "no Canary among the inputs: MetricTemplates alone are not a gate")
        return {"name": "flagger", "signals": []}
    for extra in canaries[1:]:
        report.unexpressed(extra, (), "one Canary per import: this one is ignored")
    c = canaries[0]
    spec = report.mapping(c, ("spec",), c.data.get("spec"))
    ns = c.namespace or "default"
    if not c.namespace:
        report.assume(c, ("metadata",), "the Canary has no namespace: 'default' is used for {{ namespace }}")
    target = str((spec.get("targetRef") or {}).get("name") or c.name)
    provider = str(spec.get("provider") or DEFAULT_PROVIDER)
    if not spec.get("provider"):
        report.assume(
            c, ("spec",), f"no spec.provider: Flagger's default mesh provider '{DEFAULT_PROVIDER}' is used"
        )
    key = "analysis" if "analysis" in spec else "canaryAnalysis"
    analysis = report.mapping(c, ("spec", key), spec.get(key))
    apath = ("spec", key)
    variables = {
        "name": c.name,
        "namespace": ns,
        "target": target,
        "service": str((spec.get("service") or {}).get("name") or target),
        "ingress": str((spec.get("ingressRef") or {}).get("name") or target),
    }
    variables.update({k: v for k, v in given.items() if k in variables})
    interval = go_duration_seconds(analysis.get("interval") or "60s") or 60.0
    if interval < 10:
        report.assume(c, (*apath, "interval"), f"{interval:g}s: Flagger raises intervals below 10s to 10s")
        interval = 10.0
    threshold = int(number(analysis.get("threshold")) or 1)
    metrics = [
        m
        for m in report.sequence(c, ("spec", key, "metrics"), analysis.get("metrics"))
        if isinstance(m, dict)
    ]
    failure_limit = (threshold - 1) // max(len(metrics), 1)
    if len(metrics) > 1:
        report.assume(
            c,
            (*apath, "threshold"),
            f"Flagger rolls back after {threshold} failed checks counted over all "
            f"metrics; each threshold signal tolerates {failure_limit} failed steps "
            "so the gate is never weaker",
        )
    url = str(spec.get("metricsServer") or "")
    templates = [d for d in docs if d.kind == "MetricTemplate"]
    ctx = {"urls": [url] if url else [], "args": set()}
    signals: list[dict[str, Any]] = []
    names: set[str] = set()
    obs = PROVIDERS.get(provider)
    for i, m in enumerate(metrics):
        path = (*apath, "metrics", i)
        for sig in _metric(
            c,
            path,
            m,
            obs=obs,
            provider=provider,
            templates=templates,
            ns=ns,
            variables=variables,
            failure_limit=failure_limit,
            interval=interval,
            ctx=ctx,
            report=report,
        ):
            sig["name"] = unique(sig["name"], names)
            signals.append(sig)
    if not signals:
        report.error(c, (*apath, "metrics"), "no metric could be imported: a gate needs a signal")
    report.leftovers(c, apath, analysis, _HANDLED_ANALYSIS | set(_WHY_ANALYSIS), "no gatekeeper equivalent")
    stage = _iteration_stage(c, apath, analysis, interval, report)
    consumed = {"iterations", "match", "mirror", "mirrorWeight"} if stage else set()
    for k in _WHY_ANALYSIS:
        if k in analysis and k not in consumed:
            report.unexpressed(c, (*apath, k), _WHY_ANALYSIS[k])
    for k in ("service", "autoscalerRef", "ingressRef", "skipAnalysis", "suspend"):
        if k in spec:
            report.unexpressed(
                c, ("spec", k), "not an analysis setting: configure it on the routing/controller side"
            )
    gate: dict[str, Any] = {
        "apiVersion": "gatekeeper.dev/v1alpha1",
        "kind": "Gate",
        "name": slug(c.name or "flagger-canary"),
        "description": f"Imported from Flagger Canary {ns}/{c.name}",
    }
    used_vars = sorted(ctx["args"])
    if used_vars:
        gate["args"] = [
            {"name": v, "value": variables[v], "description": f"Flagger template variable '{v}'"}
            for v in used_vars
        ]
    if not ctx["urls"]:
        ctx["urls"].append(DEFAULT_METRICS_SERVER)
        report.assume(c, ("spec",), f"no metricsServer: Flagger's default {DEFAULT_METRICS_SERVER} is used")
    gate["source"] = {"prometheus": {"url": ctx["urls"][0], "step": f"{interval:g}s"}}
    scope_obs = obs or PROVIDERS[DEFAULT_PROVIDER]
    gate["scopes"] = {
        "canary": scope_obs["canary"](ns, target),
        "baseline": scope_obs["baseline"](ns, target),
    }
    report.assume(
        c,
        ("spec", "targetRef"),
        f"canary arm = workload '{target}', baseline arm = '{target}-primary' "
        f"(Flagger's primary), selected with the {provider if obs else DEFAULT_PROVIDER} "
        "labels",
    )
    gate["interval"] = f"{interval:g}s"
    for k in ("maxWeight", "stepWeight", "stepWeights"):
        if analysis.get(k) is not None:
            gate[k] = analysis[k]
    if stage:
        gate["stages"] = [stage]
    if spec.get("revertOnDeletion"):
        gate["revertOnDeletion"] = True
    gate["progressDeadline"] = f"{float(spec.get('progressDeadlineSeconds') or 600):g}s"
    hooks = _hooks(c, apath, analysis, report)
    if hooks:
        gate["hooks"] = hooks
    notify = _alerts(c, apath, analysis, docs, report)
    if notify:
        gate["notify"] = notify
    gate["signals"] = signals
    return gate


_COOKIE = re.compile(r"^\^\(\.\*\?;\)\?\((?P<name>[^=()]+)=(?P<value>[^()]+)\)\(;\.\*\)\?\$$")


def _iteration_stage(
    c: Doc, apath: tuple, analysis: dict[str, Any], interval: float, report: Report
) -> dict[str, Any] | None:
    """Flagger's A/B testing (`iterations` + `match`) and mirrored blue/green (`iterations` + `mirror`) as one
    stage of `iterations` x `interval` with no weighted traffic; passing it promotes, as in Flagger."""
    iterations = number(analysis.get("iterations"))
    if not iterations or any(analysis.get(k) is not None for k in ("stepWeight", "stepWeights")):
        return None
    stage: dict[str, Any] = {"weight": 0, "minDuration": f"{iterations * interval:g}s"}
    if analysis.get("match"):
        match = _ab_match(c, (*apath, "match"), analysis["match"], report)
        if match is None:
            return None
        stage["match"] = match
    elif analysis.get("mirror"):
        stage["mirror"] = float(number(analysis.get("mirrorWeight")) or 100)
        report.assume(c, (*apath, "mirror"), f"a shadow stage mirroring {stage['mirror']:g}% of requests")
    else:
        return None  # blue/green without mirroring: no live or mirrored traffic reaches the canary
    return stage


def _ab_match(c: Doc, path: tuple, match: Any, report: Report) -> dict[str, Any] | None:
    """One Flagger match entry of exact headers and/or the documented cookie regex, else listed."""
    if not isinstance(match, list) or len(match) != 1 or not isinstance(match[0], dict):
        report.unexpressed(
            c,
            path,
            "several match entries (any of them routes to the canary): a stage match is one AND of headers",
        )
        return None
    headers, cookie = {}, None
    for name, cond in (match[0].get("headers") or {}).items():
        cond = cond if isinstance(cond, dict) else {}
        if str(name).lower() == "cookie" and "regex" in cond and (m := _COOKIE.match(str(cond["regex"]))):
            cookie = {"name": m["name"], "value": m["value"]}
        elif set(cond) == {"exact"}:
            headers[str(name).lower()] = str(cond["exact"])
        else:
            report.unexpressed(
                c, (*path, 0, "headers", name), "only exact header values map to a stage match"
            )
            return None
    if set(match[0]) - {"headers"} or not (headers or cookie):
        report.unexpressed(c, (*path, 0), "only header and cookie conditions map to a stage match")
        return None
    return {"headers": headers, **({"cookie": cookie} if cookie else {})} if headers else {"cookie": cookie}


def _render(
    query: str,
    *,
    variables: dict[str, str],
    tvars: dict[str, Any],
    interval: str,
    ctx: dict,
    report: Report,
    doc: Doc,
    path: tuple,
) -> str | None:
    missing: list[str] = []

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "interval":
            return interval
        if name in variables:
            ctx["args"].add(name)
            return "${" + name + "}"
        if name.startswith("variables.") and name.split(".", 1)[1] in tvars:
            return str(tvars[name.split(".", 1)[1]])
        missing.append(m.group(0))
        return m.group(0)

    out = _VAR.sub(repl, query)
    if missing:
        report.unresolved(doc, path, f"template variable {missing[0]} has no value (templateVariables?)")
        return None
    return out.strip()


def _metric(
    c: Doc,
    path: tuple,
    m: dict,
    *,
    obs,
    provider,
    templates,
    ns,
    variables,
    failure_limit,
    interval,
    ctx,
    report,
) -> list[dict[str, Any]]:
    name = str(m.get("name") or f"metric-{path[-1]}")
    window = str(m.get("interval") or "1m")
    tr = report.mapping(c, (*path, "thresholdRange"), m.get("thresholdRange"))
    lo, hi = number(tr.get("min")), number(tr.get("max"))
    report.leftovers(
        c,
        path,
        m,
        {"name", "interval", "thresholdRange", "threshold", "templateRef", "query", "templateVariables"},
        "no gatekeeper equivalent",
    )
    base = {"name": slug(name), "kind": "threshold", "failureLimit": failure_limit}
    if m.get("templateRef"):
        ref = report.mapping(c, (*path, "templateRef"), m["templateRef"])
        tns = str(ref.get("namespace") or c.namespace or "default")
        t = next((d for d in templates if d.name == ref.get("name") and (d.namespace or tns) == tns), None)
        if t is None:
            report.unresolved(
                c, (*path, "templateRef"), f"MetricTemplate {tns}/{ref.get('name')} is not among the inputs"
            )
            return []
        tspec = report.mapping(t, ("spec",), t.data.get("spec"))
        ptype = str((tspec.get("provider") or {}).get("type", "prometheus"))
        if ptype != "prometheus":
            report.unexpressed(t, ("spec", "provider", "type"), f"provider '{ptype}': only prometheus maps")
            return []
        address = (tspec.get("provider") or {}).get("address")
        if address and address not in ctx["urls"]:
            if ctx["urls"]:
                report.unexpressed(
                    t, ("spec", "provider", "address"), "a second Prometheus address: one source per gate"
                )
            else:
                ctx["urls"].append(str(address))
        for k in ("secretRef", "insecureSkipVerify"):
            if k in (tspec.get("provider") or {}):
                report.unexpressed(t, ("spec", "provider", k), "set credentials/TLS on the gate's source")
        query = _render(
            str(tspec.get("query", "")),
            variables=variables,
            tvars=m.get("templateVariables") or {},
            interval=window,
            ctx=ctx,
            report=report,
            doc=t,
            path=("spec", "query"),
        )
        where, qdoc, qpath = f"metric '{name}' (template {t.name})", t, ("spec", "query")
        if lo is None and hi is None and number(m.get("threshold")) is not None:
            hi = number(m.get("threshold"))
    elif m.get("query"):
        query = _render(
            str(m["query"]),
            variables=variables,
            tvars={},
            interval=window,
            ctx=ctx,
            report=report,
            doc=c,
            path=(*path, "query"),
        )
        where, qdoc, qpath = f"metric '{name}'", c, (*path, "query")
        if lo is None and hi is None:
            hi = number(m.get("threshold")) or 0.0
    elif name in ("request-success-rate", "request-duration"):
        return builtin(
            c,
            path,
            m,
            name,
            obs=obs,
            provider=provider,
            lo=lo,
            hi=hi,
            window=window,
            base=base,
            report=report,
        )
    else:
        report.warn(
            c,
            path,
            f"metric '{name}' has neither a builtin name nor a templateRef: Flagger skips it "
            "silently (it always passes); imported as a signal that never passes until you give it "
            "a query",
        )
        return [
            {
                **base,
                "description": f"undefined in the source (Flagger skipped it): give '{name}' a query",
                "query": "absent(vector(1))",
                "min": 0,
            }
        ]
    if query is None:
        return []
    if lo is None and hi is None:
        report.warn(c, path, f"{where} has no thresholdRange: Flagger only fails it above 0")
        hi = 0.0
    b = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
    query = guard_query(query, passes=lambda n: inside(n, b), report=report, doc=qdoc, path=qpath, what=where)
    problem = promql_problem(query)
    if problem:
        report.error(qdoc, qpath, f"PromQL does not parse: {problem}")
        return []
    return [{**base, "description": f"Flagger {where}", "query": query, **b}]


def _hooks(c: Doc, apath: tuple, analysis: dict, report: Report) -> list[dict[str, Any]]:
    out = []
    for i, w in enumerate(report.sequence(c, (*apath, "webhooks"), analysis.get("webhooks"))):
        if not isinstance(w, dict) or not w.get("url"):
            report.unexpressed(c, (*apath, "webhooks", i), "a webhook needs a url")
            continue
        hook: dict[str, Any] = {
            "name": str(w.get("name") or f"hook-{i}"),
            "type": str(w.get("type") or "rollout"),
            "url": str(w["url"]),
        }
        sec = go_duration_seconds(w.get("timeout")) if w.get("timeout") else None
        hook["timeout"] = f"{sec:g}s" if sec else "10s"
        if w.get("retries") is not None:
            hook["retries"] = int(w["retries"])
        if w.get("metadata"):
            hook["metadata"] = {str(k): str(v) for k, v in w["metadata"].items()}
        report.leftovers(
            c,
            (*apath, "webhooks", i),
            w,
            {"name", "type", "url", "timeout", "retries", "metadata"},
            "no gatekeeper equivalent for this webhook field",
        )
        out.append(hook)
    return out


_SEVERITY = {"info": "info", "warn": "warning", "error": "critical"}
_FORMAT = {"slack": "slack", "msteams": "teams"}


def _alerts(c: Doc, apath: tuple, analysis: dict, docs: list[Doc], report: Report) -> list[dict[str, Any]]:
    out = []
    for i, a in enumerate(report.sequence(c, (*apath, "alerts"), analysis.get("alerts"))):
        ref = report.mapping(c, (*apath, "alerts", i), a).get("providerRef") or {}
        ref = ref if isinstance(ref, dict) else {}
        p = next((d for d in docs if d.kind == "AlertProvider" and d.name == ref.get("name")), None)
        if p is None:
            report.unresolved(
                c,
                (*apath, "alerts", i, "providerRef"),
                f"AlertProvider '{ref.get('name')}' is not among the inputs",
            )
            continue
        pspec = report.mapping(p, ("spec",), p.data.get("spec"))
        if not pspec.get("address"):
            report.unexpressed(p, ("spec",), "the address comes from a secret: add it to `notify` by hand")
            continue
        out.append(
            {
                "name": str(a.get("name") or p.name),
                "url": str(pspec["address"]),
                "format": _FORMAT.get(str(pspec.get("type")), "json"),
                "severity": _SEVERITY.get(str(a.get("severity") or "info"), "info"),
            }
        )
    return out
