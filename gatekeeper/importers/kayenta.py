"""Kayenta canary config (JSON; optionally wrapped with its `executionRequest`) -> a gate in `mode: kayenta`.

Carried over (Kayenta's docs/canary-config.md, PrometheusMetricsService.buildQuery, NetflixACAJudge):
each Prometheus metric becomes a signal whose query is Kayenta's (`PromQL:` inline templates verbatim,
otherwise `avg(metricName{filters, labelBindings}) by (groupByFields)`); the label matcher holding `${scope}`
becomes `${selector}`, with the control scope as baseline arm and the experiment scope as canary arm
(arguments `canary_scope` / `baseline_scope`); `direction`, `critical`, `groups` (first group) and
`effectSize.allowedIncrease/allowedDecrease` (as `tolerance` around 1, or around 0.5 with `measure: cles`,
kept as `effectMeasure`) and `outliers` (`outliers`, `outlierFactor`) map to the signal; `classifier.groupWeights`
become signal weights (a group's weight split over its metrics; groups without a weight share the rest of
100 as in Kayenta); `scoreThresholds` become `scoring`.

Stricter on purpose (each listed in the report): NaN values are removed, never replaced by 0; every metric
must have data; a critical metric fails the canary at its allowed effect size.
"""

from __future__ import annotations

import re
from typing import Any

from gatekeeper.importers.common import (
    FAIL_CLOSED_BOUND,
    Doc,
    Report,
    arg_name,
    guard_query,
    number,
    promql_problem,
    slug,
    unique,
)

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_SCOPE_MATCHER = re.compile(
    r"""([A-Za-z_][A-Za-z0-9_-]*)\s*(=~|!=|!~|=)\s*(?:"([^"]*\$\{scope\}[^"]*)"|'([^']*\$\{scope\}[^']*)'|(\$\{scope\}[^,}\s]*))"""
)
_VAR_MATCHER = re.compile(
    r"""([A-Za-z_][A-Za-z0-9_-]*)\s*(=~|!=|!~|=)\s*(?:"([^"]*\$\{(\w+)\}[^"]*)"|'([^']*\$\{(\w+)\}[^']*)')"""
)
DEFAULT_SCOPE_LABEL = "instance"  # Kayenta's kayenta.prometheus.scopeLabel default
_SCOPE_DEFAULTS = {"canary_scope": "canary", "baseline_scope": "baseline"}
_HANDLED_CANARY = {"direction", "nanStrategy", "critical", "mustHaveData", "effectSize", "outliers", "muted"}
_HANDLED_QUERY = {
    "type", "metricName", "labelBindings", "groupByFields", "customFilter", "customInlineTemplate",
    "customFilterTemplate", "resourceType", "serviceType",
}  # fmt: skip


def is_kayenta(doc: Doc) -> bool:
    d = doc.data
    if not isinstance(d, dict):
        return False
    config = d.get("canaryConfig", d)
    if not isinstance(config, dict) or not isinstance(config.get("metrics"), list) or "kind" in config:
        return False
    if "classifier" in config or "judge" in config:
        return True
    return any(  # a config published without classifier and judge: its metrics have Kayenta's shape
        isinstance(m, dict) and "analysisConfigurations" in m and isinstance(m.get("query"), dict)
        for m in config["metrics"]
    )


