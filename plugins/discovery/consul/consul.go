// Package consul is the Consul service catalog for distributors
// (`consul_service = "carbon-cache"` in an outputs.consistent_hash or
// outputs.broadcast table): the destinations are the service's instances
// whose health checks pass, watched with blocking queries, so that N routers
// behind a load balancer share one view and compute the same ring.
//
// A destination is "<address>:<port>[:<instance>]": the service address (or
// the node's when the service has none), the service port, and the instance
// from the service meta key consul_instance_meta (default "instance") or a
// tag "instance=<name>". The list is sorted by instance, address and port,
// so every router orders the ring alike.
package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/registry"
)

// Keys are the configuration of a distributor that takes its destinations
// from a Consul service. Distributors embed them, so the keys sit in their
// table, and so implement registry.DiscoverySource:
//
//	consul_service = "carbon-cache"   # take destinations from this Consul service (healthy instances)
//	consul_address = "127.0.0.1:8500" # default $CONSUL_HTTP_ADDR, else 127.0.0.1:8500
//	consul_tag = ""                   # only instances with this tag
//	consul_instance_meta = "instance" # service meta key holding the carbon instance
//	consul_token = ""                 # ACL token; default $CONSUL_HTTP_TOKEN
type Keys struct {
	ConsulService      string `toml:"consul_service"`
	ConsulAddress      string `toml:"consul_address"`
	ConsulTag          string `toml:"consul_tag"`
	ConsulInstanceMeta string `toml:"consul_instance_meta"`
	ConsulToken        string `toml:"consul_token"`
}

// Service returns consul_service ("" = no catalog).
func (k *Keys) Service() string { return k.ConsulService }

// Discoverer makes the catalog of the service; it opens nothing.
func (k *Keys) Discoverer(env registry.Env) (registry.Discoverer, error) { return New(*k, env) }

var _ registry.DiscoverySource = (*Keys)(nil)

// Catalog watches one Consul service.
type Catalog struct {
	cfg    Keys
	client *api.Client
	log    zerolog.Logger
}

// New makes the catalog; it opens nothing.
func New(cfg Keys, env registry.Env) (registry.Discoverer, error) {
	if cfg.ConsulService == "" {
		return nil, errors.New("consul_service: required")
	}
	if cfg.ConsulInstanceMeta == "" {
		cfg.ConsulInstanceMeta = "instance"
	}
	c := api.DefaultConfig()
	if cfg.ConsulAddress != "" {
		c.Address = cfg.ConsulAddress
	} else if a := os.Getenv("CONSUL_HTTP_ADDR"); a != "" {
		c.Address = a
	}
	if cfg.ConsulToken != "" {
		c.Token = cfg.ConsulToken
	}
	c.WaitTime = 5 * time.Minute
	client, err := api.NewClient(c)
	if err != nil {
		return nil, fmt.Errorf("consul_address %q: %w", c.Address, err)
	}
	return &Catalog{cfg: cfg, client: client, log: env.Log}, nil
}

// Lookup returns the healthy instances now.
func (c *Catalog) Lookup(ctx context.Context) ([]string, error) {
	d, _, err := c.query(ctx, 0)
	return d, err
}

func (c *Catalog) query(ctx context.Context, index uint64) ([]string, uint64, error) {
	q := (&api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Minute}).WithContext(ctx)
	entries, meta, err := c.client.Health().Service(c.cfg.ConsulService, c.cfg.ConsulTag, true, q)
	if err != nil {
		return nil, 0, err
	}
	type dest struct {
		inst, addr string
		port       int
	}
	var ds []dest
	for _, e := range entries {
		if e.Service == nil {
			continue
		}
		addr := e.Service.Address
		if addr == "" && e.Node != nil {
			addr = e.Node.Address
		}
		if addr == "" || e.Service.Port <= 0 {
			continue
		}
		inst := e.Service.Meta[c.cfg.ConsulInstanceMeta]
		if inst == "" {
			for _, t := range e.Service.Tags {
				if v, ok := strings.CutPrefix(t, "instance="); ok {
					inst = v
				}
			}
		}
		ds = append(ds, dest{inst, addr, e.Service.Port})
	}
	slices.SortFunc(ds, func(a, b dest) int {
		if c := strings.Compare(a.inst, b.inst); c != 0 {
			return c
		}
		if c := strings.Compare(a.addr, b.addr); c != 0 {
			return c
		}
		return a.port - b.port
	})
	out := make([]string, 0, len(ds))
	for _, d := range ds {
		s := net.JoinHostPort(d.addr, strconv.Itoa(d.port))
		if d.inst != "" {
			s += ":" + d.inst
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, meta.LastIndex, nil
}

// Watch follows the service with blocking queries and calls update with
// each answer; on errors it keeps the last list and retries with backoff.
func (c *Catalog) Watch(ctx context.Context, update func([]string)) error {
	var index uint64
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		d, idx, err := c.query(ctx, index)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn().Err(err).Str("service", c.cfg.ConsulService).Dur("retry_in_ms", backoff).Msg("consul catalog: query failed, keeping the last destinations")
			index = 0
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = 500 * time.Millisecond
		if idx < index {
			idx = 0 // the index went backwards (Consul restarted): start over
		}
		index = idx
		update(d)
		if index == 0 {
			select { // never spin on index 0
			case <-time.After(time.Second):
			case <-ctx.Done():
			}
		}
	}
	return nil
}

var _ registry.Discoverer = (*Catalog)(nil)
