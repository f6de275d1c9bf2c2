package registry

import (
	"context"
	"fmt"
)

// ServiceDiscovery is the configuration of a distributor that takes its
// destinations from a service catalog. Distributors embed it, so its keys
// sit in their table:
//
//	consul_service = "carbon-cache"   # take destinations from this Consul service (healthy instances)
//	consul_address = "127.0.0.1:8500" # default $CONSUL_HTTP_ADDR, else 127.0.0.1:8500
//	consul_tag = ""                   # only instances with this tag
//	consul_instance_meta = "instance" # service meta key holding the carbon instance
//	consul_token = ""                 # ACL token; default $CONSUL_HTTP_TOKEN
type ServiceDiscovery struct {
	ConsulService      string `toml:"consul_service"`
	ConsulAddress      string `toml:"consul_address"`
	ConsulTag          string `toml:"consul_tag"`
	ConsulInstanceMeta string `toml:"consul_instance_meta"`
	ConsulToken        string `toml:"consul_token"`
}

// Discovery returns the embedded configuration (so distributors implement
// DiscoverySource by embedding ServiceDiscovery).
func (s *ServiceDiscovery) Discovery() *ServiceDiscovery { return s }

// Enabled reports whether a catalog is configured.
func (s *ServiceDiscovery) Enabled() bool { return s != nil && s.ConsulService != "" }

// DiscoverySource is implemented by distributors that embed ServiceDiscovery.
type DiscoverySource interface {
	Discovery() *ServiceDiscovery
}

// Discoverer reports the destinations ("host:port[:instance]") of a
// service. Lookup answers once; Watch calls update with the full, sorted
// list whenever it may have changed, until ctx ends. Every router watching
// the same service gets the same list in the same order, so they compute
// the same ring.
type Discoverer interface {
	Lookup(ctx context.Context) ([]string, error)
	Watch(ctx context.Context, update func([]string)) error
}

// DiscovererFactory makes a Discoverer for a configuration.
type DiscovererFactory func(cfg ServiceDiscovery, env Env) (Discoverer, error)

// AddDiscoverer registers a catalog by name ("consul"); it panics on a
// duplicate.
func (r *Registry) AddDiscoverer(name string, f DiscovererFactory) {
	if r.discoverers == nil {
		r.discoverers = map[string]DiscovererFactory{}
	}
	if _, dup := r.discoverers[name]; dup || f == nil {
		panic(fmt.Sprintf("registry: discoverer %q registered twice or nil", name))
	}
	r.discoverers[name] = f
}

// LookupDiscoverer returns the catalog name.
func (r *Registry) LookupDiscoverer(name string) (DiscovererFactory, bool) {
	f, ok := r.discoverers[name]
	return f, ok
}

// AddDiscoverer registers a catalog with Default; call it only from init().
func AddDiscoverer(name string, f DiscovererFactory) { Default.AddDiscoverer(name, f) }
