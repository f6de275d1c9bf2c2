// Package consistent_hash is the distributor that places each metric on
// `replication` targets with the hash ring of the relay it replaces
// (package hashring): carbon_ch, fnv1a_ch, jump_fnv1a_ch, or Etsy statsd.
//
// The key is the metric path: the Graphite line up to its first space (tags
// included), the StatsD line up to its first ':' (Influx-style tags included,
// DogStatsD tags not). Routing is a pure function of the key, the target list
// and, with on_down = "rehash", the targets' health; for hash = "statsd" also
// of the order in which targets went down and came back, which decides who
// wins a ring point two targets share, as in proxy.js (package hashring).
package consistent_hash

import (
	_ "embed"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/metricsrouter/router/plugins/discovery/consul"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/outputs/consistent_hash/hashring"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddDistributor("consistent_hash", func() registry.Distributor {
		return &ConsistentHash{Hash: "carbon_ch", Collision: "bump", Flavour: "crelay", Replication: 1, OnDown: "queue"}
	}, sample, registry.DistributorSpec{})
}

// ConsistentHash is the outputs.consistent_hash plugin.
type ConsistentHash struct {
	Hash         string   `toml:"hash"`
	Collision    string   `toml:"collision"`
	Flavour      string   `toml:"flavour"`
	Replication  int      `toml:"replication"`
	OnDown       string   `toml:"on_down"`
	Protocol     string   `toml:"protocol"`
	Destinations []string `toml:"destinations"`
	// Destinations from a service catalog (consul_service = ...), instead
	// of or on top of the list above.
	consul.Keys

	targets  []registry.Target
	ring     hashring.Ring
	rehash   bool
	tracksUp bool // the ring keeps proxy.js's server list (statsd): give it every up set
	rehashed *atomic.Uint64
}

// Shorthand returns the destinations shorthand.
func (c *ConsistentHash) Shorthand() (string, []string) { return c.Protocol, c.Destinations }

// SetTargets receives the targets in configuration order (= ring order).
func (c *ConsistentHash) SetTargets(t []registry.Target) error {
	c.targets = t
	return nil
}

// Init validates the options and builds the ring.
func (c *ConsistentHash) Init(env registry.Env) error {
	r, err := BuildRing(c.Hash, c.Collision, c.Flavour, c.targets)
	if err != nil {
		return err
	}
	if c.Replication < 1 || c.Replication > len(c.targets) {
		return fmt.Errorf("replication = %d: want 1..%d (the number of targets)", c.Replication, len(c.targets))
	}
	switch c.OnDown {
	case "queue":
	case "rehash":
		c.rehash = true
	default:
		return fmt.Errorf("on_down %q: want \"queue\" or \"rehash\"", c.OnDown)
	}
	c.ring = r
	c.tracksUp = c.Hash == "statsd"
	c.rehashed = env.Metrics.Counter("rehashed_total", "Metrics sent past a down target to the next live one (on_down = \"rehash\").")
	return nil
}

// BuildRing builds the ring for hash (and its collision / flavour option)
// over targets; it is shared by the distributors that hash.
func BuildRing(hash, collision, flavour string, targets []registry.Target) (hashring.Ring, error) {
	if len(targets) == 0 {
		return nil, errors.New("no targets")
	}
	members := make([]hashring.Member, len(targets))
	for i, t := range targets {
		if t.Host == "" || t.Port == "" {
			return nil, fmt.Errorf("target %s (outputs.%s) has no host:port address to hash", t.ID, t.Plugin)
		}
		members[i] = hashring.Member{Host: t.Host, Port: t.Port, Instance: t.Instance}
	}
	var r hashring.Ring
	var err error
	switch hash {
	case "carbon_ch":
		if collision != hashring.CollisionBump && collision != hashring.CollisionFirst {
			return nil, fmt.Errorf("collision %q: want \"bump\" or \"first\"", collision)
		}
		r, err = hashring.NewCarbon(members, collision)
	case "fnv1a_ch":
		if flavour != hashring.FlavourCRelay && flavour != hashring.FlavourCarbon {
			return nil, fmt.Errorf("flavour %q: want \"crelay\" or \"carbon\"", flavour)
		}
		r, err = hashring.NewFNV1a(members, flavour)
	case "jump_fnv1a_ch":
		r, err = hashring.NewJump(members)
	case "statsd":
		r, err = hashring.NewStatsd(members)
	default:
		return nil, fmt.Errorf("hash %q: want \"carbon_ch\", \"fnv1a_ch\", \"jump_fnv1a_ch\" or \"statsd\"", hash)
	}
	if err != nil {
		return nil, fmt.Errorf("hash %s: %w", hash, err)
	}
	return r, nil
}

// Route appends the targets of m, primary first.
func (c *ConsistentHash) Route(m *metric.Metric, up []bool, dst []int) []int {
	key := m.Path()
	if !c.rehash {
		return c.ring.Lookup(key, c.Replication, nil, dst)
	}
	if allUp(up) {
		if c.tracksUp {
			// the statsd ring learns from up that a target came back
			return c.ring.Lookup(key, c.Replication, up, dst)
		}
		return c.ring.Lookup(key, c.Replication, nil, dst)
	}
	n := len(dst)
	dst = c.ring.Lookup(key, c.Replication, up, dst)
	if len(dst) == n {
		// every target is down: keep the metric queued at its own node(s)
		return c.ring.Lookup(key, c.Replication, nil, dst)
	}
	// count a metric whose primary moved off its own (down) node; the
	// lookup borrows dst's spare capacity so that nothing escapes
	if p := c.ring.Lookup(key, 1, nil, dst[len(dst):]); len(p) == 1 && dst[n] != p[0] {
		c.rehashed.Add(1)
	}
	return dst
}

func allUp(up []bool) bool {
	for _, u := range up {
		if !u {
			return false
		}
	}
	return true
}

var (
	_ registry.Distributor  = (*ConsistentHash)(nil)
	_ registry.Shorthand    = (*ConsistentHash)(nil)
	_ registry.TargetSetter = (*ConsistentHash)(nil)
	_ registry.Initializer  = (*ConsistentHash)(nil)
)
