"""Load a gate from YAML: fill `${args}`, validate, and report every problem with its line, field and a fix.

Reserved variables (`${selector}`, `${arm}`, `${window}`, `${step}`) are left for query rendering; any other
`${name}` must be a declared argument, or loading fails naming it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from gatekeeper.spec.models import GateSpec

RESERVED = frozenset({"selector", "arm", "window", "step"})
#: libyaml's parser when PyYAML was built with it (the wheels are): 20-30x faster than the pure-Python one
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_VAR = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a gate spec."""

    field: str
    message: str
    fix: str
    line: int | None = None

    def render(self, source: str = "") -> str:
        where = f"{source}:{self.line}" if self.line else source or "spec"
        return f"{where}: {self.field or '(top level)'}: {self.message}. Fix: {self.fix}"


class SpecError(ValueError):
    """A gate spec that cannot be used; `issues` lists every problem found, not just the first."""

    def __init__(self, issues: list[SpecIssue], *, source: str = "") -> None:
        self.issues = issues
        self.source = source
        super().__init__("\n".join(i.render(source) for i in issues))


def parse_args(pairs: list[str]) -> dict[str, str]:
    """Parse CLI `k=v` pairs."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SpecError(
                [SpecIssue("--arg", f"'{pair}' is not key=value", "write it as --arg service=checkout")]
            )
        out[key.strip()] = value
    return out


def load_gate(path: str | Path, *, args: dict[str, str] | None = None) -> GateSpec:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise SpecError(
            [SpecIssue("", f"cannot read {p}: {e.strerror}", "check the path")], source=str(p)
        ) from e
    return load_gate_text(decode_text(data, source=str(p)), args=args, source=str(p))


def decode_text(data: bytes, *, source: str = "") -> str:
    """A gate file's bytes as text: UTF-8 (YAML 1.2's default), else a `SpecError` naming the line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise SpecError(
            [SpecIssue("", f"not UTF-8 text (byte 0x{data[e.start]:02x})", "save the file as UTF-8", line)],
            source=source,
        ) from None


def load_gate_text(text: str, *, args: dict[str, str] | None = None, source: str = "") -> GateSpec:
    try:
        node, raw = next(iter(compose_documents(text)), (None, None))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        msg = str(getattr(e, "problem", None) or e)
        raise SpecError(
            [SpecIssue("", f"not valid YAML ({msg})", "fix the YAML syntax", line)], source=source
        ) from e
    if not isinstance(raw, dict):
        raise SpecError(
            [SpecIssue("", "the file is not a mapping", "start from gates/http-canary.yaml", 1)],
            source=source,
        )
    lines = line_map(node)
    if raw.get("kind") == "Gate" and isinstance(raw.get("spec"), dict):  # a Gate custom resource
        raw = _from_resource(raw)
        lines = {k[1:]: v for k, v in lines.items() if k[:1] == ("spec",)} | {(): 1}
    raw, issues = _substitute(raw, declared=raw.get("args") or [], given=args or {}, lines=lines)
    try:
        gate = GateSpec.model_validate(raw)
    except ValidationError as e:
        issues += [_issue(err, lines) for err in e.errors()]
    if issues:
        raise SpecError(sorted(issues, key=lambda i: (i.line or 0, i.field)), source=source)
    return gate


def _from_resource(obj: dict[str, Any]) -> dict[str, Any]:
    spec = dict(obj["spec"])
    meta = obj.get("metadata")
    spec.setdefault("name", meta.get("name") if isinstance(meta, dict) else None)
    return spec


def compose_documents(text: str, *, single: bool = True, loader: Any = None) -> list[tuple[yaml.Node, Any]]:
    """Each YAML document of `text` as (node tree, Python data), parsed once: the lines come from the nodes
    and the data is constructed from the same nodes (safe constructors only). `single`: more than one
    document is a YAML error, as with `yaml.safe_load`. `loader`: a PyYAML safe loader class (default: libyaml's
    when present). Raises `yaml.YAMLError`."""
    loader = (loader or _LOADER)(text)
    try:
        if single:
            node = loader.get_single_node()
            return [] if node is None else [(node, loader.construct_document(node))]
        out = []
        while loader.check_node():
            node = loader.get_node()
            out.append((node, loader.construct_document(node)))
        return out
    finally:
        loader.dispose()