def import_kayenta(docs: list[Doc], *, report: Report, given: dict[str, str]) -> dict[str, Any]:
    doc = docs[0]
    for extra in docs[1:]:
        report.unexpressed(extra, (), "one canary config per import: this one is ignored")
    wrapped = "canaryConfig" in doc.data
    root: tuple = ("canaryConfig",) if wrapped else ()
    config = doc.data["canaryConfig"] if wrapped else doc.data
    request = doc.data.get("executionRequest") or {} if wrapped else {}
    scopes_req = ((request.get("scopes") or {}).get("default") or {}) if request else {}
    ctx: dict[str, Any] = {
        "scope": None,
        "args": {},
        "given": given,
        "extended": {
            **_dict(_dict(scopes_req.get("controlScope")).get("extendedScopeParams")),
            **_dict(_dict(scopes_req.get("experimentScope")).get("extendedScopeParams")),
        },
    }
    metrics = report.sequence(doc, (*root, "metrics"), config.get("metrics"))
    weights = _weights(doc, root, config, metrics, report)
    signals: list[dict[str, Any]] = []
    names: set[str] = set()
    for i, m in enumerate(metrics):
        sig = _metric(doc, (*root, "metrics", i), m, config=config, weights=weights, ctx=ctx, report=report)
        if sig is not None:
            sig["name"] = unique(sig["name"], names)
            signals.append(sig)
    for g in {s.get("group") for s in signals}:
        members = [s for s in signals if s.get("group") == g and "weight" in s]
        for s in members:
            s["weight"] = round(s["weight"] / len(members), 6)
    _nodata_groups(doc, root, metrics, report)
    if not signals:
        report.error(doc, (*root, "metrics"), "no Prometheus metric could be imported: a gate needs a signal")
    label, op, template = ctx["scope"] or ("scope", "=", "${scope}")
    gate: dict[str, Any] = {
        "apiVersion": "gatekeeper.dev/v1alpha1",
        "kind": "Gate",
        "name": slug(str(config.get("name") or "kayenta-canary")),
        "description": f"Imported from Kayenta canary config '{config.get('name', '')}'",
        "mode": "kayenta",
    }
    defaults = {
        "canary_scope": (scopes_req.get("experimentScope") or {}).get("scope"),
        "baseline_scope": (scopes_req.get("controlScope") or {}).get("scope"),
        "location": (scopes_req.get("experimentScope") or {}).get("location"),
    }
    args = [
        {"name": "canary_scope", "description": "Kayenta experiment scope (the canary)"},
        {"name": "baseline_scope", "description": "Kayenta control scope (the baseline)"},
    ]
    args += [{"name": arg_name(v), "description": f"Kayenta variable ${{{v}}}"} for v in sorted(ctx["args"])]
    for a in args:
        value = given.get(a["name"], defaults.get(a["name"]))
        if value is None and a["name"] in _SCOPE_DEFAULTS:
            value = _SCOPE_DEFAULTS[a["name"]]
            report.assume(
                doc,
                root,
                f"no {a['name']} given (Kayenta takes scopes from the run request): "
                f"'{value}' until you pass --arg {a['name']}=…",
            )
        if value is not None:
            a["value"] = str(value)
    gate["args"] = args
    prefix = "" if op == "=" else op
    gate["scopes"] = {
        "canary": {label: prefix + template.replace("${scope}", "${canary_scope}")},
        "baseline": {label: prefix + template.replace("${scope}", "${baseline_scope}")},
    }
    step = number((scopes_req.get("controlScope") or {}).get("step"))
    if step:
        gate["source"] = {"prometheus": {"step": f"{step:g}s"}}
    gate["scoring"] = _thresholds(doc, root, config, request, report)
    gate["signals"] = signals
    report.leftovers(
        doc,
        root,
        config,
        {
            "name",
            "description",
            "metrics",
            "classifier",
            "templates",
            "judge",
            "applications",
            "id",
            "createdTimestamp",
            "updatedTimestamp",
            "createdTimestampIso",
            "updatedTimestampIso",
            "configVersion",
        },
        "no gatekeeper equivalent",
    )
    return gate


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _groups(m: Any) -> list[str]:
    groups = _dict(m).get("groups")
    return [str(g) for g in groups] if isinstance(groups, list) and groups else ["default"]


def _weights(doc: Doc, root: tuple, config: dict, metrics: list, report: Report) -> dict[str, float]:
    """Per-group weight, Kayenta style: configured percents; unweighted groups share what is left of 100."""
    path = (*root, "classifier", "groupWeights")
    configured: dict[str, float] = {}
    for k, v in report.mapping(doc, path, _dict(config.get("classifier")).get("groupWeights")).items():
        if number(v) is None:
            report.error(doc, (*path, k), f"group weight '{v}' is not a number")
        else:
            configured[str(k)] = float(v)
    groups: list[str] = []
    for m in metrics:
        for g in _groups(m):
            if str(g) not in groups:
                groups.append(str(g))
    rest = [g for g in groups if g not in configured]
    share = (100.0 - sum(configured.values())) / len(rest) if rest else 0.0
    return {g: configured.get(g, share) for g in groups}


