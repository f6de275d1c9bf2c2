#!/usr/bin/env bash
# Builds the Debian package of the router from this checkout, with nothing but
# Go (and the module cache or proxy) and dpkg-deb: no debhelper, no network
# beyond the Go module proxy.
#
#   packaging/build-deb.sh [OUTDIR]          (make deb; OUTDIR defaults to bin/)
#   packaging/build-deb.sh --print           "VERSION ARCH" of the package, nothing built
#
# Prints the path of the .deb on its last line. Environment:
#   VERSION          upstream version (default: from `git describe --tags`, made
#                    Debian-safe; with no tag, the VERSION file (the next
#                    release) plus ~gitDATE.HASH; without git, the VERSION file
#                    as it is, or 0.0.0~dev without one)
#   DEB_REVISION     Debian revision (default 1)
#   GOARCH           target architecture (default `go env GOARCH`): amd64, arm64,
#                    386, arm (GOARM=7), ppc64le, riscv64, s390x
#   DEB_MAINTAINER   the Maintainer field
#   SOURCE_DATE_EPOCH  timestamps of the files (default: the commit's time)
#   GO               the go command (default go)
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

root="$(cd "$(dirname "$0")/.." && pwd)"
pkg="$root/packaging"
out="${1:-$root/bin}"
GO="${GO:-go}"
name=router
module=github.com/metricsrouter/router
homepage=https://github.com/metricsrouter/router
maintainer="${DEB_MAINTAINER:-Router Maintainers <router-maintainers@metricsrouter.example>}"

die() { echo "build-deb: $*" >&2; exit 1; }

# --- version -----------------------------------------------------------------
# Debian upstream versions may hold [0-9A-Za-z.+~] and must start with a digit;
# '~' sorts before anything, so pre-releases sort before the release.
#   v1.2.3 -> 1.2.3         v1.2.3-rc1 -> 1.2.3~rc1
#   v1.2.3-4-gabc1234 -> 1.2.3+git4.gabc1234
#   (no tag) abc1234 -> 0.1.0~git20260102.abc1234, 0.1.0 being the VERSION file
#                       (the release being prepared; the commit date, so builds sort)
#   (no git) the VERSION file as it is
# A tag wins over the VERSION file: a release is its tag.
upstream_version() {
	local d date file=""
	if [ -f "$root/VERSION" ]; then
		file=$(sed -n -e 's/[[:space:]]//g' -e '/./{p;q;}' "$root/VERSION")
	fi
	if [ -n "${VERSION:-}" ]; then
		d="$VERSION"
	elif d=$(git -C "$root" describe --tags 2>/dev/null); then
		:
	elif d=$(git -C "$root" rev-parse --short HEAD 2>/dev/null); then
		date=$(git -C "$root" log -1 --format=%cd --date=format:%Y%m%d)
		d="${file:-0.0.0}~git$date.$d"
	else
		d="${file:-0.0.0~dev}"
	fi
	d="${d#v}"
	if [[ $d =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		d="${BASH_REMATCH[1]}+git${BASH_REMATCH[2]}.g${BASH_REMATCH[3]}"
	fi
	d="${d//-/\~}"
	d=$(printf '%s' "$d" | tr -c '0-9A-Za-z.+~' '.')
	[[ $d =~ ^[0-9] ]] || d="0.0.0~$d"
	printf '%s' "$d"
}
version="$(upstream_version)"
revision="${DEB_REVISION:-1}"
debversion="$version-$revision"

goarch="${GOARCH:-$("$GO" env GOARCH)}"
case "$goarch" in
amd64 | arm64 | riscv64 | s390x) arch="$goarch" ;;
386) arch=i386 ;;
arm) arch=armhf; export GOARM="${GOARM:-7}" ;;
ppc64le) arch=ppc64el ;;
*) die "no Debian architecture for GOARCH=$goarch" ;;
esac

if [ "${1:-}" = "--print" ]; then
	echo "$debversion $arch"
	exit 0
fi

epoch="${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH="$epoch"

command -v dpkg-deb >/dev/null || die "dpkg-deb not found (apt-get install dpkg)"

# --- staging tree ------------------------------------------------------------
stage="$(mktemp -d "${TMPDIR:-/tmp}/router-deb.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
doc="$stage/usr/share/doc/$name"

