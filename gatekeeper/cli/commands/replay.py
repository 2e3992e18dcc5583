"""`gatekeeper replay`: what would the gate have done over a past window? Never acts."""

from __future__ import annotations

import datetime as dt
from typing import Any

import typer

from gatekeeper.cli.render import err, fail, out, print_json, sanitize, verdict_text

PROGRESS_FROM = 20  # looks; shorter replays finish before a bar is worth drawing


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)


def replay(
    gate_file: str = typer.Argument(..., help="Gate spec YAML (or a Gate resource)."),
    prometheus: str = typer.Option(
        None, "--prometheus", "-p", help="Prometheus base URL (overrides the spec)."
    ),
    start: str = typer.Option(..., "--from", help="Rollout start: unix seconds or RFC 3339."),
    end: str = typer.Option(..., "--to", help="End of the replay: unix seconds or RFC 3339."),
    step: str = typer.Option(None, "--step", help="Time between looks (default: the gate's interval)."),
    arg: list[str] = typer.Option([], "--arg", "-a", help="Fill an argument: --arg service=checkout."),
    output: str = typer.Option("table", "--output", "-o", help="table or json."),
    report: str = typer.Option(None, "--report", help="Also write a self-contained HTML evidence report."),
) -> None:
    """Walk a past window look by look through the decision core and print the verdicts and the actions
    the controller would have taken. Exit 0 pass, 1 fail, 2 bad input, 3 not decided (last look)."""
    from gatekeeper.evaluation import open_prometheus
    from gatekeeper.ops.dry_run import exit_code_for, parse_time
    from gatekeeper.ops.replay import ReplayError, plan_looks
    from gatekeeper.ops.replay import replay as run_replay
    from gatekeeper.spec import SpecError, load_gate, parse_args
    from gatekeeper.spec.durations import parse_duration

    if output not in ("table", "json"):
        fail(f"--output must be 'table' or 'json', not '{output}'")
    try:
        gate = load_gate(gate_file, args=parse_args(arg))
    except SpecError as e:
        fail(f"the gate spec is not valid:\n{e}")
    try:
        t0, t1 = parse_time(start), parse_time(end)
        look_step = parse_duration(step) if step else gate.interval
        planned = len(plan_looks(start=t0, end=t1, step=look_step))
    except (ValueError, ReplayError) as e:
        fail(str(e))
    source = open_prometheus(gate, url=prometheus)
    try:
        with _progress(planned, enabled=planned >= PROGRESS_FROM) as progress:
            result = run_replay(gate, metrics=source, start=t0, end=t1, step=look_step, progress=progress)
    finally:
        source.close()
    if output == "json":
        print_json(sanitize(result.to_dict()))
    else:
        _table(result)
    if report:
        _write_report(report, gate, result)
    raise typer.Exit(exit_code_for(result.verdict))


def _write_report(path: str, gate: Any, result: Any) -> None:
    """The report of the replay's last decision, drawn from its record as the controller would store it
    (`gatekeeper report` draws recorded ones the same way), with the timeline; without a decision, the last
    look's judgement."""
    from gatekeeper.ops.decisions import describe, replay_decisions
    from gatekeeper.web.decision_report import write_decision_report
    from gatekeeper.web.report import write_report

    if result.last is None:
        err.print("no look could be made in the range: no report written", highlight=False)
        return
    decisions = replay_decisions(gate, result.looks)
    if decisions:
        write_decision_report(path, decisions[-1], timeline=result)
        err.print(f"report of the decision {describe(decisions[-1])} written to {path}", highlight=False)
    else:
        write_report(path, gate=gate, judgement=result.last, timeline=result)
        err.print(f"no decision in the range; report of the last look written to {path}", highlight=False)


class _progress:
    """A rich progress bar on stderr for long replays; a no-op callback otherwise."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("replaying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task("looks", total=self.total)
        return lambda done, total: self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)


def _table(result: Any) -> None:
    from rich.table import Table

    t = Table(
        title=f"replay of gate [bold]{result.gate}[/] — {_ts(result.start)} → {_ts(result.end)} "
        f"(a look every {result.step:g}s; actions: {result.policy})",
        title_justify="left",
    )
    for col in ("time (UTC)", "stage", "verdict", "action", "phase", "why"):
        t.add_column(col, overflow="fold")
    for look in result.looks:
        action = look.action or "—"
        t.add_row(
            _ts(look.time),
            f"{look.stage + 1} ({look.weight:g}%)" if look.weight is not None else str(look.stage + 1),
            verdict_text(look.verdict.value),
            f"[bold]{action}[/]" if action not in ("hold", "—") else action,
            look.phase,
            look.decision or look.reason,
        )
    out.print(t)
    f = result.final
    changes = [f"{_ts(lk.time)} {lk.action}" for lk in result.looks if lk.action not in ("", "hold")]
    out.print(
        f"final: {f.phase.value}, stage {f.stage + 1}, weight {f.weight:g}%; "
        f"actions: {', '.join(changes) or 'none (held throughout)'}",
        highlight=False,
    )
    if result.skipped:
        out.print(
            f"{result.skipped} look(s) skipped: less than one source step after a stage start",
            highlight=False,
        )
    for note in result.notes:
        out.print(f"[dim]note: {note}[/]", highlight=False)


def _ts(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
