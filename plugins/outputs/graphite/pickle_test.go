package graphite

import (
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/codec/pickle"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// readPickles reads length-prefixed pickle messages from the first
// connection to ln until want lines were decoded, and returns the lines and
// how many messages carried them.
func readPickles(t *testing.T, ln net.Listener, want int) chan []string {
	t.Helper()
	got := make(chan []string, 1)
	go func() {
		var lines []string
		defer func() { got <- lines }()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(wait))
		var d pickle.Decoder
		var hdr [4]byte
		var out []byte
		for len(lines) < want {
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			msg := make([]byte, binary.BigEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(c, msg); err != nil {
				return
			}
			out, _, err = d.Decode(out[:0], msg)
			if err != nil {
				t.Errorf("message %d: %v", len(lines), err)
				return
			}
			lines = append(lines, strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")...)
			lines = append(lines, "--")
		}
	}()
	return got
}

// TestWritePickle: format = "pickle" writes carbon's pickle messages, one
// per write_buffer of datapoints; Graphite metrics keep name, value and
// timestamp, StatsD metrics get the write time, and a name carbon's
// unpickler would refuse (not UTF-8) is refused and counted.
func TestWritePickle(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	g, m := newOutput(t, ln.Addr().String(), func(g *Graphite) { g.Format = "pickle"; g.WriteBuffer = 4096 })
	connect(t, g)
	in := append(numbered("p", 1000), "statsd:hits:3|c", "bad.\xff.name 1 1700000000", "tagged;b=2;a=1 2.5 1700000001")
	got := readPickles(t, ln, len(in)-1)
	from := time.Now().Unix()
	checkRefused(t, g.Write(writeCtx(t), plugintest.Batch(t, in...)), 1)
	to := time.Now().Unix()
	g.Close()
	lines := <-got
	messages := 0
	var data []string
	for _, l := range lines {
		if l == "--" {
			messages++
		} else {
			data = append(data, l)
		}
	}
	if messages < 2 {
		t.Errorf("%d messages for %d datapoints with write_buffer 4096, want several", messages, len(data))
	}
	want := append(numbered("p", 1000), "hits 3 {now}", "tagged;b=2;a=1 2.5 1700000001")
	matchLines(t, data, want, from, to)
	if n := m.Get("conversion_refused_total"); n != 1 {
		t.Errorf("conversion_refused_total = %d, want 1", n)
	}
}