install -d -m 0755 "$stage/DEBIAN" "$stage/usr/bin" "$stage/etc/router/examples/keys" \
	"$stage/lib/systemd/system" "$stage/usr/share/man/man1" "$doc" "$stage/var/lib/router" \
	"$stage/usr/share/lintian/overrides"

(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" "$GO" build -trimpath \
	-ldflags "-s -w -X $module/agent.Version=$version" -o "$stage/usr/bin/$name" .)
chmod 0755 "$stage/usr/bin/$name"

# configuration: the default (conffile) and the examples, their relative
# paths made absolute and their scratch files moved to /var/lib/router
install -m 0644 "$pkg/router.toml" "$stage/etc/router/router.toml"
examples() {
	sed -E -e 's#(^|[^/A-Za-z0-9_.])etc/#\1/etc/router/examples/#g' \
		-e 's#/tmp/router-#/var/lib/router/#g' "$1" >"$2"
	chmod 0644 "$2"
}
shopt -s nullglob
for f in "$root"/etc/*.toml; do
	examples "$f" "$stage/etc/router/examples/$(basename "$f")"
done
for f in "$root"/etc/keys/*; do
	install -m 0644 "$f" "$stage/etc/router/examples/keys/$(basename "$f")"
done
shopt -u nullglob

install -m 0644 "$pkg/systemd/router.service" "$pkg/systemd/router@.service" "$stage/lib/systemd/system/"

# documentation
sed -e "s/@VERSION@/$version/" -e "s/@DATE@/$(date -u -d "@$epoch" +%Y-%m-%d)/" "$pkg/router.1" |
	gzip -9n >"$stage/usr/share/man/man1/$name.1.gz"
gzip -9n <"$root/README.md" >"$doc/README.md.gz"
gzip -9n <"$root/CHANGELOG.md" >"$doc/changelog.gz"
{
	printf '%s (%s) unstable; urgency=medium\n\n' "$name" "$debversion"
	printf '  * Built from %s by packaging/build-deb.sh; the changes are in\n' \
		"$(git -C "$root" describe --tags --always 2>/dev/null || echo "a source tree")"
	printf '    /usr/share/doc/router/changelog.gz.\n\n'
	printf ' -- %s  %s\n' "$maintainer" "$(date -u -d "@$epoch" -R)"
} | gzip -9n >"$doc/changelog.Debian.gz"
"$pkg/copyright.sh" "$goarch" >"$doc/copyright"
chmod 0644 "$doc"/*
# the reference README.md points to: /usr/share/doc/router/docs/*.md.gz
install -d -m 0755 "$doc/docs"
for f in "$root"/docs/*.md; do
	gzip -9n <"$f" >"$doc/docs/$(basename "$f").gz"
	chmod 0644 "$doc/docs/$(basename "$f").gz"
done
install -m 0644 "$pkg/deb/lintian-overrides" "$stage/usr/share/lintian/overrides/$name"

# --- control -----------------------------------------------------------------
for s in postinst prerm postrm; do
	install -m 0755 "$pkg/deb/$s" "$stage/DEBIAN/$s"
done
(cd "$stage" && find etc -type f -printf '/%p\n' | sort) >"$stage/DEBIAN/conffiles"
# md5sums of everything but the conffiles (dpkg keeps theirs), as dh_md5sums
(cd "$stage" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' |
	sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: $name
Version: $debversion
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: adduser
Section: net
Priority: optional
Homepage: $homepage
Description: metrics router for Graphite, StatsD and Polymur
 Receives Graphite plaintext (TCP/UDP), StatsD and Polymur HTTPS batches
 and relays them: consistent hashing placing every metric where Graphite
 carbon, carbon-c-relay or Etsy's statsd proxy would, broadcast, failover,
 mirrors, and gzipped HTTPS batches to a Polymur gateway. Each destination
 has its own bounded queue, retries and an optional disk spool; untouched
 lines leave byte for byte as they came.
 .
 This package ships /usr/bin/router, a Graphite relay configuration in
 /etc/router/router.toml, example configurations, and the systemd units
 router.service and router@.service (one instance per /etc/router/NAME.toml),
 running as the router system user.
EOF
chmod 0644 "$stage/DEBIAN/control" "$stage/DEBIAN/conffiles" "$stage/DEBIAN/md5sums"

find "$stage" -exec touch -h -d "@$epoch" {} +
mkdir -p "$out"
deb="$out/${name}_${debversion}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
