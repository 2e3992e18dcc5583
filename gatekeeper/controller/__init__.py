"""controller: walks each rollout through its stages. A pure transition machine (`machine`), one executor that
performs its actions through routers, status and events, and the Kubernetes glue (watches, Lease, resync).

Must not: decide anything outside `machine`; write routing without holding the Lease.
"""
