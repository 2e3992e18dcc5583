"""The README's reliability table, from the full-mode results only (``bench/results/soak-*.json``, ``fuzz.json``).

    .venv/bin/python bench/soak_table.py            # prints the Markdown table
    .venv/bin/python bench/soak_table.py --readme   # and writes it between the README's soak-table markers

Each row is one goal of a part, beside the figure the run measured, whether it was met, and the run's context
(size, wall time, load average). A part that has no full-mode result yet is listed as not run: the table never
shows a figure that no run produced.
"""

from __future__ import annotations

import calendar
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PARTS = {
    "crashes": ("1. kill -9 at random points, all four routers", "kills"),
    "failover": ("2. leader failover among 3 replicas", "kill9_failovers"),
    "outages": ("3. Prometheus outages, 5 s to 30 min of gate time", "outages"),
    "fight": ("4. a writer fighting over the route", "episodes"),
    "upgrade": ("5. upgrade mid-rollout to a status format one higher", "gates"),
}


def all_of(key: str, figures: dict[str, Any]) -> int | None:
    """For an "all" goal: how many there are (fighter episodes, gates, unfinished gates)."""
    if key.startswith("fighters_"):
        return figures.get("fighters")
    if key == "gates_continued_from_stored_evidence":
        return figures.get("gates")
    if key == "gates_the_old_build_refused_after_rollback" and "gates" in figures:
        return figures["gates"] - (figures.get("by_stage") or {}).get("promoted", 0)
    return None


def met(goal: Any, value: Any, figures: dict[str, Any], key: str) -> str:
    """ "yes" / "**no**" / "" (a goal this table cannot judge by itself)."""
    if value is None:
        return "**no figure**"
    if isinstance(goal, (int, float)):
        return "yes" if value == goal else "**no**"
    text = str(goal).replace(",", "")
    if m := re.match(r"\s*(<=|>=|<|>)\s*([\d.]+)", text):
        op, bound = m.group(1), float(m.group(2))
        ok = {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound}[op]
        return "yes" if ok else "**no**"
    if text.startswith("all") and (n := all_of(key, figures)) is not None:
        return "yes" if value >= n else "**no**"  # the old build may refuse promoted gates as well
    return ""


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def load_part(part: str) -> dict[str, Any] | None:
    """A part's full-mode result; runs split over seeds (``soak-PART-seedN.json``, run side by side because a
    kill cycle is bound by wall time, not CPU) are added up: counts summed, wall time the longest."""
    path = RESULTS / f"soak-{part}.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    shards = [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"soak-{part}-seed*.json"))]
    shards = [d for d in shards if d.get("mode") == "full"]
    if not shards:
        return None
    doc = dict(shards[0])
    doc["figures"] = {}
    for d in shards:
        for k, v in d.get("figures", {}).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                doc["figures"][k] = doc["figures"].get(k, 0) + v
    for k in ("kills", "processes", "epochs"):
        if all(isinstance(d.get(k), int) for d in shards):
            doc[k] = sum(d[k] for d in shards)
    spans = [_span(d) for d in shards]
    doc["seconds"] = _covered(spans)  # wall time with at least one run going
    doc["at_once"] = max(sum(a <= t < b for a, b in spans) for t, _ in spans)
    loads = [x for d in shards for x in (d["machine"]["load_before"][0], d["machine"]["load_after"][0])]
    doc["machine"] = {**doc.get("machine", {}), "load_range": (min(loads), max(loads))}
    doc["commit"] = "/".join(sorted({str(d.get("commit", "?")) for d in shards}))
    doc["shards"] = len(shards)
    return doc


def _span(doc: dict[str, Any]) -> tuple[float, float]:
    """(start, end) of a run in seconds since the epoch: its `when` is written when it ends."""
    end = calendar.timegm(time.strptime(doc["when"], "%Y-%m-%dT%H:%M:%SZ"))
    return end - float(doc.get("seconds") or 0), float(end)


def _covered(spans: list[tuple[float, float]]) -> float:
    total, reach = 0.0, float("-inf")
    for a, b in sorted(spans):
        total += max(0.0, b - max(a, reach))
        reach = max(reach, b)
    return total


def _context(doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    before, after = m.get("load_range") or ((m.get("load_before") or [0])[0], (m.get("load_after") or [0])[0])
    seconds = doc.get("seconds") or 0
    runs = f"{doc['shards']} runs, {doc['at_once']} at a time, " if doc.get("shards") else ""
    return f"{runs}{seconds / 60:.0f} min, load {before:.1f} to {after:.1f}, commit {doc.get('commit', '?')}"


def rows() -> list[str]:
    out = ["| part | goal | measured | met | run |", "|---|---|---|---|---|"]
    for part, (title, _size) in PARTS.items():
        doc = load_part(part)
        if doc is None:
            out.append(f"| {title} | | not run in full mode | | |")
            continue
        figures = doc.get("figures", {})
        for i, (key, goal) in enumerate(doc.get("goals", {}).items()):
            value = figures.get(key, doc.get(key))
            n = all_of(key, figures) if str(goal).startswith("all") else None
            shown = _fmt(value) + ("" if n is None else f" of {n:,}" if value == n else f" ({n:,} needed)")
            out.append(
                f"| {title if i == 0 else ''} | `{key}` {goal} | {shown} | {met(goal, value, figures, key)} "
                f"| {_context(doc) if i == 0 else ''} |"
            )
    fuzz = RESULTS / "fuzz.json"
    title = "6. coverage-guided fuzzing of every input surface"
    if fuzz.exists():
        doc = json.loads(fuzz.read_text())
        totals = dict(doc.get("totals", {}))
        found = [
            t
            for t in doc.get("targets", [])
            if (t.get("finding") or {}).get("kind") in ("exception", "exit", "other")
        ]
        totals["uncaught"] = max(
            totals.get("uncaught", 0), len(found)
        )  # a target that exited is a finding too
        for i, (key, goal) in enumerate(doc.get("goals", {}).items()):
            value = totals.get(key)
            load = doc.get("machine", {}).get("load_before") or [0]
            ctx = (
                f"{len(doc.get('targets', {}))} targets, load {load[0]:.1f}, commit {doc.get('commit', '?')}"
            )
            out.append(
                f"| {title if i == 0 else ''} | `{key}` {goal} | {_fmt(value)} | {met(goal, value, totals, key)} "
                f"| {ctx if i == 0 else ''} |"
            )
    else:
        out.append(f"| {title} | | not run in full mode | | |")
    return out


def main() -> int:
    table = "\n".join(rows()) + "\n"
    print(table, end="")
    if "--readme" in sys.argv[1:]:
        readme = ROOT / "README.md"
        text = readme.read_text()
        begin, end = "<!-- soak-table -->\n", "<!-- /soak-table -->"
        if begin not in text or end not in text:
            print(f"README.md has no {begin.strip()} ... {end} block", file=sys.stderr)
            return 2
        head, rest = text.split(begin, 1)
        readme.write_text(head + begin + table + end + rest.split(end, 1)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
