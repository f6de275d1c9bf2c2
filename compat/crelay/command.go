// Package crelay reads carbon-c-relay's configuration language and converts
// it to router TOML:
//
//	router convert carbon-c-relay [-H HOST] [-p PORT] [-c CHARS] [-m N] [-M N] [-s] [-C CA] [-dir DIR] FILE.conf
//
// The parser accepts exactly what carbon-c-relay 3.7.3 accepts: its scanner
// (start conditions, keywords, quoting, comments), its grammar, and the
// checks it makes while reading (regular expressions as glibc compiles
// them, addresses, ports, replication, known clusters, shared servers,
// duplicate listeners, statistics), except those that depend on the
// machine it runs on: whether host names resolve (two names of one address
// count as two) and whether file paths can be written. include statements
// are read in place, globs as glibc expands them, relative paths from the
// directory carbon-c-relay runs in (-dir, default the current one).
//
// What the router cannot express is reported with its file and line and
// exit status 2, and nothing is printed; a configuration carbon-c-relay
// refuses (or accepts and then crashes on) gives exit status 1. The TOML is
// checked against the router's own loader before it is printed. What the
// configuration file cannot tell (the CA of -C when it is not given) is
// left as a TOML comment to fill in and a warning on standard error.
package crelay

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
	registry.AddConverter("carbon-c-relay", "[-H HOST] [-p PORT] [-c CHARS] [-m N] [-M N] [-s] [-C CA] [-dir DIR] FILE.conf", func(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
		return Run(registry.Default, args, stdout, stderr)
	})
}

const usage = `usage: router convert carbon-c-relay [options] FILE.conf

Prints the router configuration equivalent to a carbon-c-relay (3.7)
configuration file and the files it includes. The options are
carbon-c-relay's own that change what the configuration means:

  -H HOST   carbon-c-relay's -H: the host name of the statistics prefix, which
            is then written out (default: {host}, the router's short host name)
  -p PORT   carbon-c-relay's -p: the port of the default listeners (2003)
  -c CHARS  carbon-c-relay's -c: characters allowed in names besides [A-Za-z0-9]
  -m N      carbon-c-relay's -m: the longest metric name
  -M N      carbon-c-relay's -M: the longest input line
  -s        carbon-c-relay's -s: submission mode, no statistics
  -C CA     carbon-c-relay's -C: the CA file that verifies the servers of
            members with ssl (tls_ca); without it each such output gets a
            tls_ca comment to fill in and a warning
  -dir DIR  the directory carbon-c-relay runs in: relative include paths are
            read from there (default: the current directory)

Exit status: 0 converted; 1 carbon-c-relay would refuse the configuration
(or crash on it); 2 it uses what the router cannot express yet (each is
listed with its file and line) or a usage error. Warnings (what to fill
in) go to standard error with exit status 0.
`

// Run is `router convert carbon-c-relay args...`; the TOML is checked
// against the plugins of reg before it is printed.
func Run(reg *registry.Registry, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("router convert carbon-c-relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	host := fs.String("H", "", "")
	port := fs.Int("p", 0, "")
	chars := fs.String("c", "", "")
	maxMetric := fs.Int("m", 0, "")
	maxInput := fs.Int("M", 0, "")
	submission := fs.Bool("s", false, "")
	ca := fs.String("C", "", "")
	dir := fs.String("dir", "", "")
	if code, ok := registry.ParseConverterArgs(fs, args); !ok {
		return code
	}
	if *port < 0 || *port > 65535 {
		fmt.Fprintf(stderr, "router convert carbon-c-relay: -p %d: want a port\n", *port)
		return 2
	}
	if fi, err := os.Stat(*ca); err == nil && fi.IsDir() {
		fmt.Fprintf(stderr, "router convert carbon-c-relay: -C %s: a directory of CA certificates is not supported by router (tls_ca names a file)\n", *ca)
		return 2
	}
	file := fs.Arg(0)
	opt := ConvertOptions{Hostname: *host, Submission: *submission, CA: *ca, Command: "router convert carbon-c-relay " + strings.Join(args, " ")}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "c":
			opt.AllowedChars = chars
		case "m":
			opt.MaxMetricLength = maxMetric
		case "M":
			opt.MaxInputLength = maxInput
		}
	})
	cfg, err := Parse(file, Options{Dir: *dir, Port: *port})
	if err != nil {
		fmt.Fprintf(stderr, "router convert: %v\n", err)
		return 1
	}
	out, errs := Convert(cfg, opt)
	if len(errs) == 0 {
		errs = Check(reg, cfg, out)
	}
	if len(errs) > 0 {
		return registry.ReportConvertErrors(stderr, errs)
	}
	_, _ = io.WriteString(stdout, out.TOML)
	for _, w := range out.Warnings {
		fmt.Fprintf(stderr, "router convert: warning: %s\n", w)
	}
	return 0
}

// Check loads the converted configuration as `router -check` does (the
// loader, then every plugin's Init) with the plugins of reg, and returns
// the router's complaints as Unsupported errors at the carbon-c-relay
// construct they come from.
func Check(reg *registry.Registry, cfg *Config, out *Output) []*Error {
	msg, n := agent.CheckConverted(reg, out.TOML)
	if msg == "" {
		return nil
	}
	at := Pos{File: cfg.File}
	if n >= 1 && n <= len(out.Origin) && out.Origin[n-1].File != "" {
		at = out.Origin[n-1]
	} else if n == 0 {
		for _, c := range cfg.Clusters {
			if strings.Contains(msg, strconv.Quote(c.Name)) {
				at = c.Pos
				break
			}
		}
	}
	return []*Error{{Pos: at, Msg: "the router refuses the converted configuration: " + msg, Unsupported: true}}
}
