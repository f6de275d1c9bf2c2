#!/bin/sh
# Writes input/ and expected/ of this case from testdata/e2e-carbon-ch/expected.txt,
# the instance Graphite carbon 1.1.7's own ConsistentHashRing picks for e2e.ch.<i>
# (made by testdata/e2e-carbon-ch/gen_expected.py). Run from the repository root.
set -eu
d=testdata/e2e/carbon-ch-placement
n=3000
rm -rf "$d/input" "$d/expected"
mkdir -p "$d/input" "$d/expected"
awk -v d="$d" -v n="$n" '
	/^#/ { next }
	i < n {
		line = sprintf("e2e.ch.%d %d 1700000000", i, i % 7)
		print line > (d "/input/graphite.txt")
		print line > (d "/expected/" $1 ".txt.unsorted")
		i++
	}' testdata/e2e-carbon-ch/expected.txt
for f in "$d"/expected/*.txt.unsorted; do
	LC_ALL=C sort "$f" > "${f%.unsorted}"
	rm "$f"
done
