package registry

import (
	"context"
	"net"
	"net/url"
)

// DiscoverySource is implemented by distributors whose destinations can
// come from a service catalog: they embed the catalog's keys (e.g.
// consul.Keys of plugins/discovery/consul), which implement it.
type DiscoverySource interface {
	// Service names the service the destinations come from; "" when no
	// catalog is configured.
	Service() string
	// Discoverer makes the catalog's client; it opens nothing.
	Discoverer(env Env) (Discoverer, error)
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

// URLDestination returns the host:port an HTTP output's url names, for
// Addresser.Destination (hash rings place on it, logs name it): the port of
// the URL, or its scheme's default (80, 443). It reads the URL itself, so it
// is right before Init; "" for a URL without a host.
func URLDestination(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return net.JoinHostPort(u.Hostname(), port)
}
