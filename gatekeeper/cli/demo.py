"""The demo: three gated rollouts of a synthetic shop on real components, narrated live.

Real Prometheus (remote write), the shop's real OpenTelemetry exporter into gatekeeper's OTLP intake, the
real kube-apiserver with a Gateway API HTTPRoute per rollout, and the controller acting on it. Time runs
`speed` times faster than the wall clock for everyone: the shop, the trace store and the controller share
one gate clock. Everything started here is stopped on exit, Ctrl-C included.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

DEMO_GATE = Path(__file__).with_name("demo_gate.yaml")
NAMESPACE = "shop"
CANARY, STABLE = "storefront-canary", "storefront-stable"

# A clean production baseline (the release being replaced): background errors, no commerce faults.
CLEAN = {
    "partial_checkout": 0.0,
    "drift_rate": 0.0,
    "inventory_drift_rate": 0.0,
    "duplicate_rate": 0.0,
}


@dataclass(frozen=True)
class Rollout:
    name: str
    title: str
    faults: dict[str, float]
    expect: str  # the phase the story ends in
    seed: int


ROLLOUTS = (
    Rollout("healthy", "a healthy canary", {}, "Promoted", seed=11),
    Rollout(
        "leaky",
        "a canary leaking partial checkouts at 2% (payment captured, no order)",
        {"partial_checkout": 0.02},
        "RolledBack",
        seed=12,
    ),
    Rollout(
        "subtle",
        "a subtle regression under load: once the canary takes over 10 checkouts/s, 0.4% of orders never "
        "reach the order system",
        {"drift_rate": 0.004, "drift_above": 10.0},
        "Halted",
        seed=13,
    ),
)


@dataclass
class Outcome:
    rollout: Rollout
    phase: str = ""
    reason: str = ""
    status: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    sim_seconds: float = 0.0


class Demo:
    """Start the stack, run the rollouts one after the other, narrate, report, clean up."""

    def __init__(
        self,
        *,
        console: Console,
        speed: float,
        workdir: Path,
        requests_per_second: float = 400.0,
        rollouts: tuple[Rollout, ...] = ROLLOUTS,
        keep: bool = False,
    ) -> None:
        self.console, self.speed, self.workdir = console, speed, workdir
        self.rps, self.rollouts, self.keep = requests_per_second, rollouts, keep
        self.stack = contextlib.ExitStack()
        self.origin = (time.time() - 2 * 3600) // 30 * 30  # sim time starts 2 h ago: samples never lie ahead
        self.anchor = time.time()
        self.outcomes: list[Outcome] = []

    # -- the gate clock, shared by everyone ---------------------------------------------------------------
    def now(self) -> float:
        return self.origin + self.speed * (time.time() - self.anchor)

    def clock_label(self) -> str:
        return time.strftime("%H:%M:%S", time.gmtime(self.now()))

    def say(self, text: str) -> None:
        self.console.print(f"[dim]{self.clock_label()}[/] {text}", highlight=False)

    # -- run ------------------------------------------------------------------------------------------------
    def run(self) -> list[Outcome]:
        with self.stack:
            self._start_stack()
            self._run_all()
            self._summary()
            if self.keep:
                self.console.print(
                    f"dashboard still serving at [bold]{self.dashboard_url}[/]; Ctrl-C to stop"
                )
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
        return self.outcomes

    def _start_stack(self) -> None:
        from gatekeeper.sim.kube import KubeCluster
        from gatekeeper.sim.prometheus import PrometheusServer
        from gatekeeper.sources.traces.store import TraceStore
        from gatekeeper.spec import load_gate
        from gatekeeper.spec.models import TraceSettings

        c = self.console
        c.rule("[bold]gatekeeper demo[/]: three gated rollouts of a checkout")
        self.prom = self.stack.enter_context(PrometheusServer())
        self.say(f"Prometheus {self.prom.url} (pid {self.prom.pid}), fed by remote write")
        template = load_gate(DEMO_GATE, args={"storefront": "x", "orders": "y", "job": "z"})
        settings = template.source.traces or TraceSettings()  # the demo gate sets them
        self.traces = TraceStore(
            clock=self.now,
            version_attribute="service.version",
            completion_timeout=settings.completion_timeout,
        )
        if not KubeCluster.available():
            c.print(
                "[bold yellow]no test kube-apiserver is built on this machine[/] "
                f"({KubeCluster.missing()}); run scripts/kube-apiserver.sh to see routing on a real "
                "API server. The demo needs it for the controller and stops here."
            )
            raise SystemExit(3)
        self.say("starting the test kube-apiserver (etcd + kube-apiserver built from Go modules)…")
        cluster = KubeCluster.start(self.workdir / "kube")
        self.stack.callback(cluster.stop)
        cluster.install_crds()
        self.api = cluster.api_client()
        self.kubeconfig = cluster.kubeconfig
        self._install_gate_crd()
        self._namespace()
        self.say(
            f"kube-apiserver {getattr(cluster, 'server', '')} ready (pids {', '.join(map(str, cluster.pids))}); "
            "Gateway API CRDs and the Gate CRD installed"
        )
        self._start_web()
        self._start_controller()

    def _install_gate_crd(self) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        from gatekeeper.spec.crd import GROUP, PLURAL, VERSION, gate_crd

        with contextlib.suppress(ApiException):
            client.ApiextensionsV1Api(self.api).create_custom_resource_definition(gate_crd())
        custom = client.CustomObjectsApi(self.api)
        _wait("the Gate CRD", lambda: _serves(custom, GROUP, VERSION, PLURAL), timeout=30)

    def _namespace(self) -> None:
        from kubernetes import client

        client.CoreV1Api(self.api).create_namespace({"metadata": {"name": NAMESPACE}})

    def _start_web(self) -> None:
        from gatekeeper.ops.repository import KubernetesGateRepository
        from gatekeeper.web.app import BackgroundServer, create_app

        app = create_app(
            repository=KubernetesGateRepository(self.api),
            prometheus=self.prom.url,
            span_sink=self.traces,
            clock=self.now,
        )
        server = self.stack.enter_context(BackgroundServer(app))
        self.dashboard_url = server.url
        self.otlp_url = f"{server.url}/v1/traces"
        self.say(
            f"dashboard and OTLP intake: [bold]{server.url}[/] (traces at /v1/traces, metrics at /metrics)"
        )

    def _start_controller(self) -> None:
        from gatekeeper.controller.clock import ScaledClock
        from gatekeeper.controller.runtime import Controller, Settings

        clock = ScaledClock(origin=self.origin, rate=self.speed, anchor=self.anchor)
        settings = Settings(
            identity="demo",
            namespace=NAMESPACE,
            prometheus_url=self.prom.url,
            leader_election=False,
            heartbeat=30.0,
            health_port=None,  # no probes in the demo: a fixed port could be taken on a shared machine
        )
        self.controller = Controller(self.api, settings, clock=clock, traces=self.traces)
        thread = threading.Thread(
            target=lambda: asyncio.run(self.controller.run()), name="controller", daemon=True
        )
        thread.start()

        def stop() -> None:
            self.controller.stop()
            thread.join(timeout=10)

        self.stack.callback(stop)
        self.say(f"controller running in-process, gate clock at {self.speed:g}x wall time")

    # -- the rollouts, all at once on one controller ------------------------------------------------------
    def _run_all(self) -> None:
        import multiprocessing as mp

        for r in self.rollouts:
            self._route(r.name)
        # The shops run in a process of their own: generating traffic and spans is CPU-bound Python, and in
        # this process it would starve the controller and the intake of the GIL.
        ctx = mp.get_context("spawn")
        stops = {r.name: ctx.Event() for r in self.rollouts}
        failures = ctx.Queue()
        config = {
            "kubeconfig": str(self.kubeconfig),
            "remote_write": self.prom.remote_write_url,
            "otlp": self.otlp_url,
            "speed": self.speed,
            "rps": self.rps,
            "origin": self.origin,
            "anchor": self.anchor,
            "rollouts": [(r.name, r.faults, r.seed) for r in self.rollouts],
        }
        proc = ctx.Process(target=shops_main, args=(config, stops, failures), name="gatekeeper-demo-shops")
        proc.start()
        self.stack.callback(_stop_process, proc, stops)
        self.say(f"shops serving in process {proc.pid}; baselines warming up")
        for r in self.rollouts:
            self.say(f"[bold]{r.name}[/]: {r.title}")
        live = [
            _Live(rollout=r, names=_names(r.name), stop=stops[r.name], outcome=Outcome(rollout=r))
            for r in self.rollouts
        ]
        time.sleep(60 / self.speed)
        for lr in live:
            self._create_gate(lr.rollout, lr.names)
            lr.started = self.now()
        self._narrate(live, failures=failures, proc=proc)
        _stop_process(proc, stops)
        for lr in live:
            lr.outcome.sim_seconds = lr.outcome.sim_seconds or self.now() - lr.started
            lr.outcome.report = self._report(lr.rollout)
            self.outcomes.append(lr.outcome)

    def _route(self, name: str) -> None:
        from kubernetes import client

        from gatekeeper.routing.base import OWNER_ANNOTATION

        body = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": name, "annotations": {OWNER_ANNOTATION: name}},
            "spec": {
                "parentRefs": [{"name": "shop-gateway"}],
                "hostnames": [f"{name}.shop.example"],
                "rules": [
                    {
                        "backendRefs": [
                            {"name": STABLE, "port": 80, "weight": 100},
                            {"name": CANARY, "port": 80, "weight": 0},
                        ]
                    }
                ],
            },
        }
        client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes", body
        )
        self.say(f"HTTPRoute {NAMESPACE}/{name}: {STABLE} 100%, {CANARY} 0% (owned by gate '{name}')")

    def _create_gate(self, r: Rollout, names: Any) -> None:
        from kubernetes import client

        from gatekeeper.spec.crd import GROUP, PLURAL, VERSION

        spec = yaml.safe_load(DEMO_GATE.read_text())
        for k in ("apiVersion", "kind", "name"):
            spec.pop(k, None)
        spec["args"] = [
            {"name": "storefront", "value": names.storefront},
            {"name": "orders", "value": names.orders},
            {"name": "job", "value": names.job},
        ]
        v = _versions(r.name)
        spec["source"]["traces"].update(canaryValue=v["canary"], baselineValue=v["baseline"])
        spec["routing"] = {
            "kind": "gateway-api",
            "name": r.name,
            "canaryBackend": CANARY,
            "stableBackend": STABLE,
        }
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Gate",
            "metadata": {"name": r.name},
            "spec": spec,
        }
        client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, body
        )
        self.say(f"Gate {NAMESPACE}/{r.name} created: stages 1% → 5% → 25% → 50% → 100%")

    def _narrate(self, live: list[_Live], *, failures: Any, proc: Any) -> None:
        from gatekeeper.controller.machine import TERMINAL

        done = {p.value for p in TERMINAL} | {"Halted"}
        deadline = time.monotonic() + 45 * 60 / self.speed + 60
        while time.monotonic() < deadline and any(not lr.outcome.phase for lr in live):
            for lr in live:
                if lr.outcome.phase:
                    continue
                if not failures.empty():
                    name, message = failures.get()
                    raise RuntimeError(f"shop '{name}' stopped: {message}")
                if not proc.is_alive():
                    raise RuntimeError(f"the shop process exited (code {proc.exitcode})")
                status = _gate(self.api, lr.rollout.name).get("status") or {}
                history = status.get("history") or []
                for entry in history[lr.seen :]:
                    self._tell(lr.rollout.name, entry)
                lr.seen = len(history)
                settled = (status.get("intent") or {}).get("done", True)  # the routing change has landed
                if status.get("phase", "") in done and settled:
                    lr.outcome.phase, lr.outcome.reason = status["phase"], status.get("reason", "")
                    lr.outcome.status, lr.outcome.sim_seconds = status, self.now() - lr.started
                    lr.stop.set()  # this shop's story is told: free the CPU for the others
                    self._ending(lr.rollout, status)
            time.sleep(0.25)
        for lr in live:
            if not lr.outcome.phase:
                lr.outcome.phase, lr.outcome.reason = "Timeout", "the rollout did not finish in time"
                self.console.print(f"[bold red]rollout '{lr.rollout.name}' did not finish in time[/]")

    def _tell(self, name: str, e: dict[str, Any]) -> None:
        from gatekeeper.cli.render import verdict_text

        action = e.get("action") or ""
        verdict = e.get("verdict") or ""
        stage = int(e.get("stage", 0)) + 1
        where = (
            f"→ stage {stage}"
            if action in ("start", "advance")
            else f"stage {stage} ({float(e.get('weight', 0)):g}%)"
        )
        if not action and verdict in ("inconclusive", "pass"):
            return  # routine looks: the dashboard shows every one
        label = verdict_text(verdict) if verdict else ""
        reason = e.get("reason", "")
        colour = {
            "advance": "green",
            "promote": "bold green",
            "revert": "bold red",
            "halt": "bold red",
            "start": "cyan",
        }.get(action, "yellow")
        head = f"[{colour}]{action or 'look'}[/]" if action else "look"
        self.say(f"[bold]{name}[/] {head} {where} {label} {reason}")

    def _ending(self, r: Rollout, s: dict[str, Any]) -> None:
        route = _route_weights(self.api, r.name)
        phase = s.get("phase")
        mark = "[bold green]✔[/]" if phase == r.expect else "[bold red]✘[/]"
        self.console.print(f"{mark} [bold]{r.name}[/]: {phase} — {s.get('reason', '')}", highlight=False)
        self.console.print(
            f"   route now: {STABLE} {route.get(STABLE)}%, {CANARY} {route.get(CANARY)}%", highlight=False
        )
        esc = s.get("escalation") or {}
        if esc:
            for key in ("forwardFix", "forward_fix", "runbook", "owners", "sideEffects", "side_effects"):
                if key in esc:
                    self.console.print(f"   {key}: {esc[key]}", highlight=False)

    def _report(self, r: Rollout) -> Path | None:
        """The report of the decision that ended the rollout, from its record (the numbers it acted on; the
        canary that was rolled back has no traffic now, so a window queried today would show nothing)."""
        from gatekeeper.controller.decision_store import DecisionStore
        from gatekeeper.ops.decisions import read_decision
        from gatekeeper.web.decision_report import write_decision_report

        store = DecisionStore(self.api)
        try:
            last = next(
                h for h in reversed((_gate(self.api, r.name).get("status") or {}).get("history") or [])
                if h.get("action") in ("promote", "revert", "halt", "abort")
            )  # fmt: skip
            _wait(
                f"the record of {r.name}'s {last['action']}",
                lambda: any(abs(s.time - last["time"]) < 1e-3 for s in store.index(NAMESPACE, r.name)),
                timeout=20,
            )
            decision = read_decision(store, namespace=NAMESPACE, name=r.name, at=last["time"])
            return write_decision_report(self.workdir / f"report-{r.name}.html", decision)
        except StopIteration:
            self.console.print(f"   [yellow]no report for {r.name}: it ended without a decision[/]")
        except Exception as e:  # a report is a bonus: say why it is missing, never fail the demo for it
            self.console.print(f"   [yellow]no report for {r.name}: {e}[/]")
        return None

    def _summary(self) -> None:
        c = self.console
        c.rule("[bold]summary[/]")
        for o in self.outcomes:
            ok = o.phase == o.rollout.expect
            mark = "[bold green]✔[/]" if ok else "[bold red]✘[/]"
            c.print(
                f"{mark} {o.rollout.name:8} {o.phase:11} ({o.sim_seconds / 60:.1f} min of shop time)  "
                f"report: {o.report or '—'}",
                highlight=False,
            )
        c.print(f"dashboard: {self.dashboard_url} (up while the demo runs; --keep to leave it up)")


@dataclass
class _Live:
    rollout: Rollout
    names: Any
    outcome: Outcome
    stop: Any  # a multiprocessing Event: set when this rollout's story is told
    started: float = 0.0
    seen: int = 0


def _names(name: str) -> Any:
    from gatekeeper.sim.shop import ShopNames

    return ShopNames.prefixed(f"{name}-")


def _stop_process(proc: Any, stops: dict[str, Any]) -> None:
    for ev in stops.values():
        ev.set()
    proc.join(timeout=30)
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout=5)


def shops_main(config: dict[str, Any], stops: dict[str, Any], failures: Any) -> None:
    """The shop process: one thread per rollout's shop, traffic split by that rollout's HTTPRoute."""
    from kubernetes import config as kconfig

    from gatekeeper.sim.remote_write import RemoteWriteClient
    from gatekeeper.sim.shop import Behavior, Shop, SimClock, Traffic, otlp_exporter_factory

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us through the events
    api = kconfig.new_client_from_config(config_file=config["kubeconfig"])
    speed = config["speed"]
    now = config["origin"] + speed * (time.time() - config["anchor"])
    threads = []
    for name, faults, seed in config["rollouts"]:
        weight = _RouteWeight(api, name)
        traffic = Traffic(requests_per_second=config["rps"], checkout_share=0.6, diurnal_amplitude=0.2)
        baseline = Behavior(**CLEAN)
        start = now // 5 * 5
        shop = Shop(
            start=start,
            seed=seed,
            clock=SimClock(start, speed=speed),
            traffic=traffic,
            baseline=baseline,
            canary=baseline.with_faults(**faults),
            weight_fn=weight,
            names=_names(name),
            metrics=RemoteWriteClient(config["remote_write"]),
            span_exporter=otlp_exporter_factory(config["otlp"]),
            tick=1.0,
            scrape_interval=5.0,
            push_interval=5.0,
            trace_sample_rate=_TraceBudget(traffic, weight),
            versions=_versions(name),
        )

        def drive(shop: Any = shop, name: str = name) -> None:
            try:
                while not stops[name].is_set():
                    shop.step()
                shop.close()
            except BaseException as e:
                failures.put((name, f"{type(e).__name__}: {e}"))

        t = threading.Thread(target=drive, name=f"shop-{name}", daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


class _TraceBudget:
    """Head sampling with a budget: at most ~`per_second` traced checkouts per version and shop second, so
    span export keeps up at any canary weight (the SDK emits a few thousand spans per second here)."""

    def __init__(
        self, traffic: Any, weight: Callable[[], float], *, canary: float = 12.0, baseline: float = 12.0
    ):
        self.traffic, self.weight, self.budget = traffic, weight, {"canary": canary, "baseline": baseline}

    def __call__(self, track: str) -> float:
        share = self.weight() / 100.0
        share = share if track == "canary" else 1.0 - share
        checkouts = self.traffic.requests_per_second * self.traffic.checkout_share * max(share, 1e-9)
        return min(1.0, self.budget[track] / checkouts)


def _versions(name: str) -> dict[str, str]:
    """`service.version` per track: each rollout ships its own release, so one intake tells them apart."""
    return {"baseline": f"{name}-v1", "canary": f"{name}-v2"}


class _RouteWeight:
    """The shop's traffic split follows the HTTPRoute the controller patches (read at most every 0.2 s)."""

    def __init__(self, api: Any, name: str) -> None:
        self.api, self.name = api, name
        self._value, self._read = 0.0, 0.0

    def __call__(self) -> float:
        if time.monotonic() - self._read > 0.2:
            with contextlib.suppress(Exception):
                self._value = float(_route_weights(self.api, self.name).get(CANARY, self._value))
            self._read = time.monotonic()
        return self._value


def _route_weights(api: Any, name: str) -> dict[str, int]:
    from kubernetes import client

    route = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", NAMESPACE, "httproutes", name
    )
    refs = route["spec"]["rules"][0]["backendRefs"]
    return {ref["name"]: int(ref.get("weight", 1)) for ref in refs}


def _gate(api: Any, name: str) -> dict[str, Any]:
    from kubernetes import client

    from gatekeeper.spec.crd import GROUP, PLURAL, VERSION

    out: dict[str, Any] = client.CustomObjectsApi(api).get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, PLURAL, name
    )
    return out


def _serves(custom: Any, group: str, version: str, plural: str) -> bool:
    try:
        custom.list_cluster_custom_object(group, version, plural, limit=1)
        return True
    except Exception:
        return False


def _wait(what: str, predicate: Callable[[], bool], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C: every process the demo started is stopped."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(
    *, console: Console, speed: float, keep: bool, out: Path | None, rollouts: tuple[Rollout, ...] = ROLLOUTS
) -> list[Outcome]:
    workdir = out or Path(tempfile.mkdtemp(prefix="gatekeeper-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    with sigterm_as_interrupt():
        return Demo(console=console, speed=speed, workdir=workdir, keep=keep, rollouts=rollouts).run()
