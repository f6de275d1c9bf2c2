#!/bin/sh
# crelay-issue236.sh HASH CASE: writes input/ and expected/ of testdata/e2e/CASE
# from testdata/hashring/crelay_issue236.txt: the HASH placements (replication 2)
# carbon-c-relay printed in its issue236 test (github.com/grobian/carbon-c-relay
# at 8cd40bc28ca6, test/issue236.out). A metric goes to both of its
# destinations; each sink is named by its host. Run from the repository root;
# the cases' gen.sh call it.
set -eu
hash=$1
d=testdata/e2e/$2
rm -rf "$d/input" "$d/expected"
mkdir -p "$d/input" "$d/expected"
for i in 1 2 3 4 5 6 7; do : > "$d/expected/127.0.0.$i.txt.unsorted"; done
awk -v d="$d" -v hash="$hash" '
	$1 == hash {
		line = $2 " 1 1700000000"
		print line > (d "/input/graphite.txt")
		for (k = 4; k <= 5; k++) {
			split($k, hp, ":")
			print line > (d "/expected/" hp[1] ".txt.unsorted")
		}
	}' testdata/hashring/crelay_issue236.txt
for f in "$d"/expected/*.txt.unsorted; do
	LC_ALL=C sort "$f" > "${f%.unsorted}"
	rm "$f"
done
