#!/usr/bin/env bash
# install-consul.sh [BIN_DIR]
#
# Installs a real HashiCorp Consul agent for the tests (the Consul key store
# of inputs.https_batch is tested against one) as BIN_DIR/consul, default
# <repo>/.tools/bin/consul, where plugintest.StartConsul looks for it. Prints
# the installed binary's path on stdout (logs go to stderr), so:
#
#   export CONSUL_BIN="$(./scripts/install-consul.sh)"
#
# Adapted from ../shared/tools/install-consul.sh, same pinned versions.
#
# The binary is built from the Go module proxy with the ordinary `go` command.
# `go install github.com/hashicorp/consul@vX` refuses Consul's `replace ... =>
# ./api` directives, so a throw-away wrapper module *requires* consul and
# copies consul's main.go (replace directives of a dependency are ignored).
# Consul's in-tree ./api at v1.22.7 is newer than the api v1.33.7 its go.mod
# declares (v1.33.7 lacks ACLToken.Name, ACLAuthMethod.TokenNameFormat), so
# the tagged api module CONSUL_API_VERSION is pinned. Consul's `exclude`
# lines are copied (they are ignored outside the main module). Apart from
# api the build list is consul's own.
#
# Idempotent: does nothing if BIN_DIR/consul already reports CONSUL_VERSION.
# A copy is kept in $CONSUL_BUILD_CACHE (default ~/.cache/install-consul), so
# a fresh checkout on the same machine copies it (< 1 s) instead of building.
#
# Cold build (2 cores, empty module and build caches): 6-7 min wall, ~300 MB
# of module zips, peak RSS ~3.3 GB, ~2 GB in GOMODCACHE and ~1.8 GB in
# GOCACHE; warm Go caches ~25 s. Binary: ~126 MB. Needs Go >= 1.25.9.
#
# Env overrides: CONSUL_VERSION (default 1.22.7), CONSUL_API_VERSION
# (default v1.34.1), CONSUL_BUILD_CACHE (a directory, or "off").
set -euo pipefail

CONSUL_VERSION="${CONSUL_VERSION:-1.22.7}"
CONSUL_VERSION="${CONSUL_VERSION#v}"
CONSUL_API_VERSION="${CONSUL_API_VERSION:-v1.34.1}"
MITCHELLH_CLI_VERSION="v1.1.5"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${1:-$ROOT/.tools/bin}"
CACHE_ROOT="${CONSUL_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/install-consul}"

log() { echo "install-consul: $*" >&2; }
die() { echo "install-consul: ERROR: $*" >&2; exit 1; }

