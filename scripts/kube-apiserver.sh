#!/usr/bin/env bash
# Build the test control plane once into a cache directory and fetch the pinned upstream CRDs.
#
#   scripts/kube-apiserver.sh               build kube-apiserver (if missing) + fetch CRDs (if missing)
#   scripts/kube-apiserver.sh --with-helm   also `go install` helm into the cache (if missing)
#   scripts/kube-apiserver.sh --print-dir   print the cache directory and exit
#
# Cache: ${GATEKEEPER_CACHE:-$HOME/.cache/gatekeeper}. Idempotent: a second run only checks files and exits.
# The Go module and build caches live there too (GOMODCACHE, GOCACHE), so only the first run pays
# (~4-10 min on 2 cores). Nothing built here is committed; tests/kube/ holds only go.mod, go.sum and main.go.
# gatekeeper/sim/kube.py reads the same layout (keep the two in step).
set -euo pipefail

KUBE_VERSION=v1.35.4
GATEWAY_API=sigs.k8s.io/gateway-api@v1.6.1
ISTIO_API=istio.io/api@v1.30.3
OSM=github.com/openservicemesh/osm@v1.2.4
HELM_VERSION=v3.21.4

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${GATEKEEPER_CACHE:-$HOME/.cache/gatekeeper}
with_helm=0
for arg in "$@"; do
  case $arg in
    --with-helm) with_helm=1 ;;
    --print-dir) echo "$CACHE"; exit 0 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "kube-apiserver.sh: unknown argument '$arg' (use --with-helm, --print-dir or --help)" >&2; exit 2 ;;
  esac
done

if command -v go >/dev/null; then GO=$(command -v go); elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; else
  echo "kube-apiserver.sh: no Go toolchain found (need go >= 1.26 on PATH or at /usr/local/go/bin/go)" >&2; exit 2
fi
export GOMODCACHE=${GOMODCACHE_OVERRIDE:-$CACHE/go/mod}
export GOCACHE=${GOCACHE_OVERRIDE:-$CACHE/go/build}
export GOTOOLCHAIN=local GOFLAGS="-modcacherw -buildvcs=false" CGO_ENABLED=0
mkdir -p "$CACHE"
# One build at a time per cache: a second concurrent run waits, then finds everything cached.
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.build.lock"
  flock -n 9 || { echo "kube-apiserver.sh: another run is building into $CACHE; waiting for it" >&2; flock 9; }
fi

say() { printf 'kube-apiserver.sh: %s\n' "$*"; }
elapsed() { local s=$(($(date +%s) - $1)); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# --- 1. kube-apiserver -------------------------------------------------------------------------------
BIN_DIR=$CACHE/kube-apiserver-$KUBE_VERSION
BIN=$BIN_DIR/kube-apiserver
if [[ -x $BIN ]]; then
  say "kube-apiserver $KUBE_VERSION cached: $BIN"
else
  t0=$(date +%s)
  say "building kube-apiserver $KUBE_VERSION into $BIN_DIR (cold: ~4-10 min on 2 cores, ~2 GB RAM)"
  mkdir -p "$BIN_DIR"
  cd "$ROOT/tests/kube"
  if [[ ! -f go.sum ]]; then
    say "tests/kube/go.sum missing: go mod tidy"
    "$GO" mod tidy
  fi
  say "go mod download ($(elapsed "$t0"))"
  "$GO" mod download
  ldf="-s -w"
  minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  for kv in gitVersion=$KUBE_VERSION gitMajor=1 gitMinor=$minor gitTreeState=clean \
    buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ); do
    ldf="$ldf -X k8s.io/component-base/version.$kv -X k8s.io/client-go/pkg/version.$kv"
  done
  say "go build ($(elapsed "$t0"))"
  "$GO" build -trimpath -ldflags "$ldf" -o "$BIN.tmp" .
  mv "$BIN.tmp" "$BIN"
  say "built $BIN in $(elapsed "$t0") ($("$BIN" --version 2>/dev/null || echo '?'))"
fi

# --- 2. upstream CRDs, pinned, from their own Go modules ------------------------------------------------
CRD_DIR=$CACHE/crds
fetch() { # fetch MOD@VER DEST FILE... : copy files (relative to the module root) into DEST
  local modver=$1 dest=$2; shift 2
  local all=1 f
  for f in "$@"; do [[ -f $dest/$(basename "$f") ]] || all=0; done
  if ((all)); then say "CRDs of $modver cached: $dest"; return; fi
  say "fetching CRDs of $modver"
  local tmp dir
  tmp=$(mktemp -d)
  dir=$(cd "$tmp" && "$GO" mod download -json "$modver" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
  rmdir "$tmp"
  if [[ -z $dir || ! -d $dir ]]; then echo "kube-apiserver.sh: go mod download $modver gave no Dir" >&2; exit 1; fi
  mkdir -p "$dest"
  for f in "$@"; do
    install -m 0644 "$dir/$f" "$dest/$(basename "$f")"
  done
  echo "$modver" >"$dest/SOURCE"
}
GW=config/crd/standard/gateway.networking.k8s.io
fetch "$GATEWAY_API" "$CRD_DIR/gateway-api" \
  "${GW}_gatewayclasses.yaml" "${GW}_gateways.yaml" "${GW}_httproutes.yaml" "${GW}_referencegrants.yaml" \
  "${GW}_grpcroutes.yaml"
fetch "$ISTIO_API" "$CRD_DIR/istio" kubernetes/customresourcedefinitions.gen.yaml
fetch "$OSM" "$CRD_DIR/smi" cmd/osm-bootstrap/crds/smi_traffic_split.yaml

# --- 3. helm (optional) -------------------------------------------------------------------------------
if ((with_helm)); then
  HELM_DIR=$CACHE/helm-$HELM_VERSION
  if [[ -x $HELM_DIR/helm ]]; then
    say "helm $HELM_VERSION cached: $HELM_DIR/helm"
  else
    t0=$(date +%s)
    say "building helm $HELM_VERSION into $HELM_DIR (cold: ~1-2 min)"
    mkdir -p "$HELM_DIR"
    tmp=$(mktemp -d)
    (cd "$tmp" && GOBIN=$tmp "$GO" install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
      "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
    mv "$tmp/helm" "$HELM_DIR/helm"
    rmdir "$tmp"
    say "built $HELM_DIR/helm in $(elapsed "$t0")"
  fi
fi
say "ready (cache: $CACHE)"