def _query(doc: Doc, path: tuple, q: dict, config: dict, ctx: dict, report: Report) -> str | None:
    """The PromQL Kayenta builds (PrometheusMetricsService.buildQuery): a `PromQL:` template verbatim, else
    `avg(metricName{custom filter, labelBindings, resource-type filters}) by (groupByFields)`."""
    report.leftovers(doc, path, q, _HANDLED_QUERY, "not a field of Kayenta's Prometheus query: ignored")
    inline = q.get("customInlineTemplate")
    name = q.get("customFilterTemplate")
    filt = q.get("customFilter")
    if name and not inline:
        templates = config.get("templates") if isinstance(config.get("templates"), dict) else {}
        if name not in templates:
            known = ", ".join(sorted(map(str, templates))) or "none"
            report.unresolved(
                doc,
                (*path, "customFilterTemplate"),
                f"template '{name}' is not in the config's templates (defined: {known})",
            )
            return None
        filt = templates[name]
    if inline:
        filt = inline
    if filt and str(filt).startswith("PromQL:"):
        return str(filt)[len("PromQL:") :].strip()
    if not q.get("metricName"):
        report.error(doc, path, "a Prometheus metric needs metricName or a 'PromQL:' template")
        return None
    bindings = [str(b) for b in report.sequence(doc, (*path, "labelBindings"), q.get("labelBindings"))]
    if filt:
        filters = [t.strip() for t in str(filt).split(",") if t.strip()] + bindings
    else:
        scope_filters = _resource_filters(doc, path, q, ctx, report)
        if scope_filters is None:
            return None
        filters = bindings + scope_filters
    query = f"avg({q['metricName']}{{{','.join(filters)}}})"
    if q.get("groupByFields"):
        report.unexpressed(
            doc,
            (*path, "groupByFields"),
            "one value per arm per step is compared here: the series "
            "are averaged together instead of classified per group",
        )
    return query


def _resource_filters(doc: Doc, path: tuple, q: dict, ctx: dict, report: Report) -> list[str] | None:
    """Kayenta's scope filters without a custom filter: by resource type, on the account's scope label."""
    rtype = q.get("resourceType") or ctx["extended"].get("resourceType")
    label = str(ctx["given"].get("scope_label") or DEFAULT_SCOPE_LABEL)
    if rtype == "aws_ec2_instance":
        return ['asg_groupName="${scope}"', 'zone=~"${location}.{1}"']
    if rtype == "gce_instance":
        if "scope_label" not in ctx["given"]:
            report.assume(
                doc,
                path,
                f"gce_instance selects the scope on the account's scopeLabel: Kayenta's default '{label}' "
                "(pass --arg scope_label=LABEL for another)",
            )
        return [f'{label}=~"${{scope}}-.{{4}}"', 'zone=~".+/zones/${location}-.{1}"']
    if rtype:
        report.unresolved(
            doc,
            (*path, "resourceType"),
            f"resourceType '{rtype}' has no filter in Kayenta's Prometheus integration: write a "
            'customFilterTemplate (e.g. app="${scope}") instead',
        )
        return None
    if "scope_label" not in ctx["given"]:
        report.assume(
            doc,
            path,
            f"no customFilterTemplate and no resourceType: the scope is read from Kayenta's default scope label "
            f'as {label}="${{scope}}" (pass --arg scope_label=LABEL for the account\'s scopeLabel, or write a '
            "customFilterTemplate)",
        )
    return [f'{label}="${{scope}}"']