def line_map(node: yaml.Node | None, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """YAML path (keys and list indexes) -> 1-based line, from a composed node tree."""
    out: dict[tuple[Any, ...], int] = {}
    if node is None:
        return out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = (*path, k.value)
            out[key] = k.start_mark.line + 1
            out.update({p: ln for p, ln in line_map(v, key).items() if p != key})
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out.update(line_map(v, (*path, i)))
    return out


def _substitute(
    raw: dict[str, Any], *, declared: Any, given: dict[str, str], lines: dict[tuple[Any, ...], int]
) -> tuple[dict[str, Any], list[SpecIssue]]:
    issues: list[SpecIssue] = []
    values: dict[str, str] = {}
    names: set[str] = set()
    for i, arg in enumerate(declared if isinstance(declared, list) else []):
        if isinstance(arg, dict) and isinstance(arg.get("name"), str):
            names.add(arg["name"])
            if arg.get("value") is not None:
                values[arg["name"]] = str(arg["value"])
            elif arg["name"] not in given:
                issues.append(
                    SpecIssue(
                        f"args[{i}].value",
                        f"argument '{arg['name']}' has no value",
                        f"pass --arg {arg['name']}=VALUE or give it a default 'value'",
                        lines.get(("args", i)),
                    )
                )
    for key in given:
        if key not in names:
            hint = _did_you_mean(key, names)
            issues.append(
                SpecIssue(
                    "--arg",
                    f"'{key}' is not an argument of this gate",
                    f"declare it under 'args'{hint}" if not hint else f"use{hint}",
                )
            )
    values.update(given)

    def walk(obj: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(obj, dict):
            return {k: obj[k] if path == () and k == "args" else walk(v, (*path, k)) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v, (*path, i)) for i, v in enumerate(obj)]
        if isinstance(obj, str):
            return _VAR.sub(lambda m: repl(m, path), obj)
        return obj

    def repl(m: re.Match[str], path: tuple[Any, ...]) -> str:
        name = m.group(1).strip()
        if name in RESERVED:
            return m.group(0)
        if name in values:
            return values[name]
        if name not in names:
            hint = _did_you_mean(name, names | RESERVED)
            issues.append(
                SpecIssue(
                    _dotted(path),
                    f"unknown variable '${{{name}}}'",
                    f"declare '{name}' under 'args'{hint}",
                    _line(lines, path),
                )
            )
        return m.group(0)

    return walk(raw, ()), issues


def _issue(err: Any, lines: dict[tuple[Any, ...], int]) -> SpecIssue:
    loc = _yaml_path(tuple(err["loc"]), lines)
    kind, msg = err["type"], err["msg"].removeprefix("Value error, ")
    field = _dotted(loc)
    if kind == "missing":
        fix = f"add '{loc[-1]}'" if loc else "add the field"
    elif kind == "extra_forbidden":
        allowed = _allowed(loc[:-1])
        hint = _did_you_mean(str(loc[-1]), allowed)
        fix = f"remove it{hint}" if hint else f"remove it; allowed here: {', '.join(sorted(allowed))}"
        msg = "unknown field"
    elif kind == "union_tag_invalid":
        fix = "use one of: ratio, latency, threshold, invariant, drift, duplicates, retries, health"
    elif kind == "literal_error":
        fix = msg.replace("Input should be", "use")
    else:
        fix = _fix_for(kind, msg)
    return SpecIssue(field, msg, fix, _line(lines, loc))


def _yaml_path(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> tuple[Any, ...]:
    """Pydantic adds union tags to locations (`signals.0.ratio.bad`); keep only the steps the YAML has."""
    kinds = {"ratio", "latency", "threshold", "invariant", "drift", "duplicates", "retries", "health"}
    out: tuple[Any, ...] = ()
    for i, step in enumerate(loc):
        tag = step in kinds and len(out) >= 2 and out[-2] == "signals" and (*out, step) not in lines
        if not tag and ((*out, step) in lines or i == len(loc) - 1 or isinstance(step, int)):
            out = (*out, step)
    return out


def _line(lines: dict[tuple[Any, ...], int], path: tuple[Any, ...]) -> int | None:
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path)


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def _allowed(path: tuple[Any, ...]) -> set[str]:
    from gatekeeper.spec import signals as sig

    model: type[BaseModel] = GateSpec
    for step in path:
        if isinstance(step, int):
            continue
        field = model.model_fields.get(_snake(step))
        ann = getattr(field, "annotation", None) if field else None
        inner = _model_in(ann)
        if inner is None:
            if step == "signals":
                return {f.alias or n for m in _signal_models(sig) for n, f in m.model_fields.items()}
            return set()
        model = inner
    return {f.alias or n for n, f in model.model_fields.items()}


def _signal_models(sig: Any) -> list[type[BaseModel]]:
    return [
        sig.RatioSignal,
        sig.LatencySignal,
        sig.ThresholdSignal,
        sig.InvariantSignal,
        sig.DriftSignal,
        sig.DuplicateSignal,
        sig.RetrySignal,
        sig.HealthSignal,
    ]


def _model_in(ann: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in typing.get_args(ann):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _did_you_mean(word: str, options: set[str] | frozenset[str]) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _fix_for(kind: str, msg: str) -> str:
    if kind.startswith(("greater", "less")):
        return msg.replace("Input should be", "use a value")
    if kind in {"float_parsing", "int_parsing", "float_type", "int_type"}:
        return "use a number"
    if kind in {"string_type"}:
        return "use a string (quote it)"
    if kind in {"list_type"}:
        return "use a YAML list (lines starting with '- ')"
    if kind in {"dict_type", "model_type", "model_attributes_type"}:
        return "use a mapping (key: value lines)"
    if kind == "too_short":
        return "add at least one entry"
    if kind == "string_pattern_mismatch":
        return "use lowercase letters, digits and '-' (a DNS label)"
    if kind == "value_error":
        return "change the value as the message says"
    return "see `gatekeeper schema` for the allowed values"
