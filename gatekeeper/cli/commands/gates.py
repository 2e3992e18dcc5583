"""`gatekeeper approve|abort|pause|resume|status GATE`: operator commands on Gate resources.

    gatekeeper status                      # every gate in the namespace
    gatekeeper get gates -A                # every gate in every namespace, kubectl style
    gatekeeper status web -n shop -w       # watch: print again whenever the gate changes
    gatekeeper status web -n shop -o json
    gatekeeper approve web -n shop --reason "checked the dashboards"
    gatekeeper pause web -n shop ; gatekeeper resume web -n shop
    gatekeeper abort web -n shop --reason "bad release"

Each command records a request on the Gate through the API server (so RBAC decides who may); the controller
applies it (contract: gatekeeper/ops/actions.py). Exit codes: 0 done (or nothing to do), 1 refused (RBAC,
admission, not in the approving group), 2 bad input (unknown gate, finished rollout, no such stage),
3 the API server could not be reached.
"""

from __future__ import annotations

import json
import os
import re
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gatekeeper.ops import actions
from gatekeeper.ops.actions import ActionResult
from gatekeeper.ops.errors import EXIT_CODES, OperatorError
from gatekeeper.ops.gate import GateView

__all__ = ["register"]

Gate = Annotated[str, typer.Argument(help="Name of the Gate resource.")]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace (default: the kubeconfig context's, else 'default')."),
]
Kubeconfig = Annotated[
    str | None, typer.Option("--kubeconfig", help="Kubeconfig path (default: $KUBECONFIG, ~/.kube/config).")
]
Context = Annotated[str | None, typer.Option("--context", help="Kubeconfig context (default: current).")]
Reason = Annotated[str, typer.Option("--reason", "-r", help="Why; recorded in the request and the Event.")]
Output = Annotated[str, typer.Option("--output", "-o", help="table, wide or json.")]
Watch = Annotated[
    bool, typer.Option("--watch", "-w", help="After the first listing, print again on every change.")
]
Interval = Annotated[float, typer.Option("--interval", min=0.2, help="Seconds between reads while watching.")]
MaxUpdates = Annotated[int, typer.Option("--max-updates", hidden=True, help="Stop watching after N prints.")]
AllNamespaces = Annotated[bool, typer.Option("--all-namespaces", "-A", help="List in every namespace.")]

_PHASE_STYLE = {
    "Progressing": "cyan",
    "AwaitingApproval": "yellow",
    "Paused": "yellow",
    "Promoted": "green",
    "RolledBack": "red",
    "Halted": "bold red",
    "Aborted": "red",
}


