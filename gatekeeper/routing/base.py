"""The routing contract: a target, a split, a change, the errors, the ``Router`` protocol and the registry.

Weights are integer percents of canary traffic, 0..100; a router writes canary = W and stable = 100 - W.
Two optional capabilities sit beside ``Router`` as their own small protocols, checked with ``isinstance``:
``MatchRouter.set_match`` (a gate-owned header/cookie rule that sends matching requests to the canary: A/B
stages) and ``MirrorRouter.set_mirror`` (a copy of N% of requests to the canary while it takes no live
traffic: shadow stages). ``revert`` removes both.
Errors are grouped by what the caller should do:

* ``RoutingError`` (a ``ValueError``): the input is wrong (weight out of range, a backend the resource does
  not reference, an unknown kind, a resource that does not exist). Fix the spec or the command.
  ``AboveMaxWeight`` is the one for a weight above the gate's ``maxWeight`` cap.
* ``NotOwned``: the resource lacks ``gatekeeper.dev/owner: <gate>`` or names another gate. A human must hand
  it over by annotating it; gatekeeper never takes a resource by itself.
* ``NotAccepted``: the API server refused the write (RBAC, schema, admission) or the read-back differs.
  A visible non-pass; retrying the same write will not help.
* ``Conflict``: concurrent writers kept changing the resource for every bounded attempt. Retry later.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gatekeeper.routing.match import Match

__all__ = [
    "ALIASES",
    "APIS",
    "KINDS",
    "ORIGINAL_ANNOTATION",
    "OWNER_ANNOTATION",
    "WRITER_ANNOTATION",
    "AboveMaxWeight",
    "Api",
    "Change",
    "Conflict",
    "MatchRouter",
    "MirrorRouter",
    "NotAccepted",
    "NotOwned",
    "RouteFailure",
    "RouteTarget",
    "Router",
    "RoutingError",
    "Split",
    "cap_weight",
    "check_max_weight",
    "check_mirror",
    "check_weight",
    "make_router",
    "parse_kind",
]

OWNER_ANNOTATION = "gatekeeper.dev/owner"
ORIGINAL_ANNOTATION = "gatekeeper.dev/original"
WRITER_ANNOTATION = (
    "gatekeeper.dev/written-by"  # the controller replica of the last write: "<lease>/<identity>"
)


# -- errors ---------------------------------------------------------------------------------------------------
class RoutingError(ValueError):
    """Bad input: the message names the field and the fix."""


class AboveMaxWeight(RoutingError):
    """The weight asked for is above the gate's ``maxWeight``: lower the stage weight or raise the cap."""


class RouteFailure(RuntimeError):
    """A routing change did not happen; the gate must treat it as a visible non-pass."""


class NotOwned(RouteFailure):
    """The resource is not annotated as owned by this gate; annotate it to hand it over."""


class NotAccepted(RouteFailure):
    """The API server refused the write, or reading back shows something else than was written."""


class Conflict(RouteFailure):
    """Other writers changed the resource on every attempt; nothing was written."""


# -- data -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Api:
    """Where a routing kind lives; ``versions`` are tried in order (the first one served wins)."""

    group: str
    versions: tuple[str, ...]
    plural: str
    kind: str


# API version differences are data: add a version here, not a branch in code.
APIS: dict[str, Api] = {
    "gateway-api": Api("gateway.networking.k8s.io", ("v1", "v1beta1"), "httproutes", "HTTPRoute"),
    "istio": Api("networking.istio.io", ("v1", "v1beta1", "v1alpha3"), "virtualservices", "VirtualService"),
    "smi": Api("split.smi-spec.io", ("v1alpha2", "v1alpha3", "v1alpha4"), "trafficsplits", "TrafficSplit"),
    "nginx": Api("networking.k8s.io", ("v1",), "ingresses", "Ingress"),
}

# Registry: kind name -> "module:Class". Imported lazily so the kind modules can import this one.
KINDS: dict[str, str] = {
    "gateway-api": "gatekeeper.routing.gateway_api:GatewayApiRouter",
    "istio": "gatekeeper.routing.istio:IstioRouter",
    "smi": "gatekeeper.routing.smi:SmiRouter",
    "nginx": "gatekeeper.routing.nginx:NginxRouter",
    "nop": "gatekeeper.routing.nop:NopRouter",
}

