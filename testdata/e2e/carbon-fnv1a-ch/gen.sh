#!/bin/sh
# Writes input/ and expected/ of this case from testdata/hashring/fnv1a_ch_carbon_instances.txt:
# Graphite carbon 1.1.7's fnv1a_ch over 14 instances (testdata/hashring/gen_carbon_vectors.py),
# replication 2 (third column), for its first 1,000 keys. Each sink is named by its instance;
# the empty key is left out (no Graphite line has an empty path). Run from the repository root.
set -eu
d=testdata/e2e/carbon-fnv1a-ch
rm -rf "$d/input" "$d/expected"
mkdir -p "$d/input" "$d/expected"
LC_ALL=C awk -F '\t' -v d="$d" '
	/^#/ || $1 == "" || i == 1000 { next }
	{
		i++
		line = $1 " 1 1700000000"
		print line > (d "/input/graphite.txt")
		n = split($3, reps, ",")
		for (k = 1; k <= n; k++) {
			m = split(reps[k], f, ":")
			print line > (d "/expected/" f[m] ".txt.unsorted")
		}
	}' testdata/hashring/fnv1a_ch_carbon_instances.txt
for f in "$d"/expected/*.txt.unsorted; do
	LC_ALL=C sort "$f" > "${f%.unsorted}"
	rm "$f"
done
