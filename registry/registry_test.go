package registry

import (
	"strings"
	"testing"
)

func TestAddPanics(t *testing.T) {
	f := func() any { return struct{}{} }
	cases := []struct {
		name string
		add  func(r *Registry)
	}{
		{"duplicate", func(r *Registry) { r.Add(Outputs, "x", f, ""); r.Add(Outputs, "x", f, "") }},
		{"empty name", func(r *Registry) { r.Add(Inputs, "", f, "") }},
		{"bad name", func(r *Registry) { r.Add(Inputs, "Graphite", f, "") }},
		{"nil factory", func(r *Registry) { r.Add(Inputs, "x", nil, "") }},
		{"unknown kind", func(r *Registry) { r.Add(Kind("sinks"), "x", f, "") }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			c.add(New())
		})
	}
}

func TestSameNameOtherKind(t *testing.T) {
	r := New()
	f := func() any { return struct{}{} }
	r.Add(Inputs, "graphite", f, "# in\n")
	r.Add(Outputs, "graphite", f, "# out\n")
	if _, ok := r.Lookup(Inputs, "graphite"); !ok {
		t.Fatal("input missing")
	}
	p, ok := r.Lookup(Outputs, "graphite")
	if !ok || p.Summary() != "out" {
		t.Fatalf("output: %v %q", ok, p.Summary())
	}
	if got := len(r.All()); got != 2 {
		t.Fatalf("All: %d", got)
	}
	if strings.Join(r.Names(Processors), ",") != "" {
		t.Fatal("processors not empty")
	}
}

func TestDuration(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("1m30s")); err != nil || d.D().Seconds() != 90 {
		t.Fatalf("1m30s: %v %v", d, err)
	}
	for _, bad := range []string{"2", "", "-1s", "soon"} {
		if err := d.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestURLDestination: an HTTP output's destination is the URL's host:port,
// with the scheme's default port when the URL has none.
func TestURLDestination(t *testing.T) {
	for in, want := range map[string]string{
		"http://10.0.0.1:8825/batch":           "10.0.0.1:8825",
		"https://metrics.example.com/api/v1/w": "metrics.example.com:443",
		"http://[::1]/batch":                   "[::1]:80",
		"https://[::1]:9090/x":                 "[::1]:9090",
		"/relative":                            "",
		"::bad":                                "",
	} {
		if got := URLDestination(in); got != want {
			t.Errorf("URLDestination(%q) = %q, want %q", in, got, want)
		}
	}
}
