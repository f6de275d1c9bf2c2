package registry_test

import (
	"context"
	"testing"

	"github.com/metricsrouter/router/registry"
)

type otherKey struct{}

// lookalikeKey is another package's zero-size key, as registry's own is.
type lookalikeKey struct{}

func TestPeer(t *testing.T) {
	base := context.Background()
	if got := registry.PeerFrom(base); got != "" {
		t.Fatalf("PeerFrom(no peer) = %q, want \"\"", got)
	}
	ctx := registry.WithPeer(base, "127.0.0.1")
	ctx = context.WithValue(ctx, otherKey{}, "x") // other values do not hide it
	if got := registry.PeerFrom(ctx); got != "127.0.0.1" {
		t.Fatalf("PeerFrom = %q, want 127.0.0.1", got)
	}
	if got := registry.PeerFrom(registry.WithPeer(ctx, "::1")); got != "::1" {
		t.Fatalf("PeerFrom(inner) = %q, want ::1", got)
	}
	// another package's string value under an equal-looking key is not a peer
	if got := registry.PeerFrom(context.WithValue(base, lookalikeKey{}, "10.0.0.1")); got != "" {
		t.Fatalf("PeerFrom(foreign key) = %q, want \"\"", got)
	}
	if n := testing.AllocsPerRun(100, func() {
		if registry.PeerFrom(ctx) == "" {
			t.Fatal("lost")
		}
	}); n != 0 {
		t.Fatalf("PeerFrom: %v allocations, want 0", n)
	}
}

func BenchmarkPeerFrom(b *testing.B) {
	ctx := context.WithValue(registry.WithPeer(context.Background(), "127.0.0.1"), otherKey{}, 1)
	b.ReportAllocs()
	for b.Loop() {
		if registry.PeerFrom(ctx) == "" {
			b.Fatal("lost")
		}
	}
}
