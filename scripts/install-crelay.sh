#!/usr/bin/env bash
# scripts/install-crelay.sh: what the differential tests against
# carbon-c-relay need. Installs Debian's carbon-c-relay package (the oracle of
# `carbon-c-relay -t`) when it is missing, and unpacks Debian's source package
# of the same version once, for the configurations of its issues/ directory.
# Prints the unpacked source directory (cached in
# ${XDG_CACHE_HOME:-$HOME/.cache}/router-test/carbon-c-relay-src).
# Needs root or sudo for apt-get; no deb-src line is needed (a temporary list
# is made from the machine's own apt sources; the system's apt config is not
# changed).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v carbon-c-relay >/dev/null 2>&1; then
	$SUDO apt-get install -y -q carbon-c-relay >/dev/null 2>&1 ||
		{ $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q carbon-c-relay >/dev/null; }
fi
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/router-test/carbon-c-relay-src
if [ -d "$CACHE/issues" ]; then
	echo "$CACHE"
	exit 0
fi
S=$(mktemp -d)
trap 'rm -rf "$S"' EXIT
mkdir -p "$S/parts" "$S/lists/partial" "$S/cache/archives/partial" "$S/src"
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] && sed -E 's/^Types:.*/Types: deb-src/' "$f" >"$S/parts/$(basename "$f")"
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
	[ -f "$f" ] && sed -nE 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >>"$S/parts/from-list.list"
done
APTO=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$S/parts" -o "Dir::State::Lists=$S/lists"
	-o "Dir::Cache=$S/cache")
[ "$(id -u)" = 0 ] && APTO+=(-o "APT::Sandbox::User=root")
apt-get "${APTO[@]}" update >"$S/update.log" 2>&1 || true
version=$(dpkg-query -W -f='${Version}' carbon-c-relay 2>/dev/null || true)
(cd "$S/src" && apt-get "${APTO[@]}" source --download-only "carbon-c-relay${version:+=$version}") >"$S/source.log" 2>&1 ||
	(cd "$S/src" && apt-get "${APTO[@]}" source --download-only carbon-c-relay) >>"$S/source.log" 2>&1 || true
TGZ=$(ls "$S/src"/carbon-c-relay_*.orig.tar.* 2>/dev/null | head -1)
[ -n "$TGZ" ] || { echo "install-crelay.sh: no carbon-c-relay source package: $(tail -2 "$S/source.log")" >&2; exit 1; }
tar -C "$S/src" -xf "$TGZ"
mkdir -p "$(dirname "$CACHE")"
rm -rf "$CACHE.tmp"
mv "$(ls -d "$S/src"/carbon-c-relay-*/ | head -1)" "$CACHE.tmp"
mv "$CACHE.tmp" "$CACHE"
echo "$CACHE"
