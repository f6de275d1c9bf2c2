#!/usr/bin/python3
"""Write canonical.txt: what carbon's TaggedSeries.parse(path).path gives for
each path, or that it raises.

Run from plugins/codec/graphite with the system Python, which has Debian's
graphite-carbon (1.1.7-1.1 when written; apt-get install graphite-carbon):

    /usr/bin/python3 testdata/tags/gen_canonical.py

The paths are the hand-written cases below, then 3000 random ones drawn,
with a fixed seed, from an alphabet of the characters carbon's tag parser
gives a meaning (';', '=', '~', '!', '^', '{', '}', '"', ',', ':', '\\')
and a few others (ASCII letters, '.', '-', 'é'). Each output line is
hex(path) TAB hex(canonical path), or hex(path) TAB "error". The output is
deterministic: running the script again leaves the file unchanged.
"""
import os
import random

from carbon.util import TaggedSeries

HERE = os.path.dirname(os.path.abspath(__file__))

CASES = [
    "a", "a.b.c", "~a", "~~a.b", "~", "~~", "a~",
    "a;k=v", "a;k2=v2;k=v", "a;b=1;a=2;c=3", "a;k=v;k=w", "a;k=w;k=v;k=u",
    "a;name=x", "a;name=x;k=v", "~a;k=v", "~;k=v", ";k=v", "a;", "a;;k=v",
    "a;k", "a;=v", "a;k=", "a;k!=v", "a;k^=v", "a;k=~v", "a;k=v~", "a;k=v=w",
    "a;k=v;k-x=w", "a;a-b=1;a=2", "a;k=é;k=e", "a;é=1;z=2", "a;K=1;k=2",
    "a;name=~x", "a;k=v;", "a;k==v", "a;~k=v",
    'a{k="v"}', 'a{k="v",j="w"}', 'a{k="v",k="w"}', 'a{k="v":,j="w"}',
    'a{k="v\\"x"}', 'a{k="v\\\\x"}', 'a{k="v\\\\\\"x"}', 'a{k="v\\x"}',
    'a{k=""}', 'a{k="~v"}', 'a{k="v;w"}', 'a{k!="v"}', 'a{name="x"}',
    '{k="v"}', 'a{{k="v"}', 'a{k="v"', 'a{k=v"}', 'a{k="v",}', 'a;t=1{k="v"}',
    '~a{k="v"}', 'a{k="v"x"}', 'a{k="v",j="w",}', 'a{,k="v"}', 'a{k:="v"}',
]

ALPHABET = list("ab.-=;;;==~!^{}\",:\\") + ["é", "k", "v", "name"]


def rnd(r):
    n = r.randint(1, 14)
    return "".join(r.choice(ALPHABET) for _ in range(n))


def tagged(r):
    # mostly well-formed tagged paths, in random order, some repeated keys
    keys = ["a", "b", "k", "k-x", "ka", "z", "name", "é"]
    parts = ["m.%d" % r.randint(0, 9)]
    for _ in range(r.randint(0, 6)):
        parts.append("%s=%s" % (r.choice(keys), r.choice(["1", "2", "x", "x=y", "~", "é"])))
    return ";".join(parts)


def main():
    r = random.Random(22)
    paths = list(CASES)
    paths += [rnd(r) for _ in range(1500)]
    paths += [tagged(r) for _ in range(1500)]
    with open(os.path.join(HERE, "canonical.txt"), "w") as out:
        out.write("# /usr/bin/python3 testdata/tags/gen_canonical.py (graphite-carbon 1.1.7-1.1)\n")
        for p in paths:
            try:
                got = TaggedSeries.parse(p).path.encode("utf-8").hex()
            except Exception:
                got = "error"
            out.write("%s\t%s\n" % (p.encode("utf-8").hex(), got))


main()
