package httpout

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"
)

func TestEncodeRoundTrip(t *testing.T) {
	e, err := New(gzip.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range [][]byte{[]byte("a.b 1 1700000000\n"), bytes.Repeat([]byte("x"), 100000), {}} {
		z, err := e.Encode(body)
		if err != nil {
			t.Fatal(err)
		}
		r, err := gzip.NewReader(bytes.NewReader(z))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("round trip of %d bytes: got %d bytes, %v", len(body), len(got), err)
		}
	}
	if _, err := New(42); err == nil {
		t.Fatal("level 42 accepted")
	}
}

func TestReadSome(t *testing.T) {
	body := append(bytes.Repeat([]byte("x"), 600), '\n')
	rc := &closer{Reader: bytes.NewReader(append([]byte("  "), body...))}
	got := ReadSome(rc)
	if len(got) != 510 || !rc.closed {
		t.Fatalf("ReadSome: %d bytes, closed %v; want the first 512 bytes trimmed (510) and the body closed", len(got), rc.closed)
	}
}

type closer struct {
	io.Reader
	closed bool
}

func (c *closer) Close() error { c.closed = true; return nil }
