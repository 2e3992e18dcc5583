"""controller: walks each rollout through its stages. A pure transition machine (`machine`), one executor that
performs its actions through routers, status and events, and the Kubernetes glue (watches, Lease, resync).

Must not: decide anything outside `machine`; write routing without holding the Lease.

Modules: `machine` (pure transitions) and `bookkeeping` (conditions, bounded history); `executor` (intent written
before the routing write, result after; Events; notifications via `notify`); `kube` (Gate objects: parse,
list/watch with resync, fenced status patches, operator-request annotations); `leader` (a coordination.k8s.io
Lease with fencing); `looks` (the stage's evidence window and the judge); `runtime` (asyncio: many gates on one
replica); `health` (/healthz, /readyz); `clock` (the gate clock, scaled in tests and demos).

Why the kubernetes client's own list/watch and not kopf: every write here must pass a Lease check right before
it (fencing, Argo Rollouts #2117), and kopf's peering is its own KopfPeering resource, not a Lease, with no
hook before each write; kopf also keeps its progress in fields of the object (`status.kopf`, a
last-handled-configuration annotation) that gatekeeper would then not own, while the status here is a shared
model written whole under a resourceVersion precondition; and tests need the decision clock injected and crash
points at exact edges. What kopf would add beyond that (list/watch with resync, per-object timers) is about 300
lines here (`kube.Watcher`, `runtime`). kopf runs fine against the test API server (docs/testing.md): the
choice is about control of writes, not feasibility.
"""

__all__: list[str] = []
