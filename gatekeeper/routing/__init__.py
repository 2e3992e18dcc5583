"""Routing: read and change the traffic split of one routing resource in Kubernetes.

This room is the one place where gatekeeper changes production. A ``Router`` (``base.py``) reads the
canary/stable split of a single resource, sets the canary weight with optimistic concurrency (JSON patch with
``test`` ops, bounded retries on a fresh read), verifies by reading back, and reverts to the split it saved
before its first write; a revert never raises the canary's share and ``set_weight`` refuses a weight above the
gate's ``maxWeight``. Optional capabilities, each its own small protocol checked with ``isinstance``:
``MatchRouter`` (a gate-owned header/cookie rule for A/B stages: Gateway API, Istio, NGINX) and
``MirrorRouter`` (mirror a share of requests to the canary in a shadow stage: Gateway API, Istio), both in
``features.py``, the match itself in ``match.py``. One module per kind: Gateway API ``HTTPRoute``
(``gateway_api``), Istio ``VirtualService`` by host or by subset (``istio``), SMI ``TrafficSplit`` (``smi``),
NGINX Ingress canary annotations (``nginx``), and an in-memory stand-in (``nop``). ``rbac.py`` holds the Role
rules each kind needs (the chart and the tests share them).

Must not: decide *which* weight to set (the controller computes it from the gate's own stage state, never
from the route), touch a resource without the ``gatekeeper.dev/owner`` annotation naming its gate, write
fields it does not own, read the wall clock, or import sources/controller/cli/web/sim.
"""

from gatekeeper.routing.base import (
    KINDS,
    AboveMaxWeight,
    Change,
    Conflict,
    MatchRouter,
    MirrorRouter,
    NotAccepted,
    NotOwned,
    RouteFailure,
    Router,
    RouteTarget,
    RoutingError,
    Split,
    make_router,
)
from gatekeeper.routing.match import Match

__all__ = [
    "KINDS",
    "AboveMaxWeight",
    "Change",
    "Conflict",
    "Match",
    "MatchRouter",
    "MirrorRouter",
    "NotAccepted",
    "NotOwned",
    "RouteFailure",
    "RouteTarget",
    "Router",
    "RoutingError",
    "Split",
    "make_router",
]
