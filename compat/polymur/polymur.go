// Package polymur emulates the command lines of Polymur's daemons, so that
// an existing systemd unit or container keeps working with only the binary
// swapped:
//
//	router polymur-proxy -gateway https://gw:443 -api-key KEY [-workers 3 ...]
//	router polymur-gateway -destinations 10.0.0.1:2003,10.0.0.2:2003 [-key-prefix ...]
//
// Flags can also come from the environment, as with the originals (envy):
// POLYMUR_PROXY_<FLAG> and POLYMUR_GW_<FLAG>, the flag upper-cased with '-'
// as '_'. The equivalent configuration is built in memory and run as
// `router -config` would; -print-config prints it instead, to move to a
// file. The commands register with registry.AddCommand; plugins/all
// imports this package.
package polymur

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/registry"
)

func init() {
	registry.AddCommand(registry.Command{Name: "polymur-proxy", Summary: "run with polymur-proxy's flags (-print-config shows the TOML)", Run: legacyProxy})
	registry.AddCommand(registry.Command{Name: "polymur-gateway", Summary: "run with polymur-gateway's flags (-print-config shows the TOML)", Run: legacyGateway})
}

// envDefaults sets every flag not given on the command line from
// PREFIX_<FLAG> in the environment; fs.Visit then visits the flags given
// either way.
func envDefaults(fs *flag.FlagSet, prefix string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		name := prefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if e := fs.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	})
	return err
}

