"""``gatekeeper route show|set|revert KIND/NAME``: read or change one routing resource by hand.

    gatekeeper route show  httproute/web -n shop     # canary and stable from the Gate that owns the route
    gatekeeper route show  httproute/web -n shop --canary web-canary --stable web
    gatekeeper route set   httproute/web -n shop --canary web-canary --stable web --owner web-gate --weight 10 --dry-run
    gatekeeper route set   vs/web -n shop --host web --canary v2 --stable v1 --owner web-gate --weight 0 --mirror 20
    gatekeeper route set   httproute/web ... --owner web-gate --header x-canary=always --cookie canary=always
    gatekeeper route set   httproute/web ... --owner web-gate --no-match --mirror 0 --weight 20 --max-weight 50
    gatekeeper route revert httproute/web -n shop --canary web-canary --stable web --owner web-gate

KIND is a router name (gateway-api, istio, smi, nginx, nop) or a kind alias (httproute, virtualservice/vs,
trafficsplit/ts, ingress/ing). ``--host`` (Istio) splits between two subsets of one host: ``--canary`` and
``--stable`` then name the subsets. ``set`` takes any of ``--weight`` (capped by ``--max-weight``), an A/B
match (``--header NAME=VALUE``, repeatable, and ``--cookie NAME=VALUE``; ``--no-match`` removes it) and
``--mirror PERCENT`` (a shadow stage: the canary must have weight 0; ``--mirror 0`` removes it). They are
written in an order that never raises exposure in between: mirror removal, weight, match, mirror. ``--json``
prints one JSON object per write. ``--dry-run`` asks the API server to validate each write without persisting
it. Exit codes: 0 ok, 1 the change was refused or lost a race, 2 bad input (including a resource the gate does
not own, a weight above ``--max-weight`` and a capability the kind lacks), 3 the cluster could not be reached.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gatekeeper.routing import (
    Change,
    Match,
    MatchRouter,
    MirrorRouter,
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
MaybeCanary = Annotated[
    str | None, typer.Option("--canary", help="Canary backend (default: from the Gate that owns the route).")
]
MaybeStable = Annotated[
    str | None, typer.Option("--stable", help="Stable backend (default: from the Gate that owns the route).")
]
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
Host = Annotated[
    str | None,
    typer.Option(
        "--host", help="Istio: split between two subsets of this host (--canary/--stable name subsets)."
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(route_app, name="route")


@route_app.command("show")
def show(
    ref: Ref, canary: MaybeCanary = None, stable: MaybeStable = None, namespace: Namespace = "default",
    owner: Owner = "-", host: Host = None, kubeconfig: Kubeconfig = None, context: Context = None,
    as_json: AsJson = False,
) -> None:  # fmt: skip
    """Show the current split, A/B match and mirror (reading needs no ownership). Without --canary/--stable
    the backends come from the Gate named in the route's gatekeeper.dev/owner annotation, else from the one
    Gate in the namespace whose routing names this route."""
    if canary is None or stable is None:
        found = _backends_from_gate(ref, namespace=namespace, kubeconfig=kubeconfig, context=context)
        canary, stable = canary or found["canary"], stable or found["stable"]
        host = host or found.get("host")
    router = _router(
        ref,
        namespace=namespace,
        canary=canary,
        stable=stable,
        owner=owner,
        host=host,
        kubeconfig=kubeconfig,
        context=context,
    )
    split = _guard(router.read)
    _print_split(router.target, split, as_json=as_json)


@route_app.command("set")
def set_(
    ref: Ref, canary: Canary, stable: Stable, owner: Owner,
    weight: Annotated[
        int | None, typer.Option("--weight", help="Canary percent 0..100; stable gets the rest.")
    ] = None,
    max_weight: Annotated[
        float | None, typer.Option("--max-weight", help="Refuse a --weight above this (the gate's maxWeight).")
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", help="A/B: send requests with header NAME=VALUE to the canary (repeatable)."),
    ] = None,
    cookie: Annotated[
        str | None, typer.Option("--cookie", help="A/B: send requests with cookie NAME=VALUE to the canary.")
    ] = None,
    no_match: Annotated[bool, typer.Option("--no-match", help="Remove the gate's A/B match.")] = False,
    mirror: Annotated[
        float | None,
        typer.Option("--mirror", help="Mirror PERCENT of requests to the canary (weight must be 0); 0 removes."),
    ] = None,
    namespace: Namespace = "default", host: Host = None, dry_run: DryRun = False,
    kubeconfig: Kubeconfig = None, context: Context = None, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Set the canary weight, an A/B match and/or a mirror (saves the original split the first time)."""
    wants_match = bool(header) or cookie is not None
    if weight is None and mirror is None and not wants_match and not no_match:
        raise _fail(2, "nothing to set: give --weight, --header/--cookie, --no-match or --mirror")
    if wants_match and no_match:
        raise _fail(2, "--no-match removes the A/B match; do not combine it with --header/--cookie")
    try:
        match = Match.parse(headers=header or (), cookie=cookie) if wants_match else None
    except RoutingError as exc:
        raise _fail(2, str(exc)) from None
    router = _router(
        ref,
        namespace=namespace,
        canary=canary,
        stable=stable,
        owner=owner,
        host=host,
        kubeconfig=kubeconfig,
        context=context,
        max_weight=max_weight,
    )
    kind = router.target.kind
    if (wants_match or no_match) and not isinstance(router, MatchRouter):
        raise _fail(
            2, f"{kind} cannot route by header or cookie; use gateway-api, istio or nginx for A/B stages"
        )
    if mirror is not None and not isinstance(router, MirrorRouter):
        raise _fail(2, f"{kind} cannot mirror traffic; use gateway-api or istio for a shadow stage")
    matcher = router if isinstance(router, MatchRouter) else None
    mirrorer = router if isinstance(router, MirrorRouter) else None
    steps: list[Callable[[], Change]] = []  # in an order that never raises exposure in between
    if mirrorer is not None and mirror == 0:
        steps.append(partial(mirrorer.set_mirror, 0, dry_run=dry_run))
    if weight is not None:
        steps.append(partial(router.set_weight, weight, dry_run=dry_run))
    if matcher is not None and (wants_match or no_match):
        steps.append(partial(matcher.set_match, match, dry_run=dry_run))
    if mirrorer is not None and mirror is not None and mirror != 0:
        steps.append(partial(mirrorer.set_mirror, mirror, dry_run=dry_run))
    for step in steps:
        _print_change(_guard(step), as_json=as_json)


