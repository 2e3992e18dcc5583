"""`gatekeeper lint` and `gatekeeper schema`: check a gate before it acts; print the JSON Schema."""

from __future__ import annotations

import json

import typer

from gatekeeper.cli.render import err, out


def register(app: typer.Typer) -> None:
    app.command("lint")(lint)
    app.command("schema")(schema)


def lint(
    files: list[str] = typer.Argument(..., help="Gate spec files."),
    arg: list[str] = typer.Option([], "--arg", "-a", help="Argument values, as for evaluate."),
    allow_missing_args: bool = typer.Option(
        True, help="Arguments without a value are filled with a placeholder."
    ),
) -> None:
    """Report every problem of each gate with its YAML line, field and a fix. Exit 0 clean, 2 problems."""
    from gatekeeper.signals.lint import check_queries
    from gatekeeper.spec import SpecError, load_gate, parse_args

    bad = 0
    for path in files:
        try:
            given = parse_args(arg)
            gate = (
                load_gate(path, args=given or None) if not allow_missing_args else _load_lenient(path, given)
            )
            problems = check_queries(gate)
        except SpecError as e:
            problems = e.issues
        if problems:
            bad += 1
            for p in problems:
                err.print(p.render(path), highlight=False, soft_wrap=True)
        else:
            out.print(
                f"{path}: ok ({gate.name}: {len(gate.signals)} signals, {len(gate.stages)} stages)",
                highlight=False,
            )
    raise typer.Exit(2 if bad else 0)


def _load_lenient(path: str, given: dict[str, str]):
    """Lint without every argument: missing ones get a placeholder so the rest of the spec is still checked."""
    import yaml

    from gatekeeper.spec import load_gate

    try:
        with open(path) as fh:
            raw = yaml.safe_load(fh)
        declared = [a for a in (raw.get("spec", raw).get("args") or []) if isinstance(a, dict)]
    except Exception:
        declared = []
    fill = {
        a["name"]: f"ARG_{a['name']}"
        for a in declared
        if a.get("value") is None and isinstance(a.get("name"), str)
    }
    fill = {k: v for k, v in fill.items() if k not in given}
    return load_gate(path, args={**fill, **given})


def schema() -> None:
    """Print the JSON Schema of a gate spec."""
    from gatekeeper.spec.models import GateSpec

    typer.echo(json.dumps(GateSpec.model_json_schema(by_alias=True), indent=2))
