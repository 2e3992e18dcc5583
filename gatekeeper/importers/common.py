"""What every importer shares: documents with line numbers, the import report, PromQL checks, fail-open
query patterns, names, and writing the gate.

The report is the importer's promise: every source field that was not carried over is listed with its file,
line and reason (`unexpressed`), every place where the peer would pass on missing data is a `warning` (and the
gate fails closed instead), every reference that does not resolve is `unresolved` (exit 2 unless
--allow-partial), every input that cannot be used at all is an `error` (exit 2), and every guess the importer
had to make is an `assumption`.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from gatekeeper.signals import promql
from gatekeeper.spec.load import compose_documents, line_map

Kind = Literal["unexpressed", "warning", "unresolved", "error", "assumption"]
_ORDER = {"error": 0, "unresolved": 1, "warning": 2, "unexpressed": 3, "assumption": 4}


class ImportInputError(ValueError):
    """Input that cannot be parsed at all; the message names the file and line."""


@dataclass(frozen=True)
class Note:
    kind: Kind
    file: str
    line: int | None
    field: str
    reason: str

    def render(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{self.kind}: {where}: {self.field}: {self.reason}"


@dataclass(frozen=True)
class ImportReport:
    """Everything the import could not carry over, warned about, or assumed."""

    notes: tuple[Note, ...] = ()

    def of(self, kind: Kind) -> tuple[Note, ...]:
        return tuple(n for n in self.notes if n.kind == kind)

    @property
    def blocking(self) -> tuple[Note, ...]:
        """Notes that make the import exit 2 unless --allow-partial (errors always do)."""
        return self.of("error") + self.of("unresolved")

    def lines(self) -> list[str]:
        return [n.render() for n in sorted(self.notes, key=lambda n: (_ORDER[n.kind], n.file, n.line or 0))]


@dataclass
class Doc:
    """One parsed document (a YAML document of a multi-document file, or a JSON file)."""

    file: str
    data: Any
    lines: dict[tuple[Any, ...], int]
    index: int = 0
    elided: tuple[int, ...] = ()  # lines of `...` read as "the rest omitted" (published examples)

    def line(self, *path: Any) -> int | None:
        p = tuple(path)
        while p and p not in self.lines:
            p = p[:-1]
        return self.lines.get(p)

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", "")) if isinstance(self.data, dict) else ""

    @property
    def name(self) -> str:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        return str((meta or {}).get("name", "")) if isinstance(meta, dict) else ""

    @property
    def namespace(self) -> str:
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        return str((meta or {}).get("namespace", "")) if isinstance(meta, dict) else ""


@dataclass
class Report:
    """Mutable collector; `freeze()` gives the `ImportReport`."""

    notes: list[Note] = field(default_factory=list)

    def add(self, kind: Kind, doc: Doc | None, path: tuple[Any, ...], reason: str) -> None:
        file = doc.file if doc else "-"
        line = doc.line(*path) if doc else None
        self.notes.append(Note(kind, file, line, dotted(path), reason))

    def unexpressed(self, doc: Doc, path: tuple[Any, ...], reason: str) -> None:
        self.add("unexpressed", doc, path, reason)

    def warn(self, doc: Doc, path: tuple[Any, ...], reason: str) -> None:
        self.add("warning", doc, path, reason)

    def unresolved(self, doc: Doc, path: tuple[Any, ...], reason: str) -> None:
        self.add("unresolved", doc, path, reason)

    def error(self, doc: Doc | None, path: tuple[Any, ...], reason: str) -> None:
        self.add("error", doc, path, reason)

    def assume(self, doc: Doc, path: tuple[Any, ...], reason: str) -> None:
        self.add("assumption", doc, path, reason)

    def mapping(self, doc: Doc, path: tuple[Any, ...], value: Any) -> dict[str, Any]:
        """`value` when it is a mapping; {} (and an error naming the field) when it is something else."""
        if isinstance(value, dict):
            return value
        if value is not None:
            self.error(doc, path, f"expected a mapping (key: value), found {type(value).__name__} '{value}'")
        return {}

    def sequence(self, doc: Doc, path: tuple[Any, ...], value: Any) -> list[Any]:
        """`value` when it is a list; [] (and an error naming the field) when it is something else."""
        if isinstance(value, list):
            return value
        if value is not None:
            self.error(doc, path, f"expected a list (lines starting with '- '), found {type(value).__name__}")
        return []

    def leftovers(self, doc: Doc, path: tuple[Any, ...], obj: Any, handled: set[str], reason: str) -> None:
        """List every key of mapping `obj` (at `path`) that the importer did not handle."""
        if isinstance(obj, dict):
            for key in obj:
                if key not in handled:
                    self.unexpressed(doc, (*path, key), reason)

    def freeze(self) -> ImportReport:
        return ImportReport(tuple(self.notes))


def dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "(document)"


# --- reading ------------------------------------------------------------------------------------------


def load_documents(text: str, *, file: str) -> list[Doc]:
    """All documents of a YAML (multi-document) or JSON text, with a line for every key and item.

    A line holding only `...` where YAML cannot mean "end of document" (indented, or followed by indented
    lines) is how the peers' docs elide part of an example: it is read as a blank line, and the first
    document says so (`Doc.elided`)."""
    text, elided = _without_elisions(text)
    stripped = text.lstrip()
    try:
        # the pure-Python parser on purpose: libyaml reads tab-separated flow text (most JSON with a typo)
        # as YAML, where this one fails and the JSON parser then names the line of the typo
        parsed = compose_documents(text, single=False, loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        if stripped.startswith(("{", "[")):
            return [_load_json(text, file=file)]
        mark = getattr(e, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else file
        problem = getattr(e, "problem", None) or str(e)
        raise ImportInputError(f"{where}: not valid YAML or JSON ({problem}); fix the syntax") from e
    docs = [
        Doc(file=file, data=data, lines=line_map(node), index=i)
        for i, (node, data) in enumerate(parsed)
        if data is not None
    ]
    if not docs:
        raise ImportInputError(f"{file}:1: no document found; give an Argo, Flagger, Kayenta or Keptn file")
    docs[0].elided = elided
    return docs


def _without_elisions(text: str) -> tuple[str, tuple[int, ...]]:
    lines = textwrap.dedent(text).split("\n")  # a block copied with its indentation (docs, tabs)
    out: list[int] = []
    for i, line in enumerate(lines):
        if line.strip() not in ("...", "…"):
            continue
        indented = line[: len(line) - len(line.lstrip())] != ""
        after = next((ln for ln in lines[i + 1 :] if ln.strip() and not ln.lstrip().startswith("#")), "")
        if indented or line.strip() == "…" or after[:1] in (" ", "\t"):
            lines[i] = ""
            out.append(i + 1)
    return "\n".join(lines), tuple(out)


def _load_json(text: str, *, file: str) -> Doc:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ImportInputError(f"{file}:{e.lineno}: not valid JSON ({e.msg}); fix the syntax") from e
    return Doc(file=file, data=data, lines=_json_lines(text, data))


def _json_lines(text: str, data: Any) -> dict[tuple[Any, ...], int]:
    """Approximate key lines for JSON that YAML could not read (tabs): the first match after the parent's."""
    out: dict[tuple[Any, ...], int] = {(): 1}
    starts = [0, *[m.end() for m in re.finditer("\n", text)]]

    def line_at(pos: int) -> int:
        lo = 0
        while lo + 1 < len(starts) and starts[lo + 1] <= pos:
            lo += 1
        return lo + 1

    def walk(obj: Any, path: tuple[Any, ...], pos: int) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                hit = text.find(json.dumps(k), pos)
                p = hit if hit >= 0 else pos
                out[(*path, k)] = line_at(p)
                walk(v, (*path, k), p)
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                out[(*path, i)] = out.get(path, 1)
                walk(v, (*path, i), pos)

    walk(data, (), 0)
    return out


