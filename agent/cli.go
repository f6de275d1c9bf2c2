package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/agent/config"
	"github.com/metricsrouter/router/registry"
)

// Version is set at build time with -ldflags "-X .../agent.Version=1.2.3".
var Version = "dev"

const usage = `router: a metrics router (Graphite, StatsD, Polymur HTTPS batches).

Usage:
  router -config FILE.toml          run (also: ROUTER_CONFIG=FILE.toml router)
  router -config FILE.toml -check   load and validate the file, open nothing
  router -list-plugins              the plugins this binary has
  router -config FILE.toml -route NAME    where NAME would go (one destination per line, primary first;
                                          with [[rules]]: each rule that matched, rewrites, destinations)
  router -config FILE.toml -route - <names  "NAME -> DEST [DEST...]" per name read from stdin
  router -config FILE.toml -route - -json <lines   one JSON object per name or Graphite line read:
                                          {"metric","sends":[{"output","dest","name"}],"dropped"}
  router -sample outputs.graphite   print a plugin's documented sample config
  router -version                   version and the modules built in

`

// Main is what main.go calls: it runs the CLI with the process's arguments
// and exits with its status. SIGINT and SIGTERM start a graceful shutdown.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	// SIGHUP reloads (see RunWith); until the handler is up it must not kill.
	signal.Ignore(syscall.SIGHUP)
	code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Run is the testable CLI: it parses args, and runs until ctx is cancelled.
// It returns the process exit status.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return RunWith(ctx, registry.Default, args, os.Stdin, stdout, stderr)
}

// RunWith is Run with another plugin registry and standard input.
func RunWith(ctx context.Context, reg *registry.Registry, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		c, ok := reg.LookupCommand(args[0])
		if !ok {
			fmt.Fprintf(stderr, "router: unknown command %q (see router -h)\n", args[0])
			return 2
		}
		return c.Run(ctx, args[1:], stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		if cmds := reg.Commands(); len(cmds) > 0 {
			fmt.Fprintln(stderr, "Commands:")
			for _, c := range cmds {
				fmt.Fprintf(stderr, "  router %-28s %s\n", c.Name+" ...", c.Summary)
			}
			fmt.Fprintln(stderr)
		}
		fmt.Fprintln(stderr, "Flags:")
		fs.PrintDefaults()
	}
	configFile := fs.String("config", os.Getenv("ROUTER_CONFIG"), "configuration file (TOML); default $ROUTER_CONFIG")
	check := fs.Bool("check", false, "load and validate the configuration (Init every plugin), open nothing, and exit")
	version := fs.Bool("version", false, "print the version and the modules built in, and exit")
	list := fs.Bool("list-plugins", false, "list the plugins this binary has, and exit")
	sample := fs.String("sample", "", "print the sample configuration of a plugin (e.g. outputs.graphite), and exit")
	watch := fs.Bool("watch-config", false, "reload the configuration when its file changes (as SIGHUP does)")
	route := fs.String("route", "", "print where the metric NAME would go (\"-\": names from stdin, one per line), open nothing, and exit")
	asJSON := fs.Bool("json", false, "with -route: one JSON object per metric read: {\"metric\",\"sends\":[{\"output\",\"dest\",\"name\"}],\"dropped\"}")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "router: unexpected argument %q (see router -h)\n", fs.Arg(0))
		return 2
	}
	switch {
	case *version:
		printVersion(stdout)
		return 0
	case *list:
		for _, p := range reg.All() {
			fmt.Fprintf(stdout, "%-32s %s\n", string(p.Kind)+"."+p.Name, p.Summary())
		}
		return 0
	case *sample != "":
		p, err := findPlugin(reg, *sample)
		if err != nil {
			fmt.Fprintln(stderr, "router:", err)
			return 2
		}
		fmt.Fprint(stdout, p.Sample)
		return 0
	}
	if *configFile == "" {
		fmt.Fprintln(stderr, "router: no configuration: use -config FILE.toml (or ROUTER_CONFIG); see router -h")
		return 2
	}
	cfg, err := config.LoadAll(reg, *configFile)
	if err != nil {
		errs := config.List(err)
		if cfg != nil {
			// what decoded despite the errors: its plugins' Init errors
			// are reported with the others, so that one run shows them all
			if _, ierr := New(cfg, zerolog.Nop()); ierr != nil {
				errs = append(errs, config.List(ierr)...)
			}
			config.SortErrors(errs)
		}
		printErrors(stderr, *configFile, errs)
		return 1
	}
	log := newLogger(cfg.Agent, stderr)
	if max := cfg.Agent.MaxBufferedBytes; max > 0 && os.Getenv("GOMEMLIMIT") == "" && !*check && *route == "" {
		// a soft limit for the garbage collector near the buffer bound, so
		// the heap does not grow to twice the live data first
		debug.SetMemoryLimit(max*3/2 + 64<<20)
	}
	a, err := New(cfg, log)
	if err != nil {
		printErrors(stderr, *configFile, config.List(err))
		return 1
	}
	a.reg = reg
	if *route != "" {
		if err := routeMode(a, *route, *asJSON, stdin, stdout); err != nil {
			fmt.Fprintln(stderr, "router:", err)
			return 1
		}
		return 0
	}
	if *check {
		for _, w := range cfg.Warnings {
			fmt.Fprintf(stderr, "router: warning: %s: %s\n", cfg.File, w)
		}
		dests, discovered := cfg.Destinations()
		more := ""
		if discovered {
			more = " + discovered"
		}
		aggs := ""
		if n := len(cfg.Aggregators); n > 0 {
			aggs = fmt.Sprintf(", %d aggregators", n)
		}
		fmt.Fprintf(stdout, "%s: ok (%d inputs, %d processors%s, %d outputs with %d destinations%s, %d rules)\n",
			cfg.File, len(cfg.Inputs), len(cfg.Processors), aggs, len(cfg.Outputs), dests, more, len(cfg.Rules))
		return 0
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	hupDone := make(chan struct{})
	defer close(hupDone)
	go func() {
		for {
			select {
			case <-hup:
				log.Info().Msg("SIGHUP: reloading the configuration")
				a.requestReload()
			case <-hupDone:
				return
			}
		}
	}()
	var every time.Duration
	if *watch {
		every = time.Second
	}
	if err := a.run(ctx, every); err != nil {
		log.Error().Err(err).Msg("exit with error")
		return 1
	}
	return 0
}

