"""The gate's false-alarm budget, split over its signals."""

from __future__ import annotations

from gatekeeper.spec.models import GateSpec

__all__ = ["signal_alphas"]


def signal_alphas(gate: GateSpec) -> dict[str, float]:
    """Bonferroni split of the gate's alpha by signal weight over voting signals (dry-run ones get a share too,
    computed as if they voted, so promoting one later does not change its numbers)."""
    voting = sum(s.weight for s in gate.signals if not s.dry_run)
    return {s.name: gate.alpha * s.weight / voting for s in gate.signals}