func legacyProxy(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("router polymur-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	apiKey := fs.String("api-key", "", "API key for the gateway")
	gateway := fs.String("gateway", "", "gateway base URL (e.g. https://gw:443)")
	cert := fs.String("cert", "", "PEM CA certificate to trust for the gateway")
	listen := fs.String("listen-addr", "0.0.0.0:2003", "Graphite listen address")
	queueCap := fs.Int("queue-cap", 32768, "queue capacity in batches (x 5000 lines)")
	workers := fs.Int("workers", 0, "concurrent POSTs (default: 4 per CPU, 4..16; the original's was 3)")
	console := fs.Bool("console-out", false, "also print metrics")
	flush := fs.Int("metrics-flush", 0, "self-metrics interval in seconds (0 = off)")
	statAddr := fs.String("stat-addr", "localhost:2020", "runstats address")
	fs.Bool("verbose", true, "accepted for compatibility")
	printCfg := fs.Bool("print-config", false, "print the equivalent TOML and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := envDefaults(fs, "POLYMUR_PROXY_"); err != nil {
		fmt.Fprintln(stderr, "router polymur-proxy:", err)
		return 2
	}
	if *gateway == "" || *apiKey == "" {
		fmt.Fprintln(stderr, "router polymur-proxy: -gateway and -api-key are required")
		return 2
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# polymur-proxy %s\n[agent]\n  runstats_addr = %q\n", strings.Join(redact(args), " "), *statAddr)
	if *flush > 0 {
		fmt.Fprintf(&b, "  metrics_flush = \"%ds\"\n  metrics_prefix = \"{host}.polymur\"\n", *flush)
	}
	fmt.Fprintf(&b, "\n[[inputs.graphite]]\n  listen = %q\n\n[[outputs.https_batch]]\n  id = \"gateway\"\n  url = %q\n  api_key = %q\n  batch_size = 5000\n  flush_interval = \"1s\"\n  buffer_limit = %d\n  overflow = \"block\"\n",
		*listen, *gateway, *apiKey, max(*queueCap, 1)*5000)
	if *workers != 0 {
		fmt.Fprintf(&b, "  workers = %d\n", *workers)
	}
	if *cert != "" {
		fmt.Fprintf(&b, "  ca_cert = %q\n", *cert)
	}
	if *console {
		b.WriteString("\n[[outputs.console]]\n")
	}
	return runGenerated(ctx, "polymur-proxy", b.String(), *printCfg, stdin, stdout, stderr)
}

// defOutgoingCap is each destination's buffer_limit when
// -outgoing-queue-cap is not given, larger than the original's 4096: a
// batch is acknowledged once it is in these queues, which are the only
// ones the gateway has (-incoming-queue-cap has no counterpart), so they
// hold what the original's incoming queue held as well.
const defOutgoingCap = 100000

func legacyGateway(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("router polymur-gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen-addr", "0.0.0.0", "listen host")
	httpPort := fs.Int("listen-http-port", 80, "HTTP port")
	httpsPort := fs.Int("listen-https-port", 443, "HTTPS port (used with -cert and -key)")
	cert := fs.String("cert", "", "TLS certificate")
	key := fs.String("key", "", "TLS key")
	dests := fs.String("destinations", "", "ip:port[:instance],...")
	dist := fs.String("distribution", "broadcast", "broadcast or hash-route")
	inCap := fs.Int("incoming-queue-cap", 32768, "accepted for compatibility (batches are acknowledged once queued)")
	outCap := fs.Int("outgoing-queue-cap", 0, fmt.Sprintf("per-destination queue in data points: buffer_limit of the destinations (when not given: %d, not the original's 4096)", defOutgoingCap))
	keyPrefix := fs.Bool("key-prefix", false, "prefix metrics with the key name")
	dev := fs.Bool("dev-mode", false, "no Consul: the single key 123")
	apiAddr := fs.String("api-addr", "localhost:2030", "destination API address")
	statAddr := fs.String("stat-addr", "localhost:2020", "runstats address")
	flush := fs.Int("metrics-flush", 0, "self-metrics interval in seconds (0 = off)")
	console := fs.Bool("console-out", false, "also print metrics")
	printCfg := fs.Bool("print-config", false, "print the equivalent TOML and exit")
	_ = inCap
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := envDefaults(fs, "POLYMUR_GW_"); err != nil {
		fmt.Fprintln(stderr, "router polymur-gateway:", err)
		return 2
	}
	bufferLimit, capNote := defOutgoingCap, "  # -outgoing-queue-cap not given (the original's default: 4096)"
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "outgoing-queue-cap" {
			bufferLimit, capNote = *outCap, "  # -outgoing-queue-cap"
		}
	})
	if bufferLimit < 1 {
		fmt.Fprintf(stderr, "router polymur-gateway: -outgoing-queue-cap %d: want at least 1\n", bufferLimit)
		return 2
	}
	var list []string
	for _, d := range strings.Split(*dests, ",") {
		if d = strings.TrimSpace(d); d != "" {
			list = append(list, strconv.Quote(d))
		}
	}
	if len(list) == 0 && !*console {
		fmt.Fprintln(stderr, "router polymur-gateway: -destinations is required")
		return 2
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# polymur-gateway %s\n[agent]\n  runstats_addr = %q\n  api_addr = %q\n", strings.Join(redact(args), " "), *statAddr, *apiAddr)
	if *flush > 0 {
		fmt.Fprintf(&b, "  metrics_flush = \"%ds\"\n  metrics_prefix = \"{host}.polymur\"\n", *flush)
	}
	fmt.Fprintf(&b, "\n[[inputs.https_batch]]\n  listen = %q\n", hostPort(*listen, *httpPort))
	if *cert != "" && *key != "" {
		fmt.Fprintf(&b, "  tls_listen = %q\n  tls_cert = %q\n  tls_key = %q\n", hostPort(*listen, *httpsPort), *cert, *key)
	}
	fmt.Fprintf(&b, "  key_prefix = %t\n  [inputs.https_batch.keystore]\n", *keyPrefix)
	if *dev {
		b.WriteString("    type = \"static\"\n    dev_mode = true\n")
	} else {
		b.WriteString("    type = \"consul\"\n")
	}
	if len(list) > 0 {
		kind := "broadcast"
		extra := ""
		if *dist == "hash-route" {
			// Polymur's hash-route is carbon_ch without the collision fix
			kind, extra = "consistent_hash", "  hash = \"carbon_ch\"\n  collision = \"first\"\n"
		} else if *dist != "broadcast" {
			fmt.Fprintf(stderr, "router polymur-gateway: -distribution %q: want broadcast or hash-route\n", *dist)
			return 2
		}
		fmt.Fprintf(&b, "\n[[outputs.%s]]\n  id = \"destinations\"\n%s  protocol = \"graphite\"\n  destinations = [%s]\n  buffer_limit = %d%s\n",
			kind, extra, strings.Join(list, ", "), bufferLimit, capNote)
	}
	if *console {
		b.WriteString("\n[[outputs.console]]\n")
	}
	return runGenerated(ctx, "polymur-gateway", b.String(), *printCfg, stdin, stdout, stderr)
}

func hostPort(host string, port int) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(port)
}

// redact hides the API key in the comment of a generated configuration.
func redact(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if i > 0 && strings.TrimLeft(args[i-1], "-") == "api-key" {
			out[i] = "..."
		}
		if k, _, ok := strings.Cut(strings.TrimLeft(a, "-"), "="); ok && k == "api-key" {
			out[i] = "-api-key=..."
		}
	}
	return out
}

// runGenerated runs (or prints) a configuration built from legacy flags.
func runGenerated(ctx context.Context, name, text string, print bool, stdin io.Reader, stdout, stderr io.Writer) int {
	if print {
		fmt.Fprint(stdout, text)
		return 0
	}
	f, err := os.CreateTemp("", "router-"+name+"-*.toml")
	if err != nil {
		fmt.Fprintln(stderr, "router:", err)
		return 1
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(text); err != nil {
		fmt.Fprintln(stderr, "router:", err)
		return 1
	}
	f.Close()
	_ = os.Chmod(f.Name(), 0o600)
	return agent.RunWith(ctx, registry.Default, []string{"-config", f.Name()}, stdin, stdout, stderr)
}
