"""``gatekeeper route show|set|revert KIND/NAME``: read or change one routing resource by hand.

    gatekeeper route show  httproute/web -n shop --canary web-canary --stable web
    gatekeeper route set   httproute/web -n shop --canary web-canary --stable web --owner web-gate --weight 10 --dry-run
    gatekeeper route revert httproute/web -n shop --canary web-canary --stable web --owner web-gate

KIND is a router name (gateway-api, istio, smi, nginx, nop) or a kind alias (httproute, virtualservice/vs,
trafficsplit/ts, ingress/ing). ``--dry-run`` asks the API server to validate the write without persisting it.
Exit codes: 0 ok, 1 the change was refused or lost a race, 2 bad input (including a resource the gate does
not own), 3 the cluster could not be reached.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gatekeeper.routing import (
    Change,
    NotOwned,
    RouteFailure,
    Router,
    RouteTarget,
    RoutingError,
    Split,
    make_router,
)
from gatekeeper.routing.base import parse_kind

__all__ = ["register"]

route_app = typer.Typer(
    help="Read or change the canary/stable split of one routing resource.", no_args_is_help=True
)

Ref = Annotated[
    str, typer.Argument(help="KIND/NAME, e.g. httproute/web, vs/reviews, ts/api, ingress/web-canary")
]
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="Namespace of the resource.")]
Canary = Annotated[str, typer.Option("--canary", help="Canary backend (Service) name.")]
Stable = Annotated[str, typer.Option("--stable", help="Stable backend (Service) name.")]
Owner = Annotated[
    str, typer.Option("--owner", help="Gate name that must be in the gatekeeper.dev/owner annotation.")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Server-side dry run: validate, persist nothing.")]
Kubeconfig = Annotated[
    str | None, typer.Option("--kubeconfig", help="Kubeconfig path (default: $KUBECONFIG, ~/.kube/config).")
]
Context = Annotated[str | None, typer.Option("--context", help="Kubeconfig context (default: current).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    app.add_typer(route_app, name="route")


@route_app.command("show")
def show(
    ref: Ref, canary: Canary, stable: Stable, namespace: Namespace = "default", owner: Owner = "-",
    kubeconfig: Kubeconfig = None, context: Context = None, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Show the current split (reading needs no ownership)."""
    router = _router(
        ref,
        namespace=namespace,
        canary=canary,
        stable=stable,
        owner=owner,
        kubeconfig=kubeconfig,
        context=context,
    )
    split = _guard(router.read)
    _print_split(router.target, split, as_json=as_json)


@route_app.command("set")
def set_(
    ref: Ref, canary: Canary, stable: Stable, owner: Owner,
    weight: Annotated[int, typer.Option("--weight", help="Canary percent 0..100; stable gets the rest.")],
    namespace: Namespace = "default", dry_run: DryRun = False,
    kubeconfig: Kubeconfig = None, context: Context = None, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Set the canary weight (saves the original split the first time)."""
    router = _router(
        ref,
        namespace=namespace,
        canary=canary,
        stable=stable,
        owner=owner,
        kubeconfig=kubeconfig,
        context=context,
    )
    _print_change(_guard(lambda: router.set_weight(weight, dry_run=dry_run)), as_json=as_json)


@route_app.command("revert")
def revert(
    ref: Ref, canary: Canary, stable: Stable, owner: Owner,
    namespace: Namespace = "default", dry_run: DryRun = False,
    kubeconfig: Kubeconfig = None, context: Context = None, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Restore the split saved before gatekeeper's first write."""
    router = _router(
        ref,
        namespace=namespace,
        canary=canary,
        stable=stable,
        owner=owner,
        kubeconfig=kubeconfig,
        context=context,
    )
    _print_change(_guard(lambda: router.revert(dry_run=dry_run)), as_json=as_json)


# -- helpers --------------------------------------------------------------------------------------------------
def _fail(code: int, message: str) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _router(
    ref: str,
    *,
    namespace: str,
    canary: str,
    stable: str,
    owner: str,
    kubeconfig: str | None,
    context: str | None,
) -> Router:
    kind_text, sep, name = ref.partition("/")
    try:
        if not sep or not name or "/" in name:
            raise RoutingError(f"resource {ref!r} must be KIND/NAME, for example httproute/web")
        target = RouteTarget(parse_kind(kind_text), namespace, name, canary, stable, owner)
    except RoutingError as exc:
        raise _fail(2, str(exc)) from None
    api = None
    if target.kind != "nop":
        from kubernetes import config
        from kubernetes.config.config_exception import ConfigException

        try:
            api = config.new_client_from_config(config_file=kubeconfig, context=context)
        except (ConfigException, OSError, TypeError) as exc:
            where = kubeconfig or "$KUBECONFIG or ~/.kube/config"
            raise _fail(2, f"cannot load the kubeconfig ({where}): {exc}; pass --kubeconfig PATH") from None
    return make_router(target, api)


def _guard(call: Any) -> Any:
    from urllib3.exceptions import HTTPError

    try:
        return call()
    except (RoutingError, NotOwned) as exc:
        raise _fail(2, str(exc)) from None
    except RouteFailure as exc:
        raise _fail(1, str(exc)) from None
    except HTTPError as exc:
        raise _fail(
            3, f"cannot reach the Kubernetes API server: {exc}; check --kubeconfig and the network"
        ) from None


def _print_split(target: RouteTarget, split: Split, *, as_json: bool) -> None:
    if as_json:
        typer.echo(
            json.dumps(
                {"kind": target.kind, "namespace": target.namespace, "name": target.name, **split.as_dict()}
            )
        )
        return
    table = Table(title=f"{target.describe()} ({target.kind})")
    for col in ("backend", "weight", "share"):
        table.add_column(col)
    table.add_row(target.canary + " (canary)", str(split.canary_weight), f"{split.canary_percent:.1f}%")
    table.add_row(target.stable + " (stable)", str(split.stable_weight), f"{100 - split.canary_percent:.1f}%")
    Console().print(table)
    Console().print(
        f"owner: {split.owner or '(none)'}   original saved: {'yes' if split.has_original else 'no'}   "
        f"resourceVersion: {split.resource_version}",
        highlight=False,
    )


def _print_change(change: Change, *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(change.as_dict()))
        return
    t = change.target
    table = Table(title=f"{change.action} {t.describe()}{' [dry run]' if change.dry_run else ''}")
    for col in ("", "canary", "stable", "canary share", "resourceVersion"):
        table.add_column(col)
    for label, s in (("before", change.before), ("after", change.after)):
        table.add_row(
            label, str(s.canary_weight), str(s.stable_weight), f"{s.canary_percent:.1f}%", s.resource_version
        )
    Console().print(table)
    verdict = "written" if change.written else "nothing to change"
    if change.written and change.dry_run:
        verdict = "accepted by the server in a dry run, nothing persisted"
    if t.kind == "nop":
        verdict += "; nop is a local stand-in: no traffic moved anywhere"
    Console().print(f"{verdict} (attempts: {change.attempts})", highlight=False)