ALIASES: dict[str, str] = {
    "httproute": "gateway-api",
    "httproutes": "gateway-api",
    "virtualservice": "istio",
    "virtualservices": "istio",
    "vs": "istio",
    "trafficsplit": "smi",
    "trafficsplits": "smi",
    "ts": "smi",
    "ingress": "nginx",
    "ingresses": "nginx",
    "ing": "nginx",
}


def parse_kind(text: str) -> str:
    """A registry name from a kind name or alias (``HTTPRoute`` -> ``gateway-api``); ``RoutingError`` if unknown."""
    key = text.strip().lower()
    if key in KINDS:
        return key
    if key in ALIASES:
        return ALIASES[key]
    known = ", ".join([*KINDS, *ALIASES])
    raise RoutingError(f"routing kind {text!r} is unknown; use one of: {known}")


@dataclass(frozen=True)
class RouteTarget:
    """One routing resource and the two backends gatekeeper moves traffic between, owned by gate ``owner``.

    ``host`` (Istio only) splits by subset: one host, and ``canary``/``stable`` name two subsets that a
    DestinationRule for that host defines. Without it, ``canary``/``stable`` are hosts (Services).
    """

    kind: str
    namespace: str
    name: str
    canary: str
    stable: str
    owner: str
    host: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RoutingError(f"route kind {self.kind!r} is unknown; use one of: {', '.join(KINDS)}")
        for field in ("namespace", "name", "canary", "stable", "owner"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value.strip():
                raise RoutingError(f"route {field} must be a non-empty string, got {value!r}")
        if self.canary == self.stable:
            raise RoutingError(
                f"route canary and stable are both {self.canary!r}; name two different backends"
            )
        if self.host is not None:
            if not isinstance(self.host, str) or not self.host.strip():
                raise RoutingError(f"route host must be a non-empty string or absent, got {self.host!r}")
            if self.kind not in ("istio", "nop"):
                raise RoutingError(
                    f"route host (a split between two subsets of one host) is for istio only, not {self.kind!r}; "
                    "drop --host and name the canary and stable Services"
                )

    def describe(self) -> str:
        api = APIS.get(self.kind)
        return f"{api.kind if api else self.kind} {self.namespace}/{self.name}"


@dataclass(frozen=True)
class Split:
    """The split as the resource states it: raw weights of canary and stable (other backends ignored).

    ``mirror_percent`` is the share of requests copied to the canary (responses discarded; 0 = no mirror) and
    ``match`` the gate-owned A/B rule sending matching requests to the canary, if any. ``changed_by`` is the
    field manager (``metadata.managedFields``) other than gatekeeper that last wrote the weights, if any.
    """

    canary_weight: int
    stable_weight: int
    owner: str | None
    resource_version: str
    has_original: bool
    mirror_percent: float = 0.0
    match: Match | None = None
    changed_by: str | None = None

    @property
    def canary_percent(self) -> float:
        total = self.canary_weight + self.stable_weight
        return 100.0 * self.canary_weight / total if total > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "canary_weight": self.canary_weight,
            "stable_weight": self.stable_weight,
            "canary_percent": round(self.canary_percent, 3),
            "owner": self.owner,
            "resource_version": self.resource_version,
            "has_original": self.has_original,
            "mirror_percent": self.mirror_percent,
            "match": None if self.match is None else self.match.as_dict(),
            "changed_by": self.changed_by,
        }


@dataclass(frozen=True)
class Change:
    """What a write did: ``written`` is false when nothing needed to change."""

    target: RouteTarget
    action: Literal["set", "revert", "match", "mirror"]
    before: Split
    after: Split
    written: bool
    dry_run: bool
    attempts: int

    def as_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "kind": t.kind,
            "namespace": t.namespace,
            "name": t.name,
            "action": self.action,
            "written": self.written,
            "dry_run": self.dry_run,
            "attempts": self.attempts,
            "before": self.before.as_dict(),
            "after": self.after.as_dict(),
        }


