#!/usr/bin/env bash
# Prints the Debian copyright file (DEP-5) of the router package: the router
# itself, then every Go module linked into /usr/bin/router for GOARCH $1 and
# the Go runtime, each with the license text found in the module (identical
# texts are written once). Used by build-deb.sh.
set -euo pipefail
export LC_ALL=C

root="$(cd "$(dirname "$0")/.." && pwd)"
GO="${GO:-go}"
goarch="${1:-$("$GO" env GOARCH)}"

die() { echo "copyright.sh: $*" >&2; exit 1; }

# license_file DIR: the license text of a module directory.
license_file() {
	local f
	for f in LICENSE LICENSE.md LICENSE.txt LICENCE COPYING COPYING.md; do
		if [ -f "$1/$f" ]; then
			echo "$1/$f"
			return
		fi
	done
	return 1
}

# spdx FILE: a short name for the license(s) in a text; a file holding
# several gets them joined by "-and-" (klauspost/compress: BSD, Apache, MIT).
spdx() {
	local n=()
	grep -qi 'Mozilla Public License,\{0,1\} version 2.0' "$1" && n+=(MPL-2.0)
	grep -q 'Neither the name' "$1" && n+=(BSD-3-clause)
	if ! grep -q 'Neither the name' "$1" && grep -q 'Redistribution and use in source and binary forms' "$1"; then
		n+=(BSD-2-clause)
	fi
	grep -q 'Apache License' "$1" && grep -q 'Version 2.0' "$1" && n+=(Apache-2.0)
	grep -q 'Permission is hereby granted, free of charge' "$1" && n+=(Expat)
	grep -q 'Permission to use, copy, modify, and/or distribute' "$1" && n+=(ISC)
	[ ${#n[@]} -gt 0 ] || n=(other)
	local IFS=' '
	local j="${n[*]}"
	echo "${j// /-and-}"
}

# holders FILE FALLBACK: the Copyright lines of a license text, one per line.
holders() {
	local h
	h=$(grep -E '^[[:space:]]*(Copyright|\(c\)|©)[[:space:]]*(\([cC]\)|©)?[[:space:]]*[0-9]' "$1" |
		sed -E -e 's/^[[:space:]]*//' -e 's/^Copyright[[:space:]]*(\([cC]\)|©)?[[:space:]]*//' | sort -u) || true
	if [ -z "$h" ]; then
		h="$2"
	fi
	printf '%s\n' "$h" | sed -e '2,$s/^/ /'
}

# text FILE: a license text as a DEP-5 continuation (blank lines become " ."),
# with a full Apache License 2.0 inside replaced by a pointer to Debian's copy.
text() {
	expand "$1" | awk '
		!skip && /^[[:space:]]*Apache License[[:space:]]*$/ {
			skip = 1
			print "On Debian systems the full text of the Apache License, Version 2.0,"
			print "is in /usr/share/common-licenses/Apache-2.0."
			next
		}
		skip && /END OF TERMS AND CONDITIONS/ { skip = 0; next }
		!skip' | sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /'
}

# common NAME: the text of a license Debian ships in /usr/share/common-licenses.
common() {
	printf ' On Debian systems the full text of the %s license is in
 /usr/share/common-licenses/%s.
' "$1" "$1"
}

cat <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: router
Upstream-Contact: https://github.com/metricsrouter/router/issues
Source: https://github.com/metricsrouter/router
Comment: /usr/bin/router is a static Go binary. Besides the router's own code
 it contains the Go runtime and standard library and the Go modules listed
 below, at the versions given; their license texts follow.

EOF

declare -A name_of used
order=()

# The router itself: Apache License 2.0 (LICENSE), whose text is Debian's
# copy, given once in the stand-alone paragraph at the end that the modules
# under the same license share. LICENSE is the bare license text, so the
# holders are "the router authors".
lic=$(license_file "$root") || die "no LICENSE in $root"
name=$(spdx "$lic")
[ "$name" = Apache-2.0 ] || die "$lic is $name, not the Apache License 2.0 the router is under"
printf 'Files: *\nCopyright: %s\nLicense: %s\n\n' "$(holders "$lic" "the router authors")" "$name"
used[$name]=1
name_of[common:$name]=$name
order+=("common:$name|$lic")

paragraph() { # module version dir
	local lic key n base
	lic=$(license_file "$3") || die "no license file in $3 ($1)"
	n=$(spdx "$lic")
	case "$n" in
	MPL-2.0 | Apache-2.0) key="common:$n" ;; # the text is Debian's; holders go in Copyright
	*) key=$(sha256sum <"$lic" | cut -c1-16) ;;
	esac
	if [ -z "${name_of[$key]:-}" ]; then
		if [ -n "${used[$n]:-}" ]; then
			base=${1##*/}
			case "$base" in v[0-9]*) base=${1%/*} base=${base##*/} ;; esac
			n="$n~$base"
		fi
		used[$n]=1
		name_of[$key]=$n
		order+=("$key|$lic")
	fi
	printf 'Files: %s/*\nCopyright: %s\nLicense: %s\nComment: Go module %s %s, linked into /usr/bin/router.\n\n' \
		"$1" "$(holders "$lic" "the $1 authors")" "${name_of[$key]}" "$1" "$2"
}

paragraph "golang.org/go" "$("$GO" env GOVERSION)" "$("$GO" env GOROOT)"
while read -r path version dir; do
	[ -n "$path" ] || continue
	paragraph "$path" "$version" "$dir"
done < <(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" "$GO" list -deps \
	-f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' . | sort -u)

for e in "${order[@]}"; do
	key=${e%%|*}
	printf 'License: %s\n' "${name_of[$key]}"
	case "$key" in
	common:*) common "${key#common:}" ;;
	*) text "${e#*|}" ;;
	esac
	echo
done
