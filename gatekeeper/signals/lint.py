"""Offline checks of a gate's queries: render every query for both arms and parse it with a real PromQL parser
(`promql-parser`), so a typo is caught by `gatekeeper lint` before the gate ever runs."""

from __future__ import annotations

from gatekeeper.signals import promql
from gatekeeper.signals.context import EvalContext
from gatekeeper.signals.registry import render_queries
from gatekeeper.signals.render import RenderError
from gatekeeper.sources.base import QueryResult
from gatekeeper.spec.load import SpecIssue
from gatekeeper.spec.models import GateSpec
from gatekeeper.spec.window import Window


class _NoSource:
    """A `MetricsSource` that refuses: lint renders queries and never runs them."""

    def instant(self, query: str, *, at: float) -> QueryResult:
        raise RuntimeError("lint does not query")

    def range(self, query: str, *, start: float, end: float, step: float) -> QueryResult:
        raise RuntimeError("lint does not query")


def check_queries(gate: GateSpec) -> list[SpecIssue]:
    """Every rendered query parses; selectors are plain where they must be. Returns issues (empty: clean)."""
    window = Window(start=0.0, end=gate.source.prometheus.step * 10, step=gate.source.prometheus.step)
    ctx = EvalContext(gate=gate, metrics=_NoSource(), window=window, stage=gate.stages[0], alpha=gate.alpha)
    issues: list[SpecIssue] = []
    for i, signal in enumerate(gate.signals):
        field = f"signals[{i}] ({signal.name})"
        try:
            queries = render_queries(signal, ctx)
        except RenderError as e:
            issues.append(SpecIssue(field, str(e), "fix the selector or query"))
            continue
        for label, query in queries.items():
            try:
                promql.parse(query)
            except ValueError as e:
                issues.append(
                    SpecIssue(field, f"{label} query does not parse ({e}): {query}", "fix the PromQL syntax")
                )
    for j, sel in enumerate(gate.side_effects):
        try:
            promql.parse(sel)
        except ValueError as e:
            issues.append(
                SpecIssue(f"sideEffects[{j}]", f"'{sel}' does not parse ({e})", "use a counter selector")
            )
    return issues
