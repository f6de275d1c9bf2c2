// Package hashring places metrics on members exactly as the relays it
// replaces do, so that a metric keeps landing on the node that holds its
// data. It uses only the standard library.
//
// The key is the metric path: a Graphite line up to its first space, a StatsD
// line up to its first ':'. Each constructor reproduces one original, checked
// against its own test vectors and source (testdata/hashring holds the golden
// files and the scripts that made them):
//
//   - NewCarbon(members, "bump"): Graphite carbon's carbon_ch
//     (ConsistentHashRing, also graphite-web's CARBONLINK_HOSTS) since the
//     2013 collision fix, and carbon-relay-ng consistentHashing-v2.
//   - NewCarbon(members, "first"): carbon-c-relay carbon_ch, carbon-relay-ng
//     consistentHashing, and carbon before 2013.
//   - NewFNV1a(members, "crelay"): carbon-c-relay fnv1a_ch.
//   - NewFNV1a(members, "carbon"): Graphite carbon's (and graphite-web's)
//     fnv1a_ch.
//   - NewJump(members): carbon-c-relay jump_fnv1a_ch.
//   - NewStatsd(members): Etsy statsd proxy.js, which uses node hashring 3.2.0.
//
// # Replication
//
// With n > 1, carbon_ch and fnv1a_ch walk the ring clockwise from the key's
// point and collect distinct members, as carbon's get_nodes and
// carbon-c-relay's ch_get_nodes do. jump_fnv1a_ch follows carbon-c-relay:
// after each pick it scrambles the hash with xorshift, moves the last
// candidate into the picked bucket and jumps again. proxy.js never
// replicates; statsd walks on to the next distinct members, as hashring's
// range() does.
//
// # Dead members
//
// For carbon_ch, fnv1a_ch and jump_fnv1a_ch a dead member is skipped and the
// sequence above goes on, so its keys move to what would have been their
// next replica and no other key moves. The originals differ here: carbon has
// no failover (its relay queues for the dead node), and carbon-c-relay's
// "dynamic" clusters keep placement unchanged and move a failed server's
// queue to randomly chosen live members, which no deterministic router can
// copy. For statsd the ring is rebuilt from the live members, as proxy.js
// does when a health check fails; since the points per node depend on the
// number of nodes, keys of live nodes may move too.
//
// # The statsd server list
//
// proxy.js takes a node whose health check fails out of node hashring
// (ring.remove; a node down at start-up goes at the first check) and puts it
// back when a check passes again (ring.add), which appends it to the ring's
// server list. The list decides one thing: when two nodes have a point in
// common (equal uint32), the key goes to the node earlier in the list. So a
// node that went down and came back loses its shared points to the nodes
// that stayed up, and wins them back only when those go down and come back
// in turn. Shared points are rare (about (40N)^2/2^33 for N nodes: one ring
// of 100 nodes in 500 has one), but a key on one lands on another backend.
//
// The statsd ring keeps that list, learning of health changes from the up
// sets Lookup is given. While up equals the last set recorded, Lookup only
// compares the two (no lock, no allocation). Otherwise it records the new
// set under a mutex: the members that went down leave the list, those that
// came back are appended, several at once in configuration order (proxy.js
// appends them in the order their health replies arrive), and the rebuilt
// ring is published atomically. Concurrent callers with the same new set
// record it once; each Lookup uses one consistent ring. up == nil records
// nothing and uses every member: the live ones in list order, then the down
// ones in configuration order. consistent_hash with on_down = "rehash" passes its targets' up set
// on every lookup for this reason, all up included; with "queue" the list
// stays in configuration order.
//
// The list lives as long as the ring: one built anew (a reload that changes
// the distributor or its targets) starts in configuration order. Learning
// through lookups has two limits. The caller reads up before its
// lookups, so a caller that read it just before a health change may look
// up after another caller recorded the change: the ring records it back
// and forth, which ends as if that change had come that much later, and
// differs from proxy.js only if another node changed within that delay,
// where proxy.js's own order is that of its health replies. And a node that
// goes down and comes back while no lookup happens keeps its place, where
// proxy.js would have moved it to the end of the list.
//
// # Compatibility notes
//
//   - carbon_ch "bump" and "first" agree only while no two points collide,
//     which is rare for 2 or 3 members and common from 10 on (about 14
//     collisions for 14 members).
//   - carbon-relay-ng consistentHashing-v2 bumps a point only past points of
//     earlier members, not past the member's own earlier points, and its
//     uint16 position wraps from 65535 to 0 where carbon's goes on to 65536;
//     so it differs from carbon (and this package) when a member's own
//     points collide (two of the 14 members of carbon-relay-ng#335) or a bump
//     passes 65535.
//   - carbon-relay-ng consistentHashing sorts a member without instance
//     before one with an instance when they share host and position;
//     carbon-c-relay and this package sort it after.
//   - carbon's get_nodes yields a lone member twice when asked for two
//     replicas; Lookup returns distinct members only. DIVERSE_REPLICAS is not
//     provided.
//   - carbon-c-relay's fnv1a_ch hashes a signed char, so bytes from 0x80 up
//     are sign-extended (this package does so, matching x86 builds); its
//     relay normally rewrites such bytes to '_' first. It agrees with
//     carbon's fnv1a_ch only when every member has an instance and no points
//     collide. carbon's fnv1a_ch without instances gives every member the
//     same 100 positions and nearly all keys to the first member.
//   - jump_fnv1a_ch balances almost perfectly, but removing any member other
//     than the last in its order remaps nearly every key.
//   - statsd: each of N nodes gets floor((100/(100*N))*40*N) points in
//     float64, which is 39 for N = 7, 14, 28, 49, 56, 98, 103, 112, ... and 40
//     otherwise. Equal 32-bit points go to the node earlier in proxy.js's
//     server list, which changes as nodes go down and come back (above).
//     Keys that are not valid UTF-8 are hashed after the replacement Node's
//     decoder makes.
//   - Polymur's hash-route matches carbon_ch only when every member has an
//     instance and no points collide.
//
// Members must be distinct in the way each original identifies them: carbon
// by host and instance (the port plays no part), carbon-c-relay by host and
// port, fnv1a_ch "crelay" by its replica key, statsd by host:port. carbon_ch
// hosts and instances are limited to printable ASCII without quote or
// backslash, where Python's repr and plain formatting agree, and replica
// keys to the 255 bytes carbon-c-relay's buffer holds.
package hashring
