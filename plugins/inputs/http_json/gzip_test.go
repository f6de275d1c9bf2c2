package http_json

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/metricsrouter/router/plugins/plugintest"
)

func gz(s string) string {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

// TestGzipBody: a body with Content-Encoding: gzip (what outputs.http_json
// sends with gzip = true) is read decompressed; max_body_bytes holds for the
// decompressed body, so a gzip bomb is refused (413, counted) after that
// many bytes; a broken gzip body is a 400 and another encoding a 415.
func TestGzipBody(t *testing.T) {
	s := start(t, func(h *HTTPJSON) { h.MaxBodyBytes = 64 << 10 })
	batch := `[{"type":"count","key":"z.c","value":2,"tags":"env=prod"},{"type":"gauge","key":"z.g","value":7}]`
	if r := do(t, nil, s.base, req{path: "/batch", ctype: jsonT, body: gz(batch), header: map[string]string{"Content-Encoding": "gzip"}}); r.status != http.StatusOK {
		t.Fatalf("gzipped batch: %d %s", r.status, r.body)
	}
	if !s.cap.WaitFor(2, 5*time.Second) {
		t.Fatal("the gzipped batch's metrics did not arrive")
	}
	if got, want := lines(s.cap), []string{"z.c:2|c|#env:prod", "z.g:7|g"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, c := range []struct {
		name, body, enc string
		status          int
	}{
		{"bomb", string(plugintest.GzipBomb(4)), "gzip", http.StatusRequestEntityTooLarge},
		{"not gzip", batch, "gzip", http.StatusBadRequest},
		{"deflate", batch, "deflate", http.StatusUnsupportedMediaType},
	} {
		if r := do(t, nil, s.base, req{path: "/batch", ctype: jsonT, body: c.body, header: map[string]string{"Content-Encoding": c.enc}}); r.status != c.status {
			t.Errorf("%s: status %d, want %d (%s)", c.name, r.status, c.status, r.body)
		}
	}
	if n := s.m.Get("body_too_large_total"); n != 1 {
		t.Errorf("body_too_large_total = %d, want 1", n)
	}
}
