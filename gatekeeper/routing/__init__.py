"""Routing: read and change the traffic split of one routing resource in Kubernetes.

This room is the one place where gatekeeper changes production. A ``Router`` (``base.py``) reads the
canary/stable split of a single resource, sets the canary weight with optimistic concurrency (JSON patch with
``test`` ops, bounded retries on a fresh read), verifies by reading back, and reverts to the split it saved
before its first write. One module per kind: Gateway API ``HTTPRoute`` (``gateway_api``), Istio
``VirtualService`` (``istio``), SMI ``TrafficSplit`` (``smi``), NGINX Ingress canary annotations (``nginx``),
and an in-memory stand-in (``nop``). ``rbac.py`` holds the Role rules each kind needs (the chart and the
tests share them).

Must not: decide *which* weight to set (the controller computes it from the gate's own stage state, never
from the route), touch a resource without the ``gatekeeper.dev/owner`` annotation naming its gate, write
fields it does not own, read the wall clock, or import sources/controller/cli/web/sim.
"""

from gatekeeper.routing.base import (
    KINDS,
    Change,
    Conflict,
    NotAccepted,
    NotOwned,
    RouteFailure,
    Router,
    RouteTarget,
    RoutingError,
    Split,
    make_router,
)

__all__ = [
    "KINDS",
    "Change",
    "Conflict",
    "NotAccepted",
    "NotOwned",
    "RouteFailure",
    "RouteTarget",
    "Router",
    "RoutingError",
    "Split",
    "make_router",
]
