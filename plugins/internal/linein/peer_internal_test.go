package linein

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/metricsrouter/router/registry"
)

// TestPeerText: the address text of carbon-c-relay's `file ip` (glibc
// inet_ntop into a 24-byte buffer; "(unknown)" over a stream, "" for a
// datagram when it does not fit or is no IP).
func TestPeerText(t *testing.T) {
	for _, tc := range []struct {
		in         string
		conn, gram string
	}{
		{"127.0.0.1", "127.0.0.1", "127.0.0.1"},
		{"::ffff:10.1.2.3", "10.1.2.3", "10.1.2.3"}, // IPv4 on a dual-stack socket
		{"::1", "::1", "::1"},
		{"::", "::", "::"},
		{"fe80::1%lo", "fe80::1", "fe80::1"}, // no zone
		{"2001:db8::8:800:200c", "2001:db8::8:800:200c", "2001:db8::8:800:200c"},
		{"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1", "2001:db8::1:0:0:1"}, // the first longest zero run
		{"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},
		{"::102:304", "::1.2.3.4", "::1.2.3.4"}, // IPv4-compatible: dotted, as glibc writes it
		{"::0.0.0.2", "::2", "::2"},
		{"::ffff:0:102:304", "::ffff:0:102:304", "::ffff:0:102:304"},
		{"fd12:3456:789a:bcde::12", "fd12:3456:789a:bcde::12", "fd12:3456:789a:bcde::12"}, // 23 bytes: fits
		{"fd12:3456:789a:bcde::123", unknownPeer, ""},                                     // 24: does not
		{"2001:db8:1234:5678:9abc:def0:1234:5678", unknownPeer, ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			ip := netip.MustParseAddr(tc.in)
			addr := &net.TCPAddr{IP: net.IP(ip.AsSlice()), Zone: ip.Zone()}
			if ip.Is4() {
				addr.IP = net.IP(ip.AsSlice()).To16() // as the kernel gives it on a dual-stack socket
			}
			if got := connPeer(addr); got != tc.conn {
				t.Errorf("connPeer = %q, want %q", got, tc.conn)
			}
			if got := datagramPeer(ip); got != tc.gram {
				t.Errorf("datagramPeer = %q, want %q", got, tc.gram)
			}
		})
	}
	if got := connPeer(&net.UnixAddr{Name: "/run/router.sock", Net: "unix"}); got != unknownPeer {
		t.Errorf("unix socket: %q, want %q", got, unknownPeer)
	}
	if got := connPeer(&net.UnixAddr{Name: "", Net: "unix"}); got != unknownPeer {
		t.Errorf("unnamed unix socket: %q, want %q", got, unknownPeer)
	}
	if got := connPeer(nil); got != unknownPeer {
		t.Errorf("nil: %q, want %q", got, unknownPeer)
	}
	if got := datagramPeer(netip.Addr{}); got != "" {
		t.Errorf("invalid: %q, want \"\"", got)
	}
}

// TestUDPPeersCache: one context per source address, reused; the cache
// is bounded.
func TestUDPPeersCache(t *testing.T) {
	base := context.Background()
	p := newUDPPeers(base)
	a, b := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::ffff:127.0.0.2")
	ca := p.ctx(a)
	cb := p.ctx(b)
	if registry.PeerFrom(ca) != "127.0.0.1" || registry.PeerFrom(cb) != "127.0.0.2" {
		t.Fatalf("peers %q, %q", registry.PeerFrom(ca), registry.PeerFrom(cb))
	}
	// the last sender, then one from the map
	for i, want := range []struct {
		ip  netip.Addr
		ctx context.Context
	}{{b, cb}, {a, ca}, {a, ca}, {b, cb}} {
		if p.ctx(want.ip) != want.ctx {
			t.Fatalf("datagram %d: sender %s got a new context", i, want.ip)
		}
	}
	if n := testing.AllocsPerRun(100, func() {
		p.ctx(a)
		p.ctx(b)
	}); n != 0 {
		t.Fatalf("%v allocations per known datagram, want 0", n)
	}
	for i := range maxUDPPeers + 10 {
		ip := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		if got := registry.PeerFrom(p.ctx(ip)); got != ip.String() {
			t.Fatalf("peer %q, want %q", got, ip)
		}
		if len(p.m) > maxUDPPeers {
			t.Fatalf("%d senders cached, bound %d", len(p.m), maxUDPPeers)
		}
	}
}

func BenchmarkUDPPeers(b *testing.B) {
	p := newUDPPeers(context.Background())
	srcs := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("::1")}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if registry.PeerFrom(p.ctx(srcs[i%len(srcs)])) == "" {
			b.Fatal("no peer")
		}
		i++
	}
}