# has_version FILE -> 0 if FILE is an executable consul reporting CONSUL_VERSION
has_version() {
  [ -f "$1" ] && [ -x "$1" ] || return 1
  local got
  got="$("$1" version -format=json 2>/dev/null | sed -n 's/^ *"Version": *"\([^"]*\)".*/\1/p' | head -n1)" || return 1
  [ "$got" = "$CONSUL_VERSION" ]
}

# install_from SRC: copy SRC to TARGET atomically (same directory, then rename)
install_from() {
  cp "$1" "$TARGET.tmp.$$" && chmod 0755 "$TARGET.tmp.$$" && mv -f "$TARGET.tmp.$$" "$TARGET" \
    || { rm -f "$TARGET.tmp.$$"; die "cannot install $TARGET"; }
  has_version "$TARGET" || die "installed binary at $TARGET does not report version $CONSUL_VERSION"
}

mkdir -p "$BIN_DIR" || die "cannot create $BIN_DIR"
BIN_DIR="$(cd "$BIN_DIR" && pwd)"
TARGET="$BIN_DIR/consul"

if has_version "$TARGET"; then
  log "consul $CONSUL_VERSION already installed at $TARGET (nothing to do)"
  echo "$TARGET"
  exit 0
fi

CACHED=""
if [ "$CACHE_ROOT" != "off" ]; then
  CACHED="$CACHE_ROOT/$CONSUL_VERSION-api$CONSUL_API_VERSION/consul"
  if has_version "$CACHED"; then
    log "copying cached build $CACHED -> $TARGET"
    install_from "$CACHED"
    log "installed consul $CONSUL_VERSION at $TARGET"
    echo "$TARGET"
    exit 0
  fi
fi

command -v go >/dev/null 2>&1 || die "'go' not found on PATH (need Go >= 1.25.9)"
log "no cached build: building consul $CONSUL_VERSION with $(go version) (cold: ~7 min, ~3.3 GB RAM)"

# Keep the build hermetic w.r.t. the caller's Go settings that could break it.
export GOTOOLCHAIN=local   # never try to download another toolchain
export GOWORK=off          # ignore any go.work around the caller (ours included)
export GO111MODULE=on
export GOFLAGS="-buildvcs=false"
export CGO_ENABLED=0       # as Consul's own release builds

WORK="$(mktemp -d "${TMPDIR:-/tmp}/install-consul.XXXXXX")"
cleanup() { rm -rf "$WORK"; rm -f "$TARGET.tmp.$$"; }
trap cleanup EXIT
cd "$WORK"

log "step 1/4: fetching github.com/hashicorp/consul@v$CONSUL_VERSION from the Go module proxy"
DL_JSON="$(go mod download -json "github.com/hashicorp/consul@v$CONSUL_VERSION" 2>&1)" || true
CONSUL_DIR="$(printf '%s\n' "$DL_JSON" | sed -n 's/^[[:space:]]*"Dir": *"\(.*\)",*$/\1/p')"
if [ -z "$CONSUL_DIR" ] || [ ! -f "$CONSUL_DIR/main.go" ]; then
  DL_ERR="$(printf '%s\n' "$DL_JSON" | sed -n 's/^[[:space:]]*"Error": *"\(.*\)",*$/\1/p')"
  die "could not download github.com/hashicorp/consul@v$CONSUL_VERSION (GOPROXY=$(go env GOPROXY)): ${DL_ERR:-$DL_JSON}"
fi

cp "$CONSUL_DIR/main.go" "$WORK/main.go"
chmod u+w "$WORK/main.go"
cat > "$WORK/go.mod" <<GOMOD
module consul-build

go 1.25.9

// copied from consul's go.mod: ignored there when consul is a dependency
exclude (
	github.com/hashicorp/go-msgpack v1.1.5
	github.com/hashicorp/go-msgpack v1.1.6
)

require (
	github.com/hashicorp/consul v$CONSUL_VERSION
	github.com/hashicorp/consul/api $CONSUL_API_VERSION
	github.com/mitchellh/cli $MITCHELLH_CLI_VERSION
)
GOMOD

log "step 2/4: resolving and downloading dependencies (~300 MB of module zips when the module cache is cold)"
( go get "github.com/hashicorp/consul@v$CONSUL_VERSION" \
    "github.com/hashicorp/consul/api@$CONSUL_API_VERSION" \
    "github.com/mitchellh/cli@$MITCHELLH_CLI_VERSION" ) >&2 \
  || die "dependency resolution failed (see go output above)"

log "step 3/4: compiling consul (cold Go build cache: ~5-11 min on 2 cores; warm: ~10 s)"
start=$(date +%s)
( go build -trimpath -ldflags "-s -w" -o "$WORK/consul" . ) >&2 \
  || die "go build of consul v$CONSUL_VERSION failed (see compiler output above)"
log "compiled in $(( $(date +%s) - start ))s"

has_version "$WORK/consul" || die "built binary does not report version $CONSUL_VERSION: $("$WORK/consul" version 2>&1 | head -n1)"

log "step 4/4: installing to $TARGET"
install_from "$WORK/consul"
if [ -n "$CACHED" ]; then
  if mkdir -p "$(dirname "$CACHED")" && cp "$TARGET" "$CACHED.tmp.$$" && mv -f "$CACHED.tmp.$$" "$CACHED"; then
    log "cached a copy at $CACHED"
  else
    rm -f "$CACHED.tmp.$$"
    log "warning: could not write cache copy at $CACHED (continuing)"
  fi
fi
log "installed $("$TARGET" version | head -n1) at $TARGET"
echo "$TARGET"
