package linein

import "github.com/metricsrouter/router/plugins/metric"

// StreamFramer frames the bytes of one TCP connection into batches: Framer
// frames lines; Config.NewFramer supplies another framing (pickle messages,
// plugins/codec/pickle). It is used by one goroutine.
type StreamFramer interface {
	// Space returns a slice to read into, with at least min free bytes.
	Space(min int) []byte
	// Advance frames the n bytes just read into Space's slice and returns
	// the batch of complete, well-formed metrics (possibly empty).
	Advance(n int) metric.Batch
	// Final frames what is left at the end of the stream.
	Final() metric.Batch
	// DropPartial discards an incomplete last unit (line, message),
	// counting it as truncated.
	DropPartial()
	// Pending returns a copy of the bytes read but not yet framed, and the
	// framer's state, for a server that hands the stream over: the next
	// framer of the same kind goes on with Resume(state).
	Pending() (tail []byte, state any)
	// Resume makes a new framer go on from the state Pending returned.
	Resume(state any)
}

var _ StreamFramer = (*Framer)(nil)
