"""Convert a peer's configuration documents into one gate: detect the family, check shapes, convert, report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatekeeper.importers.common import (
    Doc,
    ImportInputError,
    ImportReport,
    Report,
    check_shapes,
    dump_gate,
    load_documents,
)
from gatekeeper.importers.fragments import complete

__all__ = ["SHAPES", "ImportResult", "import_texts", "verify_gate"]


@dataclass(frozen=True)
class ImportResult:
    family: str  # argo | flagger | kayenta | keptn
    gate: dict[str, Any]
    text: str  # the gate as YAML, headed by the report as comments
    report: ImportReport


_ARGO_ANALYSIS = {"templates": "list", "templates.*": "mapping", "args": "list", "args.*": "mapping",
                  "dryRun": "list", "dryRun.*": "mapping"}  # fmt: skip
SHAPES: dict[str, dict[str, str]] = {
    "argo": {
        "spec": "mapping", "spec.metrics": "list", "spec.metrics.*": "mapping", "spec.args": "list",
        "spec.args.*": "mapping", "spec.dryRun": "list", "spec.dryRun.*": "mapping", "spec.templates": "list",
        "spec.templates.*": "mapping", "spec.progressDeadlineSeconds": "number", "spec.strategy": "mapping",
        "spec.strategy.canary": "mapping", "spec.strategy.blueGreen": "mapping",
        "spec.strategy.canary.steps": "list", "spec.strategy.canary.steps.*": "mapping",
        "spec.strategy.canary.steps.*.setWeight": "number", "spec.strategy.canary.steps.*.pause": "mapping",
        "spec.strategy.canary.steps.*.analysis": "mapping", "spec.strategy.canary.analysis": "mapping",
        **{f"spec.strategy.canary.analysis.{k}": v for k, v in _ARGO_ANALYSIS.items()},
        **{f"spec.strategy.canary.steps.*.analysis.{k}": v for k, v in _ARGO_ANALYSIS.items()},
        **{f"spec.strategy.blueGreen.{w}.{k}": v for w in ("prePromotionAnalysis", "postPromotionAnalysis")
           for k, v in {"": "mapping", **_ARGO_ANALYSIS}.items() if k} ,
    },
    "flagger": {
        "spec": "mapping", "spec.targetRef": "mapping", "spec.service": "mapping", "Canary:spec.provider": "text",
        "spec.progressDeadlineSeconds": "number", "spec.analysis": "mapping", "spec.canaryAnalysis": "mapping",
        **{f"spec.{a}.{k}": v for a in ("analysis", "canaryAnalysis") for k, v in {
            "metrics": "list", "metrics.*": "mapping", "metrics.*.thresholdRange": "mapping",
            "metrics.*.templateRef": "mapping", "match": "list", "match.*": "mapping",
            "match.*.headers": "mapping", "webhooks": "list", "webhooks.*": "mapping",
            "webhooks.*.metadata": "mapping", "alerts": "list", "alerts.*": "mapping",
            "alerts.*.providerRef": "mapping", "interval": "text", "threshold": "number",
        }.items()},
        "MetricTemplate:spec.provider": "mapping", "MetricTemplate:spec.provider.type": "text",
        "MetricTemplate:spec.query": "text",
    },
    "kayenta": {
        f"{root}{k}": v for root in ("", "canaryConfig.") for k, v in {
            "metrics": "list", "metrics.*": "mapping", "metrics.*.query": "mapping",
            "metrics.*.query.customFilterTemplate": "text", "metrics.*.query.labelBindings": "list",
            "metrics.*.groups": "list", "metrics.*.analysisConfigurations": "mapping",
            "templates": "mapping", "templates.*": "text", "classifier": "mapping",
        }.items()
    },
    "keptn": {
        "spec": "mapping", "spec.args": "mapping", "spec.objectives": "list", "spec.objectives.*": "mapping",
        "spec.objectives.*.weight": "number", "spec.objectives.*.analysisValueTemplateRef": "mapping",
        "spec.objectives.*.target": "mapping", "spec.provider": "mapping", "spec.totalScore": "mapping",
        "objectives": "list", "objectives.*": "mapping", "objectives.*.weight": "number",
        "indicators": "mapping", "total_score": "mapping", "filter": "mapping",
    },
}  # fmt: skip


def _family(doc: Doc) -> str | None:
    from gatekeeper.importers import argo, flagger, kayenta, keptn

    for name, test in (
        ("argo", argo.is_argo),
        ("flagger", flagger.is_flagger),
        ("keptn", keptn.is_keptn),
        ("kayenta", kayenta.is_kayenta),
    ):
        if test(doc):
            return name
    return None


def import_texts(
    inputs: list[tuple[str, str]], *, args: dict[str, str] | None = None, name: str | None = None
) -> ImportResult:
    """Import `(file name, text)` pairs as one gate. Raises `ImportInputError` on unparsable input."""
    from gatekeeper.importers import argo, flagger, kayenta, keptn

    report = Report()
    docs: list[Doc] = []
    for file, text in inputs:
        for doc in load_documents(text, file=file):
            if doc.elided:
                report.assume(
                    doc,
                    (),
                    "line(s) " + ", ".join(map(str, doc.elided)) + ": '...' read as an omitted part of a "
                    "published example and skipped",
                )
            docs.append(complete(doc, report))
    by_family: dict[str, list[Doc]] = {}
    for doc in docs:
        fam = _family(doc)
        if fam is None:
            report.unexpressed(
                doc,
                (),
                f"document {doc.index + 1} ({doc.kind or 'no kind'}) is not an input "
                "`gatekeeper import` knows: ignored",
            )
            continue
        by_family.setdefault(fam, []).append(doc)
    if not by_family:
        raise ImportInputError(
            f"{inputs[0][0] if inputs else '-'}:1: none of the documents is an Argo Rollouts, Flagger, Kayenta or "
            "Keptn configuration"
        )
    if len(by_family) > 1:
        raise ImportInputError(
            "the inputs mix " + " and ".join(sorted(by_family)) + " configurations: import one gate at a time"
        )
    family, fdocs = next(iter(by_family.items()))
    importer = {
        "argo": argo.import_argo,
        "flagger": flagger.import_flagger,
        "kayenta": kayenta.import_kayenta,
        "keptn": keptn.import_keptn,
    }[family]
    shapes = [check_shapes(d, SHAPES[family], report) for d in fdocs]
    try:
        if not all(shapes):
            gate = {"name": family, "signals": []}  # the report names every field of the wrong kind
        else:
            gate = importer(fdocs, report=report, given=dict(args or {}))
    except (AttributeError, TypeError, ValueError, KeyError) as e:  # a shape no check above anticipated
        files = ", ".join(sorted({f"{d.file}:{d.line() or 1}" for d in fdocs}))
        raise ImportInputError(
            f"{files}: a field has an unexpected type or value ({type(e).__name__}: {e}); check the "
            f"{family} document against its schema"
        ) from e
    if name:
        from gatekeeper.importers.common import slug

        gate["name"] = slug(name)
    frozen = report.freeze()
    text = dump_gate(gate, report=frozen, sources=sorted({d.file for d in fdocs}))
    return ImportResult(family=family, gate=gate, text=text, report=frozen)


def verify_gate(text: str, *, args: dict[str, str] | None = None) -> list[str]:
    """Load the gate text as `gatekeeper lint` does and parse every rendered query. Returns problems."""
    import yaml

    from gatekeeper.signals.lint import check_queries
    from gatekeeper.spec import SpecError, load_gate_text

    raw = yaml.safe_load(text) or {}
    fill = {
        a["name"]: f"ARG_{a['name']}"
        for a in raw.get("args") or []
        if isinstance(a, dict) and a.get("value") is None and isinstance(a.get("name"), str)
    }
    try:
        gate = load_gate_text(text, args={**fill, **(args or {})}, source="imported gate")
    except SpecError as e:
        return [i.render("imported gate") for i in e.issues]
    return [i.render("imported gate") for i in check_queries(gate)]