def _metric(doc: Doc, path: tuple, m: Any, *, config, weights, ctx, report) -> dict[str, Any] | None:
    if not isinstance(m, dict):
        report.error(doc, path, "a metric must be an object")
        return None
    name = str(m.get("name") or f"metric-{path[-1]}")
    q = report.mapping(doc, (*path, "query"), m.get("query"))
    if str(q.get("type", "prometheus")) != "prometheus":
        report.unexpressed(
            doc, (*path, "query", "type"), f"metric '{name}' reads {q.get('type')}: only prometheus maps"
        )
        return None
    query = _query(doc, (*path, "query"), q, config, ctx, report)
    if query is None:
        return None
    query = _selector(doc, path, name, query, ctx, report)
    if query is None:
        return None
    query = guard_query(
        query,
        passes=lambda n: True,
        report=report,
        doc=doc,
        path=(*path, "query"),
        what=f"metric '{name}' (a constant for both arms is a Kayenta Pass)",
    )
    problem = promql_problem(query)
    if problem:
        report.error(doc, (*path, "query"), f"PromQL does not parse: {problem}")
        return None
    ac = report.mapping(doc, (*path, "analysisConfigurations"), m.get("analysisConfigurations"))
    canary = report.mapping(doc, (*path, "analysisConfigurations", "canary"), ac.get("canary"))
    cpath = (*path, "analysisConfigurations", "canary")
    groups = _groups(m)
    if len(groups) > 1:
        report.unexpressed(
            doc, (*path, "groups"), f"metric '{name}' counts only in its first group '{groups[0]}'"
        )
    weight = weights.get(groups[0], 0.0)
    sig: dict[str, Any] = {
        "name": slug(name),
        "kind": "threshold",
        "description": f"Kayenta metric '{name}'",
        "query": query,
        **FAIL_CLOSED_BOUND,
        "group": groups[0],
    }
    if weight > 0:
        sig["weight"] = weight  # the group's; split over the group's imported metrics in import_kayenta
    else:
        sig["dryRun"] = True
        report.unexpressed(
            doc, (*path, "groups"), f"group '{groups[0]}' has weight 0: '{name}' is shown, not scored"
        )
    direction = str(canary.get("direction") or "either")
    sig["direction"] = direction if direction in ("increase", "decrease", "either") else "either"
    sig["tolerance"] = _tolerance(doc, cpath, canary, sig["direction"], report)
    if str(_dict(canary.get("effectSize")).get("measure", "meanRatio")) == "cles":
        sig["effectMeasure"] = "cles"
    outliers = _dict(canary.get("outliers"))
    if outliers.get("strategy") == "remove":
        sig["outliers"] = "remove"
        if number(outliers.get("outlierFactor")):
            sig["outlierFactor"] = float(number(outliers.get("outlierFactor")))
    if canary.get("critical"):
        sig["critical"] = True
    if canary.get("muted"):
        sig["dryRun"] = True
        sig.pop("weight", None)
        report.unexpressed(
            doc, (*cpath, "muted"), f"metric '{name}' is muted: measured and shown, never scored (dry run)"
        )
    _strictness(doc, cpath, name, canary, report)
    report.leftovers(doc, cpath, canary, _HANDLED_CANARY, "no gatekeeper equivalent")
    if m.get("scopeName", "default") != "default":
        report.unexpressed(doc, (*path, "scopeName"), "only the default scope maps to the gate's scopes")
    return sig


def _selector(doc: Doc, path: tuple, name: str, query: str, ctx: dict, report: Report) -> str | None:
    found = _SCOPE_MATCHER.search(query)
    if not found:
        query = _arm_variable(doc, path, name, query, report)
        found = _SCOPE_MATCHER.search(query)
    if not found:
        report.unresolved(
            doc,
            (*path, "query"),
            f"metric '{name}' does not select by ${{scope}}: canary and baseline would be the same series",
        )
        return None
    triple = _triple(found)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", triple[0]):
        report.error(
            doc,
            (*path, "query"),
            f"metric '{name}' selects the scope with '{found.group(0)}': '{triple[0]}' is not a Prometheus label "
            "name (letters, digits, underscores), so Kayenta's query would not parse either",
        )
        return None
    if ctx["scope"] is not None and ctx["scope"] != triple:
        report.unexpressed(
            doc,
            (*path, "query"),
            f"metric '{name}' selects the scope with {found.group(0)}, another "
            f"metric with {ctx['scope'][0]}: a gate has one pair of scopes",
        )
        return None
    others = [m.group(0) for m in _SCOPE_MATCHER.finditer(query) if _triple(m) != triple]
    if others:
        report.unexpressed(
            doc, (*path, "query"), f"metric '{name}' also uses {others[0]}: one scope label per gate"
        )
        return None
    ctx["scope"] = triple
    out = _SCOPE_MATCHER.sub("${selector}", query)

    def var(mm: re.Match[str]) -> str:
        if mm.group(1) == "selector":
            return mm.group(0)
        ctx["args"][mm.group(1)] = True
        return "${" + arg_name(mm.group(1)) + "}"

    out = _VAR.sub(var, out)
    return re.sub(r"\{\s*,", "{", re.sub(r",\s*\}", "}", out))


