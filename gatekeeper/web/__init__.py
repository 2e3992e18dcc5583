"""web: HTTP shells. The dashboard, `/metrics`, the OTLP/HTTP trace intake, and the endpoints Argo Rollouts
(web metric provider) and Flagger (webhooks) call. Thin: parse, call `gatekeeper.ops`, render.

Must not: hold decision logic or talk to Kubernetes directly.
"""

__all__: list[str] = []
