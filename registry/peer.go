package registry

import "context"

// peerKey is the context key of the sender's address; a zero-size key
// makes ctx.Value(peerKey{}) free of allocation.
type peerKey struct{}

// WithPeer returns ctx carrying addr, the address of the sender a batch came
// from, as carbon-c-relay writes it in front of each line of a `file ip`
// cluster: "127.0.0.1", "::1", "(unknown)" for a unix socket. An input calls
// it once per connection (or per source address) and passes the result to
// Emitter.Emit; it allocates, so never per batch.
func WithPeer(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, peerKey{}, addr)
}

// PeerFrom returns the sender's address ctx carries (see WithPeer), or ""
// when it carries none: the router's own metrics, and inputs that cannot
// name one sender per batch. carbon-c-relay writes "" for its own metrics
// too, so "<peer> <line>" is then " <line>". PeerFrom does not allocate.
func PeerFrom(ctx context.Context) string {
	s, _ := ctx.Value(peerKey{}).(string)
	return s
}

// PeerPrefixer is implemented by outputs that may want each line prefixed
// with the sender's address (outputs.file with ip = true, carbon-c-relay's
// `file ip` cluster). When PrefixPeer reports true, the agent rewrites
// every metric queued for the output as "<peer> <line>", peer being
// PeerFrom of the context the batch was emitted with, so the output itself
// writes each metric's line unchanged.
type PeerPrefixer interface {
	PrefixPeer() bool
}