def _triple(m: re.Match[str]) -> tuple[str, str, str]:
    """(label, operator, value template) of a scope matcher, whichever quoting it was written with."""
    return (m.group(1), m.group(2), m.group(3) or m.group(4) or m.group(5))


def _arm_variable(doc: Doc, path: tuple, name: str, query: str, report: Report) -> str:
    """A metric without `${scope}` whose filter holds one other variable (Kayenta fills variables per scope
    from each scope's extendedScopeParams): that variable tells the arms apart."""
    found = {m.group(4) or m.group(6) for m in _VAR_MATCHER.finditer(query)}
    if len(found) != 1:
        return query
    var = found.pop()
    report.assume(
        doc,
        (*path, "query"),
        f"metric '{name}' selects by ${{{var}}}, not ${{scope}}: assumed that ${{{var}}} tells canary and baseline "
        "apart (Kayenta fills it per scope from extendedScopeParams); pass its two values as canary_scope and "
        "baseline_scope",
    )
    return query.replace("${" + var + "}", "${scope}")


def _tolerance(doc: Doc, path: tuple, canary: dict, direction: str, report: Report) -> float:
    eff = report.mapping(doc, (*path, "effectSize"), canary.get("effectSize"))
    neutral = 0.5 if str(eff.get("measure", "meanRatio")) == "cles" else 1.0  # CLES: 0.5 is no change
    up = (number(eff.get("allowedIncrease")) or neutral) - neutral
    down = neutral - (number(eff.get("allowedDecrease")) or neutral)
    for k in ("criticalIncrease", "criticalDecrease"):
        if k in eff:
            report.unexpressed(
                doc,
                (*path, "effectSize", k),
                "a critical metric fails the canary at its allowed effect size here (stricter)",
            )
    if direction == "increase":
        return round(max(up, 0.0), 6)
    if direction == "decrease":
        return round(max(down, 0.0), 6)
    if abs(up - down) > 1e-9:
        report.unexpressed(
            doc,
            (*path, "effectSize"),
            f"asymmetric effect sizes (+{up:g} / -{down:g}): the stricter "
            f"{min(up, down):g} is used both ways",
        )
    return round(max(min(up, down), 0.0), 6)


def _strictness(doc: Doc, path: tuple, name: str, canary: dict, report: Report) -> None:
    if str(canary.get("nanStrategy", "remove")) == "replace":
        report.warn(
            doc,
            (*path, "nanStrategy"),
            f"metric '{name}': 'replace' turns missing data into 0, so an arm "
            "that sends nothing passes; NaNs are removed here and no data is NODATA",
        )


def _nodata_groups(doc: Doc, root: tuple, metrics: list, report: Report) -> None:
    optional: dict[str, list[bool]] = {}
    for m in metrics:
        canary = _dict(_dict(_dict(m).get("analysisConfigurations")).get("canary"))
        for g in _groups(m):
            optional.setdefault(str(g), []).append(not canary.get("mustHaveData", False))
    for g, flags in optional.items():
        if flags and all(flags):
            report.warn(
                doc,
                (*root, "classifier", "groupWeights"),
                f"group '{g}': no metric has mustHaveData, so if "
                "none returns data Kayenta scores the group 100; "
                "here every metric must have data and a group "
                "without data scores 0",
            )


def _thresholds(doc: Doc, root: tuple, config: dict, request: dict, report: Report) -> dict[str, float]:
    t = _dict(_dict(config.get("classifier")).get("scoreThresholds") or request.get("thresholds"))
    passing, marginal = number(t.get("pass")), number(t.get("marginal"))
    if passing is None or marginal is None:
        report.assume(
            doc,
            (*root, "classifier"),
            "no scoreThresholds (Kayenta takes them from the pipeline stage): "
            "gatekeeper's defaults pass >= 90, marginal >= 75 are used",
        )
        return {"passScore": passing or 90.0, "marginalScore": marginal or 75.0}
    return {"passScore": passing, "marginalScore": marginal}
