"""`gatekeeper demo`: a throwaway real Prometheus, a canary scenario with known truth, the example gate."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from gatekeeper.cli.render import judgement_table, out, sanitize


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    seed: int = typer.Option(7, help="Seed of the synthetic traffic."),
) -> None:
    """Start a throwaway Prometheus, load a healthy and a bad canary, and evaluate gates/http-canary.yaml."""
    from gatekeeper.ops.evaluate import run_evaluation
    from gatekeeper.signals import Window
    from gatekeeper.sim.prometheus import PrometheusServer
    from gatekeeper.sim.remote_write import RemoteWriteClient
    from gatekeeper.sim.scenario import ArmProfile, canary_scenario
    from gatekeeper.spec import load_gate

    gate_path = Path(__file__).resolve().parents[3] / "gates" / "http-canary.yaml"
    with PrometheusServer() as prom:
        out.print(f"[bold]demo[/]: Prometheus {prom.url} (pid {prom.pid}); loading 30 minutes of traffic")
        end_ms = int(time.time() * 1000) // 15_000 * 15_000
        cases = {
            "healthy": ArmProfile(requests_per_second=100, error_ratio=0.01),
            "leaky": ArmProfile(requests_per_second=100, error_ratio=0.02),
        }
        for name, canary in cases.items():
            scenario = canary_scenario(service=name, end_ms=end_ms, canary=canary, seed=seed,
                                       baseline=ArmProfile(requests_per_second=100, error_ratio=0.01))
            RemoteWriteClient(prom.remote_write_url).write(scenario.series)
        for name in cases:
            gate = load_gate(gate_path, args={"service": name})
            window = Window(start=end_ms / 1000 - 1800, end=end_ms / 1000, step=60)
            judgement = run_evaluation(gate, window=window, prometheus=prom.url)
            out.rule(f"canary '{name}'")
            judgement_table(sanitize(judgement.to_dict()))
