#!/usr/bin/env bash
# Build Jaeger (all-in-one, which receives OTLP and serves the query API) from its Go module into a cache
# directory, for the tests of the Jaeger trace source. Nothing built here is committed.
#
#   scripts/jaeger.sh               build (if missing) and print where the binary is
#   scripts/jaeger.sh --print-path  print the binary's path and exit
#
# Cache: ${GATEKEEPER_CACHE:-$HOME/.cache/gatekeeper}/jaeger-$JAEGER_VERSION/jaeger, with the Go module and
# build caches shared with scripts/kube-apiserver.sh. Cold: ~8 min on 2 cores. tests/fixtures/jaeger.py reads
# the same layout (keep the two in step).
set -euo pipefail

JAEGER_VERSION=v1.75.0
JAEGER_MODULE=github.com/jaegertracing/jaeger
CACHE=${GATEKEEPER_CACHE:-$HOME/.cache/gatekeeper}
BIN_DIR=$CACHE/jaeger-$JAEGER_VERSION
BIN=$BIN_DIR/jaeger
for arg in "$@"; do
  case $arg in
    --print-path) echo "$BIN"; exit 0 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "jaeger.sh: unknown argument '$arg' (use --print-path or --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'jaeger.sh: %s\n' "$*"; }
elapsed() { local s=$(($(date +%s) - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

if [[ -x $BIN ]]; then say "jaeger $JAEGER_VERSION cached: $BIN"; exit 0; fi
if command -v go >/dev/null; then GO=$(command -v go); elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; else
  echo "jaeger.sh: no Go toolchain found (need go on PATH or at /usr/local/go/bin/go)" >&2; exit 2
fi
export GOMODCACHE=${GOMODCACHE_OVERRIDE:-$CACHE/go/mod}
export GOCACHE=${GOCACHE_OVERRIDE:-$CACHE/go/build}
export GOTOOLCHAIN=local GOFLAGS="-modcacherw -buildvcs=false" CGO_ENABLED=0
mkdir -p "$BIN_DIR"
exec 9>"$CACHE/.jaeger.lock"
flock -n 9 || { say "another run is building into $BIN_DIR; waiting for it"; flock 9; }
if [[ -x $BIN ]]; then say "jaeger $JAEGER_VERSION cached: $BIN"; exit 0; fi

t0=$(date +%s)
say "building jaeger $JAEGER_VERSION into $BIN_DIR (cold: ~8 min on 2 cores)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$GO" mod init gatekeeper.test/jaeger >/dev/null 2>&1
say "go get -tool $JAEGER_MODULE/cmd/jaeger@$JAEGER_VERSION ($(elapsed "$t0"))"
"$GO" get -tool "$JAEGER_MODULE/cmd/jaeger@$JAEGER_VERSION"
say "go build ($(elapsed "$t0"); progress: one line per minute)"
( while sleep 60; do say "still building ($(elapsed "$t0"))"; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null; rm -rf "$work"' EXIT
"$GO" build -trimpath -ldflags "-s -w" -o "$BIN.tmp" "$JAEGER_MODULE/cmd/jaeger"
mv "$BIN.tmp" "$BIN"
say "built $BIN in $(elapsed "$t0")"