// printErrors writes each error of a configuration on its own line(s),
// then how many there were when more than one.
func printErrors(w io.Writer, file string, errs []error) {
	for _, err := range errs {
		fmt.Fprintln(w, "router:", err)
	}
	if len(errs) > 1 {
		fmt.Fprintf(w, "router: %s: %d errors\n", file, len(errs))
	}
}

func findPlugin(reg *registry.Registry, name string) (registry.Plugin, error) {
	if kind, n, ok := strings.Cut(name, "."); ok {
		if p, ok := reg.Lookup(registry.Kind(kind), n); ok {
			return p, nil
		}
		return registry.Plugin{}, fmt.Errorf("no plugin %q (see router -list-plugins)", name)
	}
	var found []registry.Plugin
	for _, k := range registry.Kinds {
		if p, ok := reg.Lookup(k, name); ok {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return registry.Plugin{}, fmt.Errorf("no plugin %q (see router -list-plugins)", name)
	}
	return registry.Plugin{}, fmt.Errorf("%q is ambiguous: say inputs.%s or outputs.%s", name, name, name)
}

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "router %s %s %s/%s\n", Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	fmt.Fprintf(w, "main %s %s\n", bi.Main.Path, bi.Main.Version)
	for _, d := range bi.Deps {
		v := d.Version
		if d.Replace != nil {
			v += " => " + d.Replace.Path + " " + d.Replace.Version
		}
		fmt.Fprintf(w, "dep  %s %s\n", d.Path, v)
	}
}

func newLogger(c config.Agent, w io.Writer) zerolog.Logger {
	lvl := zerolog.InfoLevel
	if c.LogLevel != "" {
		if v, err := zerolog.ParseLevel(c.LogLevel); err == nil {
			lvl = v
		}
	}
	var out io.Writer = w
	if c.LogFormat == "console" {
		// colours only on a terminal: journald and files get plain text
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: !isTerminal(w)}
	}
	// durations are logged in milliseconds, and their keys say so (_ms)
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger()
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}
