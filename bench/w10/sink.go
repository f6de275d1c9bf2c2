package main

import (
	"flag"
	"fmt"
	"hash/maphash"
	"io"
	"net/http"
	"os"
	"sync"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// counter holds what the sink has decoded so far.
type counter struct {
	mu       sync.Mutex
	samples  int64
	requests int64
	bad      int64
	unmapped int64
	series   map[uint64]struct{}
	seed     maphash.Seed
}

// countRequest decodes a remote-write 1.0 WriteRequest (field 1: TimeSeries;
// in it field 1: Label, field 2: Sample) and returns its samples, the
// samples of series without a label named "rule" (the mapping file gives
// every w10 series one) and the hashes of its series' label bytes.
func countRequest(b []byte, seed maphash.Seed, hashes []uint64) (samples, unmapped int64, _ []uint64, _ error) {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, 0, nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num != 1 || typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return 0, 0, nil, protowire.ParseError(n)
			}
			b = b[n:]
			continue
		}
		ts, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, 0, nil, protowire.ParseError(n)
		}
		b = b[n:]
		var h maphash.Hash
		h.SetSeed(seed)
		n0 := samples
		mapped := false
		for len(ts) > 0 {
			fnum, ftyp, m := protowire.ConsumeTag(ts)
			if m < 0 {
				return 0, 0, nil, protowire.ParseError(m)
			}
			ts = ts[m:]
			m = protowire.ConsumeFieldValue(fnum, ftyp, ts)
			if m < 0 {
				return 0, 0, nil, protowire.ParseError(m)
			}
			switch fnum {
			case 1:
				h.Write(ts[:m])
				if name, _ := labelName(ts[:m]); name == "rule" {
					mapped = true
				}
			case 2:
				samples++
			}
			ts = ts[m:]
		}
		if !mapped {
			unmapped += samples - n0
		}
		hashes = append(hashes, h.Sum64())
	}
	return samples, unmapped, hashes, nil
}

// labelName returns field 1 of a Label message (its length-prefixed bytes).
func labelName(b []byte) (string, bool) {
	l, n := protowire.ConsumeBytes(b)
	if n < 0 {
		return "", false
	}
	for len(l) > 0 {
		num, typ, m := protowire.ConsumeTag(l)
		if m < 0 {
			return "", false
		}
		l = l[m:]
		if num == 1 && typ == protowire.BytesType {
			v, k := protowire.ConsumeBytes(l)
			return string(v), k >= 0
		}
		m = protowire.ConsumeFieldValue(num, typ, l)
		if m < 0 {
			return "", false
		}
		l = l[m:]
	}
	return "", false
}

func (c *counter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		c.mu.Lock()
		fmt.Fprintf(w, "%d %d %d %d %d\n", c.samples, len(c.series), c.requests, c.bad, c.unmapped)
		c.mu.Unlock()
		return
	}
	body, err := io.ReadAll(r.Body)
	var raw []byte
	if err == nil {
		raw, err = snappy.Decode(nil, body)
	}
	var n, unmapped int64
	var hashes []uint64
	if err == nil {
		n, unmapped, hashes, err = countRequest(raw, c.seed, nil)
	}
	c.mu.Lock()
	c.requests++
	if err != nil {
		c.bad++
	} else {
		c.samples += n
		c.unmapped += unmapped
		for _, h := range hashes {
			c.series[h] = struct{}{}
		}
	}
	c.mu.Unlock()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// sink serves POST /api/v1/write (any path) and GET (any path): "samples
// series requests bad_requests unmapped_samples".
func sink(args []string) {
	fs := flag.NewFlagSet("sink", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address")
	ready := fs.String("ready", "", "file to create once listening")
	fs.Parse(args)
	c := &counter{series: map[uint64]struct{}{}, seed: maphash.MakeSeed()}
	srv := &http.Server{Addr: *listen, Handler: c}
	ln, err := listenTCP(*listen)
	if err != nil {
		fatalf("%v", err)
	}
	if *ready != "" {
		os.WriteFile(*ready, []byte(ln.Addr().String()), 0o644)
	}
	fatalf("%v", srv.Serve(ln))
}
