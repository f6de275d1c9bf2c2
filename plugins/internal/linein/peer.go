package linein

import (
	"context"
	"net"
	"net/netip"

	"github.com/metricsrouter/router/registry"
)

// The sender's address as carbon-c-relay writes it in front of each line of
// a `file ip` cluster (registry.WithPeer): inet_ntop(3) of the peer's IP
// into a 24-byte buffer. Its IPv6 listeners are IPv6-only, so an IPv4
// sender is always plain IPv4 (here: unmapped from a dual-stack socket);
// no zone is written. What does not fit the buffer, or is no IP (a unix
// socket), is "(unknown)" for a stream connection and "" for a datagram.
const (
	unknownPeer = "(unknown)"
	peerMax     = 23 // bytes of the address text, without the NUL
)

// connPeer is the sender's address of a stream connection.
func connPeer(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			if s := ipText(ip); len(s) <= peerMax {
				return s
			}
		}
	}
	return unknownPeer
}

// datagramPeer is the sender's address of a datagram.
func datagramPeer(ip netip.Addr) string {
	if s := ipText(ip); ip.IsValid() && len(s) <= peerMax {
		return s
	}
	return ""
}

// ipText is ip as glibc's inet_ntop writes it: Go's text, except that an
// IPv4-compatible address (96 zero bits, then not 0.0.0.x) ends in dotted
// quad, "::1.2.3.4".
func ipText(ip netip.Addr) string {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		b := ip.As16()
		if [12]byte(b[:12]) == [12]byte{} && b[12]|b[13] != 0 {
			return "::" + netip.AddrFrom4([4]byte(b[12:])).String()
		}
	}
	return ip.String()
}

// maxUDPPeers bounds udpPeers: past it (many senders, or spoofed source
// addresses) the cache starts afresh.
const maxUDPPeers = 4096

// udpPeers gives each datagram the context that names its sender, made
// once per source address: a datagram from a known sender costs a
// comparison or a map lookup, no allocation.
type udpPeers struct {
	base    context.Context
	last    netip.Addr
	lastCtx context.Context
	m       map[netip.Addr]context.Context
}

func newUDPPeers(base context.Context) *udpPeers {
	return &udpPeers{base: base, m: map[netip.Addr]context.Context{}}
}

// ctx returns the context of datagrams from ip.
func (p *udpPeers) ctx(ip netip.Addr) context.Context {
	if p.lastCtx != nil && ip == p.last {
		return p.lastCtx
	}
	c, ok := p.m[ip]
	if !ok {
		if len(p.m) >= maxUDPPeers {
			clear(p.m)
		}
		c = registry.WithPeer(p.base, datagramPeer(ip))
		p.m[ip] = c
	}
	p.last, p.lastCtx = ip, c
	return c
}
