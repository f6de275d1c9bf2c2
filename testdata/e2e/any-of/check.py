#!/usr/bin/python3
# Checks expected/ of this case without the router: each line of input/graphite.txt
# must be in expected/<a|b|c>.txt for the target FNV-1a 32(path) % 3 picks, and nowhere
# else. Run from the repository root: python3 testdata/e2e/any-of/check.py
import collections, sys

d = "testdata/e2e/any-of/"
targets = ["a", "b", "c"]


def fnv1a32(b):
    h = 0x811C9DC5
    for c in b:
        h = ((h ^ c) * 0x01000193) & 0xFFFFFFFF
    return h


want = {t: collections.Counter() for t in targets}
for line in open(d + "input/graphite.txt", "rb").read().splitlines():
    want[targets[fnv1a32(line.split(b" ")[0]) % 3]][line] += 1
bad = 0
for t in targets:
    got = collections.Counter(open(d + "expected/%s.txt" % t, "rb").read().splitlines())
    if got != want[t]:
        bad += 1
        print("expected/%s.txt differs: %d missing, %d extra" % (t, sum((want[t] - got).values()), sum((got - want[t]).values())))
print("ok" if bad == 0 else "FAIL")
sys.exit(1 if bad else 0)