get_app = typer.Typer(
    help="List resources in kubectl's habits: gatekeeper get gates [-A] [-w].", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(get_app, name="get")
    app.command("approve")(approve)
    app.command("abort")(abort)
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command("status")(status)


def approve(
    gate: Gate,
    namespace: Namespace = None,
    stage: Annotated[
        int | None, typer.Option("--stage", help="Stage index to approve (default: the current one).")
    ] = None,
    reason: Reason = "",
    output: Output = "table",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Approve the current (or a later) stage of a gate whose stage needs an approval."""
    api, ns = _connect(kubeconfig, context, namespace)
    _report(lambda: actions.approve(api, namespace=ns, name=gate, stage=stage, reason=reason), output)


def abort(
    gate: Gate,
    namespace: Namespace = None,
    reason: Reason = "",
    output: Output = "table",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Stop the rollout: the controller restores the original routing."""
    api, ns = _connect(kubeconfig, context, namespace)
    _report(lambda: actions.abort(api, namespace=ns, name=gate, reason=reason), output)


def pause(
    gate: Gate,
    namespace: Namespace = None,
    reason: Reason = "",
    output: Output = "table",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Hold the current weight (a failure still reverts or halts)."""
    api, ns = _connect(kubeconfig, context, namespace)
    _report(lambda: actions.pause(api, namespace=ns, name=gate, reason=reason), output)


def resume(
    gate: Gate,
    namespace: Namespace = None,
    reason: Reason = "",
    output: Output = "table",
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Go on after a pause (or after a halt, once the forward fix is out)."""
    api, ns = _connect(kubeconfig, context, namespace)
    _report(lambda: actions.resume(api, namespace=ns, name=gate, reason=reason), output)


def status(
    gate: Annotated[str | None, typer.Argument(help="Gate name; omit to list every gate.")] = None,
    namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
    history: Annotated[int, typer.Option("--history", help="History entries to show.")] = 10,
    output: Output = "table",
    watch: Watch = False,
    interval: Interval = 2.0,
    max_updates: MaxUpdates = 0,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Where a gate is, what it last decided and why; pending requests; recent history."""
    _show(gate, namespace, all_namespaces, history, output, watch, interval, max_updates, kubeconfig, context)


@get_app.command("gates")
def get_gates(
    gate: Annotated[str | None, typer.Argument(help="Gate name; omit to list every gate.")] = None,
    namespace: Namespace = None,
    all_namespaces: AllNamespaces = False,
    output: Output = "table",
    watch: Watch = False,
    interval: Interval = 2.0,
    max_updates: MaxUpdates = 0,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """List gates (NAME, PHASE, STAGE, WEIGHT, VERDICT, IN STAGE, AGE), or one gate's status."""
    _show(gate, namespace, all_namespaces, 10, output, watch, interval, max_updates, kubeconfig, context)


get_app.command("gate", hidden=True)(get_gates)  # kubectl takes the singular too


def _show(
    gate, namespace, all_namespaces, history, output, watch, interval, max_updates, kubeconfig, context
) -> None:
    import time

    _check_output(output)
    api, ns = _connect(kubeconfig, context, namespace)
    everywhere = gate is None and all_namespaces
    shown: dict[str, str] = {}
    prints = 0
    while True:
        if gate is None:
            views = _guard(lambda: actions.list_gates(api, namespace=None if everywhere else ns))
            if output == "json":
                text = json.dumps([v.as_dict(history=0) for v in views], indent=2)
                if text != shown.get("*"):
                    typer.echo(text)
                    shown["*"], prints = text, prints + 1
            else:
                states = {v.ref: json.dumps(v.as_dict(history=0), sort_keys=True) for v in views}
                changed = [v for v in views if shown.get(v.ref) != states[v.ref]]  # the object, not its AGE
                if changed or not shown:
                    _print_rows(changed if shown else views, everywhere=everywhere, wide=output == "wide",
                                header=not shown)  # fmt: skip
                    prints += 1
                shown.update(states)
                shown.setdefault("*", "")
        else:
            view = _guard(lambda: actions.status(api, namespace=ns, name=gate))
            text = json.dumps(view.as_dict(history=history), indent=2)
            if text != shown.get(gate):
                if output == "json":
                    typer.echo(text)
                else:
                    if shown:
                        Console().rule(_when(time.time()), style="dim")
                    _print_view(view, history=history)
                shown[gate], prints = text, prints + 1
        if not watch or (max_updates and prints >= max_updates):
            return
        time.sleep(interval)


# -- helpers --------------------------------------------------------------------------------------------------
def _fail(code: int, message: str) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _check_output(output: str) -> None:
    if output not in ("table", "wide", "json"):
        raise _fail(2, f"--output {output!r} is not supported; use table, wide or json")


def _connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> tuple[Any, str]:
    """An ApiClient from the kubeconfig (or in-cluster), and the namespace to use."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST") and not _has_kubeconfig():
            config.load_incluster_config()
            from kubernetes import client

            return client.ApiClient(), namespace or _incluster_namespace()
        api = config.new_client_from_config(config_file=kubeconfig, context=context)
        if namespace is None:
            _, active = config.list_kube_config_contexts(config_file=kubeconfig)
            if context:
                contexts, _ = config.list_kube_config_contexts(config_file=kubeconfig)
                active = next((c for c in contexts if c["name"] == context), active)
            namespace = (active.get("context") or {}).get("namespace") or "default"
        return api, namespace
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
        raise _fail(2, f"cannot load the kubeconfig ({where}): {exc}; pass --kubeconfig PATH") from None


def _has_kubeconfig() -> bool:
    path = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
    return any(os.path.isfile(p) for p in path.split(os.pathsep) if p)


def _incluster_namespace() -> str:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def _guard(call: Any) -> Any:
    try:
        return call()
    except OperatorError as exc:
        code = next((c for kind, c in EXIT_CODES.items() if isinstance(exc, kind)), 1)
        raise _fail(code, str(exc)) from None


def _report(call: Any, output: str) -> None:
    _check_output(output)
    result: ActionResult = _guard(call)
    if output == "json":
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    mark = "[green]✓[/]" if result.changed else "[yellow]·[/]"
    Console().print(f"{mark} {result.namespace}/{result.name}: {result.message}", highlight=False)


def _phase(phase: str) -> str:
    return f"[{_PHASE_STYLE.get(phase, 'white')}]{phase}[/]"


def _row(v: GateView, *, everywhere: bool, wide: bool) -> list[str]:
    import time

    from gatekeeper.cli.humanize import duration

    now = time.time()
    st = v.status
    started = getattr(st, "stage_started_at", None)
    row = [v.namespace] if everywhere else []
    row += [
        v.name,
        _phase(v.phase.value),
        f"{st.stage + 1}/{len(v.stages)}",
        f"{st.weight:g}%",
        (st.verdict or "-").upper(),
        duration(now - started) if started else "-",
        _age(v.created_at, now=now),
    ]
    if wide:
        looked = getattr(st, "last_evaluated_at", None)
        row += [duration(now - looked) + " ago" if looked else "-", st.reason or "-"]
    return row


def _print_rows(views: list[GateView], *, everywhere: bool, wide: bool, header: bool) -> None:
    if not views and header:
        Console().print("No gates found.", highlight=False)
        return
    cols = (["NAMESPACE"] if everywhere else []) + [
        "NAME",
        "PHASE",
        "STAGE",
        "WEIGHT",
        "VERDICT",
        "IN STAGE",
        "AGE",
    ]
    if wide:
        cols += ["LAST LOOK", "REASON"]
    table = Table(box=None, pad_edge=False, show_header=header, header_style="bold")
    for col in cols:
        table.add_column(col, no_wrap=col != "REASON", overflow="fold")
    rows = [_row(v, everywhere=everywhere, wide=wide) for v in views]
    for row in rows:
        table.add_row(*row)
    con = Console()
    plain = [[re.sub(r"\[[^\]]*\]", "", c) for c in row[: len(cols) - (1 if wide else 0)]] for row in rows]
    needed = sum(
        max([len(c) for c in col] + [len(h)]) + 2
        for col, h in zip(zip(*plain, strict=True), cols, strict=False)
    )
    if needed > con.width:  # kubectl never folds a row: a narrow terminal scrolls instead
        con = Console(width=needed + (40 if wide else 0))
    con.print(table, highlight=False)


def _age(created_at: float | None, *, now: float) -> str:
    from gatekeeper.cli.humanize import duration

    return "-" if created_at is None else duration(now - created_at)


def _print_view(v: GateView, *, history: int) -> None:
    con = Console()
    st = v.status
    con.print(
        f"[bold]{v.ref}[/]  {_phase(st.phase.value)}  stage {st.stage + 1} of {len(v.stages)} at {st.weight:g}%  "
        f"verdict: {st.verdict or '-'}",
        highlight=False,
    )
    started, looked = getattr(st, "stage_started_at", None), getattr(st, "last_evaluated_at", None)
    if started or looked:
        con.print(f"  stage started: {_time(started)}   last look: {_time(looked)}", highlight=False)
    if st.reason:
        con.print(f"  reason: {st.reason}", highlight=False)
    for line in _notes(v):
        con.print(f"  {line}", highlight=False)
    stages = Table(title="stages")
    for col in ("", "weight", "min duration", "authority", "rollback window"):
        stages.add_column(col)
    for s in v.stages:
        here = "→" if s.index == st.stage else ""
        stages.add_row(
            f"{here}{s.index + 1}", f"{s.weight:g}%", s.min_duration, s.authority, s.problem or s.window
        )
    con.print(stages)
    if st.conditions:
        conds = Table(title="conditions")
        for col in ("type", "status", "reason", "message", "since"):
            conds.add_column(col)
        for c in st.conditions:
            conds.add_row(c.type, c.status, c.reason, c.message, c.last_transition_time)
        con.print(conds)
    entries = st.history[-history:] if history else []
    if entries:
        hist = Table(title=f"last {len(entries)} looks")
        for col in ("time", "stage", "weight", "verdict", "action", "reason"):
            hist.add_column(col)
        for h in entries:
            hist.add_row(
                _time(h.time), str(h.stage + 1), f"{h.weight:g}%", h.verdict, h.action or "-", h.reason
            )
        con.print(hist)


def _notes(v: GateView) -> list[str]:
    st = v.status
    out = [f"pending {r.action} by {r.by} at {r.at}" for r in v.pending]
    out += [f"[red]unreadable request:[/] {b}" for b in v.bad_requests]
    if st.dry_run:
        out.append(
            "[yellow]dry run:[/] routing writes are only validated; no route changes, no hook, no page"
        )
    if st.waiting_for:
        since = f" (unanswered since {_time(st.waiting_since)})" if st.waiting_since is not None else ""
        out.append(f"waiting for the {st.waiting_for} hook{since}")
    if st.approvals:
        out.append(f"approvals: {', '.join(st.approvals)}")
    if st.escalation:
        out.append(f"[bold red]escalation:[/] {json.dumps(st.escalation, default=str)}")
    if st.intent is not None and not st.intent.done:
        out.append(
            f"routing change in flight: {st.intent.action} {st.intent.from_weight:g}% → {st.intent.to_weight:g}%"
        )
    if v.spec_changed:
        out.append("[yellow]the spec changed since the controller last acted on it[/]")
    if v.problem:
        out.append(f"[red]{v.problem}[/]")
    return out


def _time(t: float | None) -> str:
    import time

    return _when(t, now=time.time()) if t is not None else "-"


def _when(t: float, *, now: float | None = None) -> str:
    from gatekeeper.cli.humanize import when

    return when(t, now=t if now is None else now)
