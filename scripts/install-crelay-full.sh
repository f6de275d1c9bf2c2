#!/usr/bin/env bash
# scripts/install-crelay-full.sh: carbon-c-relay built WITH its gzip, lz4,
# snappy and ssl transports, for the link tests against the real peer
# (e2e_links_test.go, plugins/internal/transport). Debian's binary package is
# built without them ("feature gzip not compiled in"), so this builds the
# same version from Debian's own source package, which
# scripts/install-crelay.sh unpacks. Prints the binary's path (cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/router-test/carbon-c-relay-full/relay; the
# first build takes about 40 s). Needs root or sudo for apt-get (gcc, make and
# the -dev packages of zlib, lz4, snappy and OpenSSL).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${XDG_CACHE_HOME:-$HOME/.cache}/router-test/carbon-c-relay-full/relay
if [ -x "$OUT" ] && "$OUT" -v 2>&1 | grep -q gzip; then
	echo "$OUT"
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
need=()
for p in gcc make zlib1g-dev liblz4-dev libsnappy-dev libssl-dev; do
	[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	$SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
		{ $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi
SRC=${CRELAY_SRC:-$(./scripts/install-crelay.sh)}
B=$(mktemp -d)
trap 'rm -rf "$B"' EXIT
cp -a "$SRC/." "$B/" # -a: timestamps, or make regenerates the parser (bison)
(cd "$B" && ./configure --with-gzip --with-lz4 --with-snappy --with-ssl && make -j"$(nproc)" relay) >"$B.log" 2>&1 ||
	{ echo "install-crelay-full.sh: build failed: $(tail -3 "$B.log")" >&2; exit 1; }
rm -f "$B.log"
mkdir -p "$(dirname "$OUT")"
cp "$B/relay" "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
echo "$OUT"