# --- names and values ---------------------------------------------------------------------------------


def slug(text: str, *, fallback: str = "imported") -> str:
    """A DNS-label-like name (what the spec requires of gate and signal names)."""
    s = re.sub(r"[^a-z0-9.-]+", "-", str(text).lower()).strip("-.")
    s = re.sub(r"-{2,}", "-", s)[:63].strip("-.")
    return s or fallback


def arg_name(text: str) -> str:
    """A spec argument name (`${name}`): letters, digits, underscore."""
    s = re.sub(r"[^a-zA-Z0-9_]", "_", str(text))
    return s if re.match(r"^[a-zA-Z_]", s) else f"arg_{s}"


def unique(name: str, taken: set[str]) -> str:
    out, n = name, 2
    while out in taken:
        out = f"{name[:58]}-{n}"
        n += 1
    taken.add(out)
    return out


def number(value: Any) -> float | None:
    """A finite float from a YAML/JSON scalar or numeric string; None otherwise."""
    if isinstance(value, bool):
        return None
    try:
        x = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def go_duration_seconds(value: Any) -> float | None:
    """Seconds of a Go/Kubernetes duration (`1m30s`, `500ms`, `10s`) or a bare number; None if not one."""
    from gatekeeper.spec.durations import parse_duration

    try:
        return parse_duration(value)
    except ValueError:
        return None


