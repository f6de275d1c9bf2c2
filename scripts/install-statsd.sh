#!/usr/bin/env bash
# scripts/install-statsd.sh: Etsy statsd from npm (its proxy.js is the
# reference of the StatsD proxy's differential tests, its daemon that of the
# StatsD server's) and the StatsD client hot-shots. Installs Debian's nodejs
# and npm when they are missing, then, once each, statsd@0.9.0 into
# ${XDG_CACHE_HOME:-$HOME/.cache}/router-test/etsy-statsd and
# hot-shots@17.1.1 into .../router-test/hot-shots, and prints the statsd
# package directory (STATSD_DIR for the tests and bench/run.sh). hot-shots
# is at "$STATSD_DIR/../../../hot-shots/node_modules/hot-shots", where the
# tests look for it.
# Needs root or sudo for apt-get.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
VERSION=0.9.0
HOTSHOTS_VERSION=17.1.1
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	$SUDO apt-get install -y -q nodejs npm >/dev/null 2>&1 ||
		{ $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q nodejs npm >/dev/null; }
fi
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/router-test

# npm_once PREFIX PACKAGE VERSION FILE [NPM_FLAG...]: npm install
# PACKAGE@VERSION into PREFIX unless it is there already; FILE (in the
# package) must exist after.
npm_once() {
	local dir=$1/node_modules/$2
	if [ -f "$dir/$4" ] && grep -q "\"version\": \"$3\"" "$dir/package.json"; then
		return
	fi
	mkdir -p "$1"
	npm install --prefix "$1" --no-audit --no-fund --loglevel=error "${@:5}" "$2@$3" >&2
	[ -f "$dir/$4" ] || { echo "install-statsd.sh: no $4 in $dir" >&2; exit 1; }
}

# statsd's optional hashring is what proxy.js needs
npm_once "$CACHE/etsy-statsd" statsd "$VERSION" proxy.js
# hot-shots' optional unix-dgram is a native addon, of no use over UDP
npm_once "$CACHE/hot-shots" hot-shots "$HOTSHOTS_VERSION" index.js --omit=optional
echo "$CACHE/etsy-statsd/node_modules/statsd"
