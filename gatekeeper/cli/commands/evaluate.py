"""`gatekeeper evaluate`: would this canary pass right now? A dry run that never acts."""

from __future__ import annotations

import time
from typing import Any

import typer

from gatekeeper.cli.render import fail, judgement_table, print_json, sanitize


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)


def evaluate_command(
    gate_file: str = typer.Argument(..., help="Gate spec YAML (or a Gate resource)."),
    prometheus: str = typer.Option(
        None, "--prometheus", "-p", help="Prometheus base URL (overrides the spec)."
    ),
    arg: list[str] = typer.Option([], "--arg", "-a", help="Fill an argument: --arg service=checkout."),
    window: str = typer.Option(None, "--window", "-w", help="Window ending now, e.g. 10m (default 10m)."),
    start: str = typer.Option(None, "--start", help="Window start: unix seconds or RFC 3339."),
    end: str = typer.Option(None, "--end", help="Window end: unix seconds or RFC 3339."),
    step: str = typer.Option(None, "--step", help="Step of per-interval increments (default: the spec's)."),
    stage: int = typer.Option(
        1, "--stage", "-s", min=1, help="Stage number whose policy applies (1 = first)."
    ),
    output: str = typer.Option(
        "table", "--output", "-o", help="table (compact below 140 columns), wide, or json."
    ),
    report: str = typer.Option(
        None, "--report", help="Also write a self-contained HTML evidence report here."
    ),
) -> None:
    """Evaluate a gate against Prometheus. Exit 0 pass, 1 fail, 2 bad input, 3 not decided."""
    from gatekeeper.evaluation import safe_judgement
    from gatekeeper.ops.dry_run import exit_code_for, resolve_window
    from gatekeeper.spec import SpecError, load_gate, parse_args

    if output not in ("table", "wide", "json"):
        fail(f"--output must be 'table', 'wide' or 'json', not '{output}'")
    try:
        gate = load_gate(gate_file, args=parse_args(arg))
    except SpecError as e:
        fail(f"the gate spec is not valid:\n{e}")
    if stage > len(gate.stages):
        fail(f"--stage {stage}: the gate has {len(gate.stages)} stage(s)")
    try:
        win = resolve_window(gate=gate, now=time.time(), window=window, start=start, end=end, step=step)
    except ValueError as e:
        fail(str(e))
    judgement = safe_judgement(gate, window=win, stage=stage - 1, prometheus_url=prometheus)
    data = sanitize(judgement.to_dict())
    if output == "json":
        print_json(data)
    else:
        judgement_table(data, wide=True if output == "wide" else None)
    if report:
        _write_report(report, gate=gate, judgement=judgement)
    raise typer.Exit(exit_code_for(judgement.verdict))


def _write_report(path: str, **kwargs: Any) -> None:
    try:
        from gatekeeper.web.report import write_report  # the evidence report (operator surfaces)
    except ImportError:
        fail("--report is not available in this build", code=2)
    write_report(path, **kwargs)