def check_weight(weight: object) -> int:
    """The weight as an int percent; ``RoutingError`` unless it is a whole number 0..100."""
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        raise RoutingError(f"weight must be a whole number of percent 0..100, got {weight!r}")
    if isinstance(weight, float) and (not math.isfinite(weight) or not weight.is_integer()):
        raise RoutingError(f"weight must be a whole number of percent 0..100, got {weight!r}")
    w = int(weight)
    if not 0 <= w <= 100:
        raise RoutingError(f"weight {w} is out of range: use a canary percent from 0 to 100")
    return w


def check_mirror(percent: object) -> float:
    """The mirror share as a float percent; ``RoutingError`` unless it is 0..100 in steps of 0.01."""
    if isinstance(percent, bool) or not isinstance(percent, int | float) or not math.isfinite(percent):
        raise RoutingError(f"mirror must be a percent of requests 0..100, got {percent!r}")
    p = float(percent)
    if not 0 <= p <= 100:
        raise RoutingError(f"mirror {p:g} is out of range: use a percent of requests from 0 to 100")
    if abs(p * 100 - round(p * 100)) > 1e-6:
        raise RoutingError(f"mirror {p:g} has more than two decimals; use steps of 0.01 percent")
    return round(p, 2)


# -- the extension point --------------------------------------------------------------------------------------
@runtime_checkable
class Router(Protocol):
    """Reads and changes the split of one routing resource."""

    target: RouteTarget

    def read(self) -> Split:
        """The current split (no ownership needed to read)."""
        ...

    def set_weight(self, weight: int, *, dry_run: bool = False) -> Change:
        """Set the canary to ``weight`` percent, stable to the rest; save the original split first."""
        ...

    def revert(self, *, dry_run: bool = False) -> Change:
        """Restore the split saved before the first write; no-op when nothing was saved."""
        ...


@runtime_checkable
class MatchRouter(Protocol):
    """Optional capability: a gate-owned rule sending requests that match headers/a cookie to the canary."""

    target: RouteTarget

    def set_match(self, match: Match | None, *, dry_run: bool = False) -> Change:
        """Add or replace the gate's A/B rule (``None`` removes it); weights are not touched."""
        ...


@runtime_checkable
class MirrorRouter(Protocol):
    """Optional capability: copy a share of requests to the canary while it takes no live traffic."""

    target: RouteTarget

    def set_mirror(self, percent: float, *, dry_run: bool = False) -> Change:
        """Mirror ``percent`` of requests to the canary (0 removes the gate's mirror); weights are not touched."""
        ...


def make_router(
    target: RouteTarget,
    api_client: Any,
    *,
    fence: Callable[[], None] | None = None,
    max_attempts: int = 5,
    max_weight: float | None = None,
    writer: str = "",
) -> Router:
    """The router registered for ``target.kind`` over an injected ``kubernetes.client.ApiClient``.

    ``fence`` is called right before every write attempt (the controller checks its lease there; raise to
    abort). ``max_attempts`` bounds the retries after a conflict. ``max_weight`` (the gate's ``maxWeight``)
    caps ``set_weight``: a higher weight raises ``AboveMaxWeight`` and writes nothing. ``writer`` (the
    controller's "<lease>/<identity>") goes into ``WRITER_ANNOTATION`` with every write, for the fence policy.
    """
    module, _, cls = KINDS[target.kind].partition(":")
    impl = getattr(importlib.import_module(module), cls)
    router: Router = impl(
        target, api_client, fence=fence, max_attempts=max_attempts, max_weight=max_weight, writer=writer
    )
    return router


def check_max_weight(max_weight: object) -> float | None:
    """The cap as a float percent in (0, 100], or ``None`` for no cap."""
    if max_weight is None:
        return None
    if isinstance(max_weight, bool) or not isinstance(max_weight, int | float) or not 0 < max_weight <= 100:
        raise RoutingError(f"maxWeight must be a percent in (0, 100], got {max_weight!r}")
    return float(max_weight)


def cap_weight(weight: int, max_weight: float | None, target: RouteTarget) -> int:
    """``weight`` if it is within the cap, else ``AboveMaxWeight`` naming both."""
    if max_weight is not None and weight > max_weight:
        raise AboveMaxWeight(
            f"{target.describe()}: canary weight {weight} is above the gate's maxWeight {max_weight:g}; "
            "nothing was written. Lower the stage weight or raise maxWeight"
        )
    return weight
