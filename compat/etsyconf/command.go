// Package etsyconf converts an Etsy statsd configuration file (the
// JavaScript object of exampleConfig.js) to router TOML:
//
//	router convert statsd-config [-no-node] FILE
//
// The file is read as Etsy statsd 0.9.0's lib/config.js reads it, by
// evaluating it (eval('config = ' + data)): with node when node is on PATH,
// so that any JavaScript works (require('os').hostname() and the like),
// and otherwise, or with -no-node, by a parser of plain object literals
// (comments, bare and quoted keys, '...' and "..." strings with escapes,
// numbers, true, false, null, arrays, objects, trailing commas). Both give
// the object as JSON.stringify writes it, so the same file converts to the
// same TOML either way.
//
// The output is a whole configuration: an [[inputs.statsd]] per Etsy
// server (servers[], else the top-level server, address, address_ipv6 and
// port; Etsy's default is UDP on 0.0.0.0:8125), the [[aggregators.statsd]]
// with every key set to the value Etsy uses (its defaults included) and
// timer_types = ["ms"] (Etsy 0.9.0 adds "h" and "d" to counters), and the
// outputs of its backends: ./backends/graphite is [[outputs.graphite]] at
// graphiteHost:graphitePort (2003), ./backends/console [[outputs.console]];
// the graphite backend without graphiteHost, which discards every flush,
// is an [[outputs.file]] writing to /dev/null.
//
// Keys without an equivalent (the management interface, debug,
// dumpMessages, keyFlush, log, the repeater backend, automaticConfigReload,
// keyNameSanitize = false, calculatedTimerMetrics, a unix socket, the
// pickle protocol, ...) and keys Etsy does not know are reported on
// standard error by name with the reason, listed in the output's header,
// and make the exit status 2; the rest is converted and printed. A value
// Etsy statsd fails on (a port that is not one, a backends that is not an
// array) or a file that does not evaluate to an object gives exit status
// 1, nothing printed. The TOML is checked against the router's own loader
// before it is printed; what the router refuses gives exit status 2,
// nothing printed.
package etsyconf

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/registry"
)

func init() {
	registry.AddConverter("statsd-config", "[-no-node] FILE.js", func(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
		return Run(ctx, registry.Default, args, stdout, stderr)
	})
}

const usage = `usage: router convert statsd-config [-no-node] FILE.js

Prints the router configuration equivalent to an Etsy statsd (0.9)
configuration file (exampleConfig.js): an inputs.statsd per server, the
aggregators.statsd with the values Etsy uses, and outputs.graphite or
outputs.console for its backends.

The file is evaluated with node as Etsy evaluates it, when node is on PATH.

  -no-node  read the file as a plain object literal, without node

Exit status: 0 converted; 2 some keys have no equivalent or are unknown
(each is named on standard error; the rest is printed) or a usage error;
1 Etsy statsd fails on the file, or it is not an object.
`

// Run is `router convert statsd-config args...`; the TOML is checked
// against the plugins of reg before it is printed.
func Run(ctx context.Context, reg *registry.Registry, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("router convert statsd-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	noNode := fs.Bool("no-node", false, "")
	if code, ok := registry.ParseConverterArgs(fs, args); !ok {
		return code
	}
	file := fs.Arg(0)
	cfg, err := Read(ctx, file, !*noNode)
	if err != nil {
		return registry.ReportConvertErrors(stderr, []*Error{err})
	}
	s, notes, errs := Resolve(file, cfg)
	for _, e := range errs {
		if !e.Unsupported {
			return registry.ReportConvertErrors(stderr, errs)
		}
	}
	out := Convert(file, s, notes, errs)
	if bad := Check(reg, file, out); len(bad) > 0 {
		return registry.ReportConvertErrors(stderr, append(errs, bad...))
	}
	_, _ = io.WriteString(stdout, out.TOML)
	if len(errs) > 0 {
		return registry.ReportConvertErrors(stderr, errs)
	}
	return 0
}

// Read evaluates file with node when useNode is set and node is on PATH,
// else parses it as an object literal.
func Read(ctx context.Context, file string, useNode bool) (*Object, *Error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	if useNode {
		if node, err := exec.LookPath("node"); err == nil {
			cfg, err := EvalNode(ctx, node, file)
			if err != nil {
				return nil, &Error{File: file, Msg: err.Error()}
			}
			return cfg, nil
		}
	}
	cfg, err := ParseLiteral(string(data))
	if err != nil {
		return nil, &Error{File: file, Msg: err.Error() + " (not a plain object literal: node, on PATH, evaluates any JavaScript)", Unsupported: true}
	}
	return cfg, nil
}

// Check loads the converted configuration as `router -check` does (the
// loader, then every plugin's Init) with the plugins of reg, and returns
// the router's complaint as an Unsupported error at the Etsy key it comes
// from.
func Check(reg *registry.Registry, file string, out *Output) []*Error {
	msg, n := agent.CheckConverted(reg, out.TOML)
	if msg == "" {
		return nil
	}
	key := ""
	if n >= 1 && n <= len(out.Origin) {
		key = out.Origin[n-1]
	}
	return []*Error{{File: file, Key: key, Msg: "the router refuses the converted configuration: " + msg, Unsupported: true}}
}