# --- PromQL -------------------------------------------------------------------------------------------

_SPEC_VAR = re.compile(r"\$\{([^}]*)\}")
_FALLBACK = re.compile(
    r"\s*\bor\b\s*(?:on\s*\(\s*\)\s*)?vector\s*\(\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\)\s*$",
    re.IGNORECASE,
)


def promql_problem(query: str) -> str | None:
    """Parse a gate query offline (`${selector}` and arguments replaced by harmless stand-ins)."""

    def stand_in(m: re.Match[str]) -> str:
        name = m.group(1).strip()
        if name == "selector":
            return '__gk_scope__="x"'
        if name in ("window", "step"):
            return "1m"
        return "x"

    try:
        promql.parse(_SPEC_VAR.sub(stand_in, query))
    except ValueError as e:
        return str(e)
    return None


def empty_fallback(query: str) -> float | None:
    """The N of a trailing `or vector(N)` / `or on() vector(N)`: the value the query returns when empty."""
    m = _FALLBACK.search(query)
    return float(m.group(1)) if m else None


def strip_empty_fallback(query: str) -> str:
    return _FALLBACK.sub("", query).rstrip()


def guard_query(
    query: str, *, passes: Any, report: Report, doc: Doc, path: tuple[Any, ...], what: str
) -> str:
    """Remove a trailing `or vector(N)` when N would pass (`passes(N)`): the gate then sees "no data"."""
    n = empty_fallback(query)
    if n is None:
        return query
    if passes(n):
        report.warn(
            doc,
            path,
            f"{what}: the query returns {n:g} when there is no data ('or vector({n:g})'), which passes; the "
            "fallback is removed so that no data is NODATA and the gate fails closed",
        )
        return strip_empty_fallback(query)
    return query


# --- writing ------------------------------------------------------------------------------------------


def dump_gate(gate: dict[str, Any], *, report: ImportReport, sources: list[str]) -> str:
    """The gate as YAML, headed by a comment saying where it came from and what the import reported."""
    head = ["# Imported by `gatekeeper import` from: " + _comment(", ".join(sources))]
    lines = report.lines()
    if lines:
        head.append("# Import report (also printed on stderr):")
        head += [f"#   {_comment(line)}" for line in lines]
    ordered = {**gate, "signals": [_ordered(s) for s in gate.get("signals", [])]}
    body = yaml.dump(ordered, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)
    return "\n".join(head) + "\n" + body


_SIGNAL_ORDER = (
    "name",
    "kind",
    "description",
    "query",
    "bad",
    "total",
    "histogram",
    "quantile",
    "min",
    "max",
)


