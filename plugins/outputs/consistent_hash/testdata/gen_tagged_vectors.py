#!/usr/bin/python3
"""Write carbon_ch_tagged.txt: where Graphite carbon places tagged series.

Run from plugins/outputs/consistent_hash with the system Python, which has
Debian's graphite-carbon (1.1.7-1.1 when written; apt-get install
graphite-carbon):

    /usr/bin/python3 testdata/gen_tagged_vectors.py

carbon-relay (carbon/client.py, RelayProcessor.process) routes a metric by
its name as received, or, with TAG_RELAY_NORMALIZED = True, by
TaggedSeries.parse(name).path, the canonical form (tags sorted); carbon-cache
stores a series under that same canonical form (carbon/cache.py). The
consistent-hashing router (carbon/routers.py, ConsistentHashingRouter) hashes
the whole string it is given (getKey is the identity).

The script draws 10000 distinct tagged names, with a fixed seed, whose tags
are in random order (some repeated, some named "name", some names starting
with '~'), and routes each one's canonical form through carbon's own
ConsistentHashingRouter (carbon_ch, 100 replicas) over the 8 destinations of
the "# member:" lines, with REPLICATION_FACTOR 1 and 2. Each other line is:
the name as drawn TAB destinations with replication 1 TAB destinations with
replication 2 (host:port:instance, joined by ','). The output is
deterministic: running the script again leaves the file unchanged.
"""
import os
import random

from carbon import routers
from carbon.util import TaggedSeries

HERE = os.path.dirname(os.path.abspath(__file__))
N = 10000

DESTINATIONS = [("10.0.0.%d" % (i + 1), 2004, "c%d" % i) for i in range(6)] + [
    ("10.0.1.1", 2104, "a"), ("10.0.1.2", 2104, None)]


class Settings(dict):
    __getattr__ = dict.__getitem__


def router(replication):
    r = routers.ConsistentHashingRouter(Settings(
        REPLICATION_FACTOR=replication, DIVERSE_REPLICAS=False, ROUTER_HASH_TYPE="carbon_ch"))
    for d in DESTINATIONS:
        r.addDestination(d)
    return r


def fmt(d):
    host, port, inst = d
    return "%s:%d" % (host, port) if inst is None else "%s:%d:%s" % (host, port, inst)


def names(rnd):
    words = ["servers", "web", "db", "cpu", "load", "memory", "disk", "api",
             "requests", "latency", "p99", "count", "état", "größe"]
    keys = ["dc", "env", "host", "region", "service", "az", "role", "k-x",
            "ka", "name", "é", "Zone"]
    values = ["prod", "dev", "ams", "fra", "web01", "web02", "x=y", "1", "ü",
              "a.b", "~ok"[1:], "v~"]
    seen = set()
    while len(seen) < N:
        name = ".".join(rnd.choice(words) for _ in range(rnd.randint(1, 4)))
        if rnd.random() < 0.05:
            name = "~" + name
        tags = ["%s=%s" % (rnd.choice(keys), rnd.choice(values)) for _ in range(rnd.randint(1, 7))]
        rnd.shuffle(tags)
        s = ";".join([name] + tags)
        if s not in seen:
            seen.add(s)
            yield s


def main():
    rnd = random.Random(2222)
    r1, r2 = router(1), router(2)
    with open(os.path.join(HERE, "carbon_ch_tagged.txt"), "w") as out:
        out.write("# /usr/bin/python3 testdata/gen_tagged_vectors.py (graphite-carbon 1.1.7-1.1)\n")
        for d in DESTINATIONS:
            out.write("# member: %s\n" % fmt(d))
        for name in names(rnd):
            key = TaggedSeries.parse(name).path
            d1 = ",".join(fmt(d) for d in r1.getDestinations(key))
            d2 = ",".join(fmt(d) for d in r2.getDestinations(key))
            out.write("%s\t%s\t%s\n" % (name, d1, d2))


main()
