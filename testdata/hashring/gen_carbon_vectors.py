"""Generate golden vectors for the carbon_ch and fnv1a_ch rings of Graphite carbon.

Run from the repository root with the system Python, which has Debian's
graphite-carbon package (apt-get install graphite-carbon):

    /usr/bin/python3 testdata/hashring/gen_carbon_vectors.py

It routes 2000 keys per ring through carbon's own ConsistentHashingRouter
(carbon.routers), once with REPLICATION_FACTOR 1 and once with 2, and writes
one file per ring beside this script. Every ring has colliding positions (the
script stops otherwise), and up to 64 extra keys "probe.N" are added whose
positions sit next to the points the collision rule moved, so the vectors
tell the bump rule from the others. Each file starts with comment lines:
the command, the carbon version, the hash type, then one "# member:" line per
destination in the order they were added (host:port or host:port:instance).
Every other line is: key TAB destinations with replication 1 TAB destinations
with replication 2, destinations written like members and joined by commas.
"""

import os
import random
import sys

from carbon import routers
from carbon.hashing import ConsistentHashRing

try:
    from importlib.metadata import version as _version

    CARBON_VERSION = _version("carbon")
except Exception:  # the Debian package may ship no metadata
    CARBON_VERSION = "unknown"

COMMAND = "/usr/bin/python3 testdata/hashring/gen_carbon_vectors.py"
OUT_DIR = os.path.dirname(os.path.abspath(__file__))
KEYS = 2000

# The 14 servers of carbon-relay-ng issue 335, in that order: with 100
# replicas two of their points collide at 59417, and there are more.
ISSUE335 = [
    "10.20.34.114", "10.20.39.104", "10.20.40.161", "10.20.35.158",
    "10.20.37.70", "10.20.40.126", "10.20.33.78", "10.20.39.19",
    "10.20.42.66", "10.20.34.131", "10.20.38.55", "10.20.41.75",
    "10.20.32.8", "10.20.37.165",
]


class Settings(dict):
    __getattr__ = dict.__getitem__


def router(hash_type, replication, destinations):
    r = routers.ConsistentHashingRouter(Settings(
        REPLICATION_FACTOR=replication,
        DIVERSE_REPLICAS=False,
        ROUTER_HASH_TYPE=hash_type,
    ))
    for d in destinations:
        r.addDestination(d)
    return r


def fmt(dest):
    host, port, instance = dest
    if instance is None:
        return "%s:%d" % (host, port)
    return "%s:%d:%s" % (host, port, instance)


def collisions(hash_type, destinations):
    """Count ring points whose raw position another point already had, and
    list the positions where the bump rule changes the ring: raw and final
    positions of every bumped point and the ones just after them."""
    ring = ConsistentHashRing([], hash_type=hash_type)
    seen = set()
    n = 0
    raw = []
    for host, _, instance in destinations:
        for i in range(ring.replica_count):
            if hash_type == "fnv1a_ch":
                key = "%d-%s" % (i, instance)
            else:
                key = "%s:%d" % ((host, instance), i)
            p = ring.compute_ring_position(key)
            n += p in seen
            seen.add(p)
            raw.append(p)
    final = ConsistentHashRing([(h, inst) for h, _, inst in destinations], hash_type=hash_type)
    placed = [p for p, _ in final.ring]
    targets = set()
    for p in raw:
        targets.update((p, p + 1))
    bumped = sorted(set(placed) - set(raw))
    for p in bumped:
        targets.update((p, p + 1))
    # Without bumped points every point sits at its raw position and the
    # rule never mattered; keep the targets to bumped neighbourhoods.
    if bumped:
        targets = set(t for b in bumped for t in range(b - 2, b + 2))
    return n, sorted(t for t in targets if t < 65536)


def probes(hash_type, targets, limit=64):
    """Find keys "probe.N" whose position is one of targets (up to limit),
    so the vectors cover the positions where collisions were resolved."""
    ring = ConsistentHashRing([], hash_type=hash_type)
    want = set(targets[:limit])
    out = []
    n = 0
    while want and n < 5000000:
        k = "probe.%d" % n
        p = ring.compute_ring_position(k)
        if p in want:
            want.discard(p)
            out.append(k)
        n += 1
    return out


def keys(seed):
    rnd = random.Random(seed)
    words = ["servers", "web", "db", "cpu", "load", "memory", "free", "disk",
             "stats", "timers", "counters", "api", "requests", "latency",
             "p99", "count", "collectd", "carbon", "agents", "état", "größe",
             "メトリック"]
    out = ["", "a", "test.metric", "a.b.c.d", "a.b.c..d",
           "collectd.bar.memory.free", "hosts.worker1.cpu",
           "cpu.load;host=a;dc=eu", "ascii_only-OK:1#2"]
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."
    seen = set(out)
    while len(out) < KEYS:
        kind = rnd.random()
        if kind < 0.6:
            k = ".".join(rnd.choice(words) + ("%d" % rnd.randrange(100) if rnd.random() < 0.4 else "")
                         for _ in range(rnd.randint(1, 7)))
        elif kind < 0.9:
            k = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 80)))
        else:
            k = "%s;env=%s" % (".".join(rnd.choice(words) for _ in range(3)), rnd.choice(["prod", "dev", "ü"]))
        if k not in seen:
            seen.add(k)
            out.append(k)
    return out


def write(name, hash_type, destinations, seed, want_collisions):
    n, targets = collisions(hash_type, destinations)
    if want_collisions and n == 0:
        sys.exit("%s: no colliding positions; pick other members" % name)
    r1 = router(hash_type, 1, destinations)
    r2 = router(hash_type, 2, destinations)
    path = os.path.join(OUT_DIR, name)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("# generated by: %s\n" % COMMAND)
        f.write("# carbon %s, python %s\n" % (CARBON_VERSION, sys.version.split()[0]))
        f.write("# hash: %s\n" % hash_type)
        f.write("# colliding raw positions: %d\n" % n)
        for d in destinations:
            f.write("# member: %s\n" % fmt(d))
        for k in keys(seed) + probes(hash_type, targets):
            d1 = [fmt(d) for d in r1.getDestinations(k)]
            d2 = [fmt(d) for d in r2.getDestinations(k)]
            f.write("%s\t%s\t%s\n" % (k, ",".join(d1), ",".join(d2)))
    print("wrote %s (%d colliding positions, %d probe targets)" % (path, n, len(targets)))


def main():
    plain14 = [(h, 2003, None) for h in ISSUE335]
    write("carbon_ch_issue335.txt", "carbon_ch", plain14, 1, True)

    mixed = []
    for h in range(4):
        for j, inst in enumerate("abc"):
            mixed.append(("10.1.0.%d" % (h + 1), 2003 + j, inst))
    mixed += [("10.1.0.9", 2003, None), ("graphite-5.example.com", 2103, None)]
    write("carbon_ch_instances.txt", "carbon_ch", mixed, 2, True)

    inst14 = [(h, 2004, "cache-%02d-%s" % (i, "xyzzy"[i % 5] * (1 + i % 3)))
              for i, h in enumerate(ISSUE335)]
    write("fnv1a_ch_carbon_instances.txt", "fnv1a_ch", inst14, 3, True)

    none5 = [("10.30.0.%d" % (i + 1), 2003, None) for i in range(5)]
    write("fnv1a_ch_carbon_none.txt", "fnv1a_ch", none5, 4, True)


if __name__ == "__main__":
    main()
