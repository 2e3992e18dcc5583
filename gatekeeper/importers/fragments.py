"""Published fragments: documents without `apiVersion`/`kind`, as the peers' docs show them, recognised by their
shape and completed into the whole document they belong to (the kind is stated as an assumption).

The peers' docs print a part of a resource far more often than the whole: the Argo Rollouts analysis docs show
`metrics:` blocks and single metrics, Flagger's metrics docs show `analysis:` blocks, Keptn's show
`objectives:`. A fragment is wrapped into its resource (`spec`, `spec.metrics[0]`, `spec.analysis`) with its
line numbers kept, so every later note still points at the line of the file the person gave.

Must not: decide what a field means (the peer importers do), print, or read files.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from gatekeeper.importers.common import Doc, Report, slug

_ARGO_API = "argoproj.io/v1alpha1"
_FLAGGER_API = "flagger.app/v1beta1"
_KEPTN_API = "metrics.keptn.sh/v1beta1"
_API_OF_KIND = {
    **dict.fromkeys(("AnalysisTemplate", "ClusterAnalysisTemplate", "AnalysisRun", "Rollout"), _ARGO_API),
    **dict.fromkeys(("Canary", "MetricTemplate", "AlertProvider"), _FLAGGER_API),
    **dict.fromkeys(("AnalysisDefinition", "AnalysisValueTemplate", "Analysis", "KeptnMetricsProvider"), _KEPTN_API),
}  # fmt: skip
_ARGO_PROVIDERS = {
    "prometheus", "web", "job", "datadog", "newRelic", "wavefront", "kayenta", "cloudWatch", "graphite",
    "influxdb", "skywalking", "plugin",
}  # fmt: skip
_ARGO_METRIC_KEYS = {
    "successCondition", "failureCondition", "failureLimit", "inconclusiveLimit", "consecutiveErrorLimit",
    "consecutiveSuccessLimit", "initialDelay", "count", "interval",
}  # fmt: skip
_FLAGGER_BUILTINS = {"request-success-rate", "request-duration"}
_FLAGGER_ANALYSIS_KEYS = {
    "interval",
    "threshold",
    "maxWeight",
    "stepWeight",
    "stepWeights",
    "iterations",
    "webhooks",
}


def complete(doc: Doc, report: Report) -> Doc:
    """`doc` as the whole peer document when it is a known fragment (and a note saying what was assumed)."""
    d = doc.data
    if not isinstance(d, dict) or ("apiVersion" in d and "kind" in d):
        return doc
    if isinstance(d.get("kind"), str) and d["kind"] in _API_OF_KIND:
        api = _API_OF_KIND[d["kind"]]
        report.assume(doc, ("kind",), f"no apiVersion: read as {api} {d['kind']}")
        return Doc(file=doc.file, data={"apiVersion": api, **d}, lines=doc.lines, index=doc.index)
    if "kind" in d or "apiVersion" in d or "spec_version" in d:
        return doc
    shape = _shape(d)
    if shape is None:
        return doc
    kind, prefix, what = shape
    name = _name_of(doc)
    data: Any = d
    if prefix[-1:] == (0,) and "name" not in d:
        data = {"name": name, **d}
        what += " without a name"
    for key in reversed(prefix):
        data = [data] if isinstance(key, int) else {key: data}
    whole = {"apiVersion": _API_OF_KIND[kind], "kind": kind, "metadata": {"name": name}, **data}
    report.assume(
        doc,
        (),
        f"no apiVersion/kind: {what}, read as the {'.'.join(str(k) for k in prefix)} of "
        f"{_API_OF_KIND[kind]} {kind} '{name}' (named after the file)",
    )
    return Doc(file=doc.file, data=whole, lines=_moved(doc.lines, prefix), index=doc.index)


def _moved(lines: dict[tuple[Any, ...], int], prefix: tuple[Any, ...]) -> dict[tuple[Any, ...], int]:
    first = lines.get((), 1)
    out = {(*prefix, *k): v for k, v in lines.items()}
    for i in range(len(prefix)):
        out.setdefault(prefix[:i], first)
    for key in ("apiVersion", "kind", "metadata"):
        out.setdefault((key,), first)
    return out


def _name_of(doc: Doc) -> str:
    stem = PurePath(doc.file).stem if doc.file not in ("-", "<stdin>") else "fragment"
    return slug(stem, fallback="fragment")


def _items(value: Any) -> list[dict[str, Any]]:
    return [x for x in value if isinstance(x, dict)] if isinstance(value, list) else []


def _argo_metric(m: dict[str, Any]) -> bool:
    provider = m.get("provider")
    if isinstance(provider, dict):
        return "type" not in provider and bool(set(provider) & _ARGO_PROVIDERS)
    return bool(set(m) & {"successCondition", "failureCondition", "consecutiveSuccessLimit"})


def _flagger_metric(m: dict[str, Any]) -> bool:
    return (
        "thresholdRange" in m
        or "templateRef" in m
        or "templateVariables" in m
        or (str(m.get("name")) in _FLAGGER_BUILTINS and "provider" not in m)
    )


def _shape(d: dict[str, Any]) -> tuple[str, tuple[Any, ...], str] | None:
    """(kind, where the fragment sits in it, why) for a known fragment shape; None otherwise."""
    metrics = _items(d.get("metrics"))
    spec = d.get("spec") if isinstance(d.get("spec"), dict) else None
    if spec is not None and any(_argo_metric(m) for m in _items(spec.get("metrics"))):
        return "AnalysisTemplate", (), "a `spec:` whose metrics have Argo providers"
    if spec is not None and isinstance(spec.get("strategy"), dict):
        return "Rollout", (), "a `spec:` with a rollout strategy"
    if spec is not None and isinstance(spec.get("analysis") or spec.get("canaryAnalysis"), dict):
        return "Canary", (), "a `spec:` with a Flagger analysis"
    if metrics and any(_flagger_metric(m) for m in metrics) and not any(_argo_metric(m) for m in metrics):
        return "Canary", ("spec", "analysis"), "an `analysis` block (metrics with thresholdRange/templateRef)"
    if metrics and (any(_argo_metric(m) for m in metrics) or "dryRun" in d or "measurementRetention" in d):
        return "AnalysisTemplate", ("spec",), "a `metrics:` block whose metrics have Argo providers"
    if isinstance(d.get("analysis") or d.get("canaryAnalysis"), dict):
        return "Canary", ("spec",), "a Canary spec (`analysis:`)"
    if isinstance(d.get("strategy"), dict) and set(d["strategy"]) & {"canary", "blueGreen"}:
        return "Rollout", ("spec",), "a Rollout spec (`strategy:`)"
    provider = d.get("provider")
    if isinstance(provider, dict) and "type" in provider and "query" in d:
        return "MetricTemplate", ("spec",), "a MetricTemplate spec (`provider.type` and `query`)"
    if isinstance(provider, dict) and "name" in provider and "query" in d:
        return "AnalysisValueTemplate", ("spec",), "an AnalysisValueTemplate spec (`provider.name`, `query`)"
    if _items(d.get("objectives")) and any("analysisValueTemplateRef" in o for o in _items(d["objectives"])):
        return "AnalysisDefinition", ("spec",), "an `objectives:` block with analysisValueTemplateRef"
    if _argo_metric(d) or (set(d) & _ARGO_METRIC_KEYS and not set(d) & _FLAGGER_ANALYSIS_KEYS - {"interval"}):
        return "AnalysisTemplate", ("spec", "metrics", 0), "a single Argo metric"
    if set(d) & _FLAGGER_ANALYSIS_KEYS:
        return "Canary", ("spec", "analysis"), "an `analysis` block"
    return None
