#!/usr/bin/env bash
# The main job: set up what is missing, then run the gated-rollout demo on its embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [[ "${GATEKEEPER_DEMO_KUBE:-1}" == 1 ]]; then scripts/kube-apiserver.sh || echo "demo: no test API server (build failed); the demo uses its local routing stand-in"; fi
exec .venv/bin/gatekeeper demo "$@"
