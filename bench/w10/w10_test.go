package main

import (
	"bytes"
	"hash/maphash"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// The stream holds rounds x series lines over exactly series distinct paths,
// series/20 per rule, each with three components for the rule's captures.
func TestStreamSeries(t *testing.T) {
	var buf bytes.Buffer
	n, err := writeStream(&buf, 2000, 3, 1700000000)
	if err != nil || n != 6000 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 6000 {
		t.Fatalf("%d lines", len(lines))
	}
	paths := map[string]bool{}
	perRule := map[string]int{}
	for _, l := range lines[:2000] {
		f := strings.Fields(l)
		if len(f) != 3 || f[2] != "1700000000" {
			t.Fatalf("line %q", l)
		}
		parts := strings.Split(f[0], ".")
		if len(parts) != 5 || parts[0] != "w10" {
			t.Fatalf("path %q", f[0])
		}
		paths[f[0]] = true
		perRule[parts[1]]++
	}
	if len(paths) != 2000 || len(perRule) != rules {
		t.Fatalf("%d paths, %d rules", len(paths), len(perRule))
	}
	for r, c := range perRule {
		if c != 2000/rules {
			t.Fatalf("rule %s: %d series", r, c)
		}
	}
	if !strings.HasSuffix(lines[5999], " 1700000002") {
		t.Fatalf("last line %q", lines[5999])
	}
}

func TestMappingFile(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.yaml")
	mapping([]string{"-out", out})
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if strings.Count(s, "  - match: ") != rules || strings.Count(s, "match_type: regex") != 4 || strings.Count(s, "rule: r") != rules {
		t.Fatalf("mapping file:\n%s", s)
	}
}

func label(name, value string) []byte {
	var l []byte
	l = protowire.AppendTag(l, 1, protowire.BytesType)
	l = protowire.AppendString(l, name)
	l = protowire.AppendTag(l, 2, protowire.BytesType)
	l = protowire.AppendString(l, value)
	return l
}

func series(samples int, labels ...[]byte) []byte {
	var ts []byte
	for _, l := range labels {
		ts = protowire.AppendTag(ts, 1, protowire.BytesType)
		ts = protowire.AppendBytes(ts, l)
	}
	for i := range samples {
		var s []byte
		s = protowire.AppendTag(s, 1, protowire.Fixed64Type)
		s = protowire.AppendFixed64(s, uint64(i))
		s = protowire.AppendTag(s, 2, protowire.VarintType)
		s = protowire.AppendVarint(s, 1700000000000)
		ts = protowire.AppendTag(ts, 2, protowire.BytesType)
		ts = protowire.AppendBytes(ts, s)
	}
	return ts
}

// The sink decodes snappy + protobuf requests, counts samples, distinct
// series and samples of series without the rule label, and refuses garbage.
func TestSinkCounts(t *testing.T) {
	c := &counter{series: map[uint64]struct{}{}, seed: maphash.MakeSeed()}
	srv := httptest.NewServer(c)
	defer srv.Close()
	post := func(body []byte) int {
		resp, err := http.Post(srv.URL+"/api/v1/write", "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var req []byte
	for _, ts := range [][]byte{
		series(2, label("__name__", "w10_r0_m0"), label("rule", "r0")),
		series(3, label("__name__", "w10_r0_m1"), label("rule", "r0")),
		series(1, label("__name__", "w10_r0_host0")),
	} {
		req = protowire.AppendTag(req, 1, protowire.BytesType)
		req = protowire.AppendBytes(req, ts)
	}
	if code := post(snappy.Encode(nil, req)); code != http.StatusNoContent {
		t.Fatalf("status %d", code)
	}
	if code := post(snappy.Encode(nil, req)); code != http.StatusNoContent { // same series again
		t.Fatalf("status %d", code)
	}
	if code := post([]byte("not snappy")); code != http.StatusBadRequest {
		t.Fatalf("garbage: status %d", code)
	}
	samples, nseries, bad, unmapped, err := sinkCounts(srv.URL)
	if err != nil || samples != 12 || nseries != 3 || bad != 1 || unmapped != 2 {
		t.Fatalf("samples=%d series=%d bad=%d unmapped=%d err=%v", samples, nseries, bad, unmapped, err)
	}
}
