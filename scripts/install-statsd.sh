#!/usr/bin/env bash
# scripts/install-statsd.sh: Etsy statsd from npm (its proxy.js is the
# reference of the StatsD proxy's differential tests). Installs Debian's
# nodejs and npm when they are missing, then statsd@0.9.0 once into
# ${XDG_CACHE_HOME:-$HOME/.cache}/router-test/etsy-statsd, and prints the
# package directory (STATSD_DIR for the tests and bench/run.sh).
# Needs root or sudo for apt-get.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
VERSION=0.9.0
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	$SUDO apt-get install -y -q nodejs npm >/dev/null 2>&1 ||
		{ $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q nodejs npm >/dev/null; }
fi
PREFIX=${XDG_CACHE_HOME:-$HOME/.cache}/router-test/etsy-statsd
DIR=$PREFIX/node_modules/statsd
if [ -f "$DIR/proxy.js" ] && grep -q "\"version\": \"$VERSION\"" "$DIR/package.json"; then
	echo "$DIR"
	exit 0
fi
mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error "statsd@$VERSION" >&2
[ -f "$DIR/proxy.js" ] || { echo "install-statsd.sh: no proxy.js in $DIR" >&2; exit 1; }
echo "$DIR"