@route_app.command("revert")
def revert(
    ref: Ref, canary: Canary, stable: Stable, owner: Owner,
    namespace: Namespace = "default", host: Host = None, dry_run: DryRun = False,
    kubeconfig: Kubeconfig = None, context: Context = None, as_json: AsJson = False,
) -> None:  # fmt: skip
    """Remove the gate's A/B match and mirror and restore the split saved before its first write
    (never raising the canary's share: if the saved split had more canary traffic, the canary goes to 0)."""
    router = _router(
        ref,
        namespace=namespace,
        canary=canary,
        stable=stable,
        owner=owner,
        host=host,
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
    host: str | None,
    kubeconfig: str | None,
    context: str | None,
    max_weight: float | None = None,
) -> Router:
    kind_text, sep, name = ref.partition("/")
    try:
        if not sep or not name or "/" in name:
            raise RoutingError(f"resource {ref!r} must be KIND/NAME, for example httproute/web")
        target = RouteTarget(parse_kind(kind_text), namespace, name, canary, stable, owner, host)
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
    try:
        return make_router(target, api, max_weight=max_weight)
    except RoutingError as exc:
        raise _fail(2, str(exc)) from None


def _backends_from_gate(
    ref: str, *, namespace: str, kubeconfig: str | None, context: str | None
) -> dict[str, str]:
    """canary/stable (and host) of the route as the Gate that owns it names them."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    from gatekeeper.ops import actions
    from gatekeeper.ops.errors import OperatorError
    from gatekeeper.routing.base import APIS, OWNER_ANNOTATION

    kind_text, _, name = ref.partition("/")
    try:
        kind = parse_kind(kind_text)
    except RoutingError as exc:
        raise _fail(2, str(exc)) from None
    if kind == "nop" or not name:
        raise _fail(2, f"{ref}: give --canary and --stable (a nop route has no Gate to read them from)")
    try:
        api = config.new_client_from_config(config_file=kubeconfig, context=context)
    except (ConfigException, OSError, TypeError) as exc:
        raise _fail(2, f"cannot load the kubeconfig ({kubeconfig or '~/.kube/config'}): {exc}") from None
    spec = APIS[kind]
    obj = None
    for version in spec.versions:
        try:
            obj = _guard(lambda v=version: client.CustomObjectsApi(api).get_namespaced_custom_object(
                spec.group, v, namespace, spec.plural, name))  # fmt: skip
            break
        except typer.Exit:
            raise
        except ApiException as exc:
            if exc.status != 404:
                raise _fail(1, f"cannot read {spec.plural}/{name} in {namespace}: {exc.reason}") from None
    if obj is None:
        raise _fail(2, f"{spec.plural}/{name} not found in namespace {namespace}")
    owner = ((obj.get("metadata") or {}).get("annotations") or {}).get(OWNER_ANNOTATION)
    try:
        views = actions.list_gates(api, namespace=namespace)
    except OperatorError as exc:
        raise _fail(1, f"cannot list the Gates in {namespace} to find this route's backends: {exc}") from None
    mine = [v for v in views if v.routing and v.routing.get("name") == name and v.routing.get("kind") == kind]
    chosen = next((v for v in views if v.name == owner and v.routing), None) if owner else None
    if chosen is None and len(mine) == 1:
        chosen = mine[0]
    if chosen is None or not chosen.routing:
        why = f"its owner Gate '{owner}' names no routing" if owner else "no Gate owns it"
        raise _fail(2, f"{spec.plural}/{name}: {why}; pass --canary and --stable")
    r = chosen.routing
    canary, stable = (
        r.get("canaryBackend") or r.get("canary_backend"),
        r.get("stableBackend") or r.get("stable_backend"),
    )
    if not canary or not stable:
        raise _fail(2, f"Gate {chosen.ref} names no canary/stable backends; pass --canary and --stable")
    out = {"canary": str(canary), "stable": str(stable)}
    if r.get("host"):
        out["host"] = str(r["host"])
    return out


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
        f"A/B match: {split.match.describe() if split.match else '(none)'}   "
        f"mirror: {f'{split.mirror_percent:g}% to the canary' if split.mirror_percent else '(none)'}\n"
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
    for col in ("", "canary", "stable", "canary share", "A/B match", "mirror", "resourceVersion"):
        table.add_column(col)
    for label, s in (("before", change.before), ("after", change.after)):
        table.add_row(
            label, str(s.canary_weight), str(s.stable_weight), f"{s.canary_percent:.1f}%",
            s.match.describe() if s.match else "-", f"{s.mirror_percent:g}%" if s.mirror_percent else "-",
            s.resource_version,
        )  # fmt: skip
    Console().print(table)
    verdict = "written" if change.written else "nothing to change"
    if change.written and change.dry_run:
        verdict = "accepted by the server in a dry run, nothing persisted"
    if t.kind == "nop":
        verdict += "; nop is a local stand-in: no traffic moved anywhere"
    Console().print(f"{verdict} (attempts: {change.attempts})", highlight=False)
