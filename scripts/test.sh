#!/usr/bin/env bash
# The test command: set up everything the tests need (Debian packages, .venv, the test kube-apiserver and
# Helm, Jaeger and a minimal OpenTelemetry Collector for the trace tests, built from Go modules into a cache),
# run the linters and the type checker, then the whole suite on real components.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-browser
scripts/kube-apiserver.sh --with-helm
scripts/jaeger.sh
scripts/otelcol.sh
export GATEKEEPER_REQUIRE_KUBE=1
echo "== ruff"
.venv/bin/ruff check gatekeeper tests bench
.venv/bin/ruff format --check gatekeeper tests bench
echo "== import-linter"
.venv/bin/lint-imports
echo "== mypy (strict on spec, stats, judge, evaluation and the transition machine; see pyproject.toml)"
.venv/bin/mypy
echo "== pytest"
.venv/bin/python -m pytest "$@"
