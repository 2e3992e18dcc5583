#!/usr/bin/env bash
# Build a minimal OpenTelemetry Collector (OTLP receiver + the contrib load-balancing exporter) from Go
# modules into a cache directory, for the intake scale-out test. The module is tests/collector (main.go,
# go.mod, go.sum); nothing built is committed.
#
#   scripts/otelcol.sh               build (if missing)
#   scripts/otelcol.sh --print-path  print the binary's path and exit
#
# Cache: ${GATEKEEPER_CACHE:-$HOME/.cache/gatekeeper}/otelcol-$VERSION/otelcol, Go caches shared with the other
# build scripts (most modules are Jaeger's too). tests/test_intake_scaleout.py reads the same layout.
set -euo pipefail

VERSION=v0.141.0   # keep in step with tests/collector/go.mod
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${GATEKEEPER_CACHE:-$HOME/.cache/gatekeeper}
BIN=$CACHE/otelcol-$VERSION/otelcol
for arg in "$@"; do
  case $arg in
    --print-path) echo "$BIN"; exit 0 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "otelcol.sh: unknown argument '$arg' (use --print-path or --help)" >&2; exit 2 ;;
  esac
done
say() { printf 'otelcol.sh: %s\n' "$*"; }
elapsed() { local s=$(($(date +%s) - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

if [[ -x $BIN ]]; then say "collector $VERSION cached: $BIN"; exit 0; fi
if command -v go >/dev/null; then GO=$(command -v go); elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; else
  echo "otelcol.sh: no Go toolchain found (need go on PATH or at /usr/local/go/bin/go)" >&2; exit 2
fi
export GOMODCACHE=${GOMODCACHE_OVERRIDE:-$CACHE/go/mod}
export GOCACHE=${GOCACHE_OVERRIDE:-$CACHE/go/build}
export GOTOOLCHAIN=local GOFLAGS="-modcacherw -buildvcs=false" CGO_ENABLED=0
mkdir -p "$(dirname "$BIN")"
exec 9>"$CACHE/.otelcol.lock"
flock -n 9 || { say "another run is building into $(dirname "$BIN"); waiting for it"; flock 9; }
if [[ -x $BIN ]]; then say "collector $VERSION cached: $BIN"; exit 0; fi

t0=$(date +%s)
say "building the test collector $VERSION into $(dirname "$BIN") (cold: several minutes on 2 cores)"
cd "$ROOT/tests/collector"
"$GO" mod download
( while sleep 60; do say "still building ($(elapsed "$t0"))"; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null' EXIT
"$GO" build -trimpath -ldflags "-s -w" -o "$BIN.tmp" .
mv "$BIN.tmp" "$BIN"
say "built $BIN in $(elapsed "$t0")"
