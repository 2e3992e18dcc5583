"""`gatekeeper demo`: three gated rollouts of a synthetic shop on real components, narrated live."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    speed: float = typer.Option(
        10.0, min=1.0, help="Shop time runs this many times faster than the wall clock."
    ),
    keep: bool = typer.Option(
        False, "--keep", help="Leave the dashboard up after the rollouts (Ctrl-C stops)."
    ),
    out: Path = typer.Option(None, "--out", help="Directory for the HTML reports (default: a temp dir)."),
    only: list[str] = typer.Option([], "--only", help="Run only these rollouts: healthy, leaky, subtle."),
) -> None:
    """A healthy canary promoted 1% → 100%, a leaky one reverted at 1%, a subtle one halted past its
    rollback window: real Prometheus, real OTLP traces, a real kube-apiserver and the controller."""
    from gatekeeper.cli.demo import ROLLOUTS, run_demo
    from gatekeeper.cli.render import fail
    from gatekeeper.cli.render import out as console

    chosen = tuple(r for r in ROLLOUTS if not only or r.name in only)
    unknown = set(only) - {r.name for r in ROLLOUTS}
    if unknown:
        fail(f"--only: unknown rollout(s) {', '.join(sorted(unknown))}; choose from healthy, leaky, subtle")
    try:
        outcomes = run_demo(console=console, speed=speed, keep=keep, out=out, rollouts=chosen)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: everything the demo started has been stopped[/]")
        raise typer.Exit(130) from None
    ok = all(o.phase == o.rollout.expect for o in outcomes)
    raise typer.Exit(0 if ok else 1)
