package polymur_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/metricsrouter/router/agent"
	_ "github.com/metricsrouter/router/plugins/all"
	"github.com/metricsrouter/router/registry"
)

// run runs router ARGS (polymur-gateway's command line) and returns its
// exit status, standard output and standard error.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := agent.RunWith(context.Background(), registry.Default, args, nil, &out, &errb)
	return code, out.String(), errb.String()
}

// TestGatewayOutgoingQueueCap: -outgoing-queue-cap, given on the command
// line or as POLYMUR_GW_OUTGOING_QUEUE_CAP, is each destination's
// buffer_limit as given; not given, buffer_limit is 100000, which -h and
// the printed configuration say.
func TestGatewayOutgoingQueueCap(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  string
		args []string
		want int
	}{
		{"not given", "", nil, 100000},
		{"the original's default", "", []string{"-outgoing-queue-cap", "4096"}, 4096},
		{"above the default", "", []string{"-outgoing-queue-cap=250000"}, 250000},
		{"hash-route", "", []string{"-outgoing-queue-cap", "5000", "-distribution", "hash-route"}, 5000},
		{"environment", "777", nil, 777},
		{"flag over environment", "777", []string{"-outgoing-queue-cap", "888"}, 888},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env != "" {
				t.Setenv("POLYMUR_GW_OUTGOING_QUEUE_CAP", tc.env)
			}
			args := append([]string{"polymur-gateway", "-dev-mode", "-destinations", "10.0.0.1:2003:a,10.0.0.2:2003:b"}, tc.args...)
			code, text, errs := run(t, append(args, "-print-config")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			cfg, err := agent.ParseConfig(registry.Default, "generated.toml", text, func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatalf("generated configuration does not load: %v\n%s", err, text)
			}
			out := cfg.Outputs[0]
			if out.ID != "destinations" || len(out.Targets) != 2 {
				t.Fatalf("output %s with %d targets:\n%s", out.ID, len(out.Targets), text)
			}
			for _, tg := range out.Targets {
				if got := tg.Out.BufferLimit; got != tc.want {
					t.Errorf("destination %s: buffer_limit %d, want %d\n%s", tg.ID, got, tc.want, text)
				}
			}
			if note := "-outgoing-queue-cap not given"; strings.Contains(text, note) != (tc.args == nil && tc.env == "") {
				t.Errorf("the note %q is wrong here:\n%s", note, text)
			}
		})
	}
	t.Run("below 1", func(t *testing.T) {
		code, _, errs := run(t, "polymur-gateway", "-dev-mode", "-destinations", "10.0.0.1:2003", "-outgoing-queue-cap", "0", "-print-config")
		if code != 2 || !strings.Contains(errs, "-outgoing-queue-cap 0: want at least 1") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
	t.Run("-h", func(t *testing.T) {
		_, _, errs := run(t, "polymur-gateway", "-h")
		if !strings.Contains(errs, "when not given: 100000, not the original's 4096") {
			t.Fatalf("-h does not say what the default maps to:\n%s", errs)
		}
	})
}
