"""importers: turn a peer's configuration into a gate spec (`gatekeeper import`), never silently weaker.

Argo Rollouts AnalysisTemplates (+ Rollout steps), Flagger Canaries (+ MetricTemplates), Kayenta canary
configs and Keptn quality gates (v1 slo.yaml + sli.yaml, v2 AnalysisDefinition + AnalysisValueTemplates)
become one gate. Every field that does not map is listed with its file and line; every place where the peer
would pass on missing data is a warning and the gate fails closed instead; unresolved references block the
import unless the caller allows a partial one.

Must not: print, read files or arguments (the CLI does), or talk to Prometheus or Kubernetes.
"""

from gatekeeper.importers.common import ImportInputError, ImportReport, Note
from gatekeeper.importers.convert import ImportResult, import_texts, verify_gate

__all__ = ["ImportInputError", "ImportReport", "ImportResult", "Note", "import_texts", "verify_gate"]
