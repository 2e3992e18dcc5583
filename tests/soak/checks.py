"""What the API server's record says about one gate's rollout: every routing change, checked against the status
stored right before it, and the stage clock as each stored status tells it.

* lost / doubled: the route's sequence of canary weights against what the final phase implies (promoted: every
  stage's weight once, in order; rolled back: the stages reached, then 0), by longest common subsequence:
  expected changes missing are lost, changes beyond them are doubled;
* exceeding: a route weight above what the Gate had recorded before it (its weight, or a pending intent's
  target): traffic the evidence did not support, the peers' 70-100%-after-rollback bug;
* short stages: a stage's clock (``stageStartedAt`` once its routing is done) to the next stage's (or the
  promotion) shorter than the stage's ``minDuration``, in gate time;
* restarted: a stage whose clock started twice (an analysis restarted from zero), or a second ``start``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from gatekeeper.spec.status import GateStatus, Phase
from tests.soak.world import Stored


@dataclass
class GateFigures:
    name: str
    kind: str
    phase: str
    weights: list[int]
    expected: list[int]
    lost: int = 0
    doubled: int = 0
    exceeding: list[str] = field(default_factory=list)
    short_stages: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)
    inconsistent: str = ""  # the route and the final status disagree, or an intent is still pending

    @property
    def anomalous(self) -> bool:
        return bool(self.lost or self.doubled or self.exceeding or self.short_stages or self.restarted
                    or self.inconsistent or self.phase not in ("Promoted", "RolledBack"))  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_gate(
    log: list[Stored],
    *,
    gate: str,
    kind: str,
    route: str,
    weights: tuple[int, ...],
    min_duration: float,
    initial: int = 0,
) -> GateFigures:
    """``initial``: the route's canary weight before the rollout."""
    status = GateStatus()
    seq: list[int] = []
    last_w: int | None = initial
    exceeding: list[str] = []
    starts: dict[int, list[float]] = {}
    history: set[tuple[float, str]] = set()
    for item in log:
        if item.what == "gate" and item.name == gate:
            status = GateStatus.model_validate(item.status)
            done = status.intent is None or status.intent.done
            if done and status.stage_started_at is not None:
                seen = starts.setdefault(status.stage, [])
                if status.stage_started_at not in seen:
                    seen.append(status.stage_started_at)
            history |= {(h.time, h.action) for h in status.history if h.action in ("start", "promote")}
        elif item.what == kind and item.name == route:
            w = item.weight
            if w is None or w == last_w:
                continue
            allowed = status.weight
            if status.intent is not None and not status.intent.done:
                allowed = max(allowed, status.intent.to_weight)
            if w > allowed + 1e-9:
                exceeding.append(
                    f"route {last_w}->{w} at rv {item.rv} while the Gate had stage {status.stage} at "
                    f"{status.weight:g}% (intent {status.intent.model_dump() if status.intent else None})"
                )
            seq.append(w)
            last_w = w
    final = status
    k = final.stage
    if final.phase == Phase.PROMOTED:
        expected = list(weights)
    elif final.phase == Phase.ROLLED_BACK:
        expected = [*weights[: k + 1], 0]
    else:
        expected = list(weights[: k + 1]) if final.stage_started_at is not None else []
    if final.intent is not None and not final.intent.done:  # the record ends inside a change (no process was
        # left to finish it): whether its routing write was made yet is open, so it is neither lost nor doubled
        to = round(final.intent.to_weight)
        if expected and expected[-1] == to and last_w != to:
            expected.pop()
        elif last_w == to and expected[-1:] != [to]:
            expected.append(to)
    common = _lcs(seq, expected)
    fig = GateFigures(gate, kind, final.phase.value, seq, expected, lost=len(expected) - common,
                      doubled=len(seq) - common, exceeding=exceeding)  # fmt: skip
    first = {s: min(v) for s, v in starts.items()}
    for s in sorted(first):
        nxt = first.get(s + 1)
        if nxt is None and s == len(weights) - 1 and final.phase == Phase.PROMOTED:
            nxt = max((t for t, a in history if a == "promote"), default=None)
        if nxt is not None and nxt - first[s] < min_duration - 1e-6:
            fig.short_stages.append(f"stage {s + 1} lasted {nxt - first[s]:.1f}s < {min_duration:g}s")
    fig.restarted = [f"stage {s + 1} clock started {len(v)} times" for s, v in starts.items() if len(v) > 1]
    if sum(1 for _, a in history if a == "start") > 1:
        fig.restarted.append("the rollout started more than once")
    if (
        last_w is not None
        and final.phase in (Phase.PROMOTED, Phase.ROLLED_BACK)
        and last_w != round(final.weight)
    ):
        fig.inconsistent = f"route at {last_w}% but the Gate says {final.weight:g}%"
    elif (
        final.intent is not None
        and not final.intent.done
        and final.phase in (Phase.PROMOTED, Phase.ROLLED_BACK)
    ):
        fig.inconsistent = "an intent is still pending"
    return fig


def _lcs(a: list[int], b: list[int]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def totals(figures: list[GateFigures]) -> dict[str, int]:
    return {
        "gates": len(figures),
        "promoted": sum(f.phase == "Promoted" for f in figures),
        "rolled_back": sum(f.phase == "RolledBack" for f in figures),
        "unfinished": sum(f.phase not in ("Promoted", "RolledBack") for f in figures),
        "routing_changes": sum(len(f.weights) for f in figures),
        "lost": sum(f.lost for f in figures),
        "doubled": sum(f.doubled for f in figures),
        "exceeding_stage_weight": sum(len(f.exceeding) for f in figures),
        "stages_shorter_than_minimum": sum(len(f.short_stages) for f in figures),
        "analyses_restarted": sum(len(f.restarted) for f in figures),
        "inconsistent_at_end": sum(bool(f.inconsistent) for f in figures),
    }