def _ordered(signal: dict[str, Any]) -> dict[str, Any]:
    first = {k: signal[k] for k in _SIGNAL_ORDER if k in signal}
    return {**first, **{k: v for k, v in signal.items() if k not in first}}


# what YAML can hold on one comment line (\x85, \u2028 and \u2029 are line breaks to a YAML 1.1 reader)
_UNPRINTABLE = re.compile("[^\x09\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _comment(text: str) -> str:
    """Text from the input kept on one comment line: a line break would end the comment (and let an input's
    field name write YAML into the gate), a character YAML cannot hold would make the file unloadable."""
    return _UNPRINTABLE.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), text)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (queries) as literal blocks, the way people write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if "\n" in value:
        text = "\n".join(line.rstrip() for line in value.strip("\n").splitlines())
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


def bounds(lo: float, hi: float, *, lo_closed: bool = True, hi_closed: bool = True) -> dict[str, float]:
    """Threshold `min`/`max` for the interval (gatekeeper's bounds are inclusive: an open end becomes the
    nearest float inside it, so a strict `<` stays strict)."""
    out: dict[str, float] = {}
    if math.isfinite(lo):
        out["min"] = lo if lo_closed else math.nextafter(lo, math.inf)
    if math.isfinite(hi):
        out["max"] = hi if hi_closed else math.nextafter(hi, -math.inf)
    return out


def inside(value: float, b: dict[str, float]) -> bool:
    return b.get("min", -math.inf) <= value <= b.get("max", math.inf)


FAIL_CLOSED_BOUND = {"min": math.inf}
"""A bound no finite value meets: the placeholder of signals judged by a scoring mode (kayenta, keptn), so
that the sequential judge, if it ever sees them, never passes them."""


def ensure_voting(signals: list[dict[str, Any]], gate: dict[str, Any], report: Report, doc: Doc) -> None:
    """The spec needs one voting signal. When the source had none that could vote, the whole gate becomes a
    dry run (evaluate, record, never act) and the signals vote with a bound that never passes."""
    if signals and all(s.get("dryRun") for s in signals):
        gate["dryRun"] = True
        for s in signals:
            s.pop("dryRun", None)
            if s.get("kind") == "threshold" and s.get("max") == math.inf:
                s.pop("max")
                s.update(FAIL_CLOSED_BOUND)
        report.warn(
            doc,
            (),
            "no signal of the source could vote (all dry run or without conditions): the gate is imported as a "
            "whole-gate dry run whose signals never pass",
        )


# --- shapes -------------------------------------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "mapping": (dict,),
    "list": (list,),
    "number": (int, float, str),  # numeric strings are read as numbers where a number is expected
    "text": (str, int, float),
}


def check_shapes(doc: Doc, expected: dict[str, str], report: Report) -> bool:
    """Check the fields named in `expected` (dotted paths, `*` for any list item or key) against their kind
    (mapping, list, number, text); each mismatch is an error naming its line. True when all fit."""
    ok = True
    for pattern, kind in expected.items():
        only, _, pattern = pattern.rpartition(":")  # `Kind:path` applies to documents of that kind only
        if only and only != doc.kind:
            continue
        for path, value in _matching(doc.data, tuple(pattern.split("."))):
            fits = isinstance(value, _TYPES[kind]) and not isinstance(value, bool)
            if kind == "number" and isinstance(value, str):
                fits = number(value) is not None
            if value is not None and not fits:
                shown = json.dumps(value) if not isinstance(value, str) else repr(value)
                report.error(doc, path, f"expected a {kind}, found {type(value).__name__} {shown[:60]}")
                ok = False
    return ok


def _matching(data: Any, pattern: tuple[str, ...], path: tuple[Any, ...] = ()) -> list[tuple[tuple, Any]]:
    if not pattern:
        return [(path, data)]
    head, rest = pattern[0], pattern[1:]
    if head == "*":
        items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
        return [m for k, v in items for m in _matching(v, rest, (*path, k))]
    if isinstance(data, dict) and head in data:
        return _matching(data[head], rest, (*path, head))
    return []
