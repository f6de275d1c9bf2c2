// Package carbonagg converts Graphite carbon-aggregator's rules
// (aggregation-rules.conf) to router TOML:
//
//	router convert carbon-aggregator [-o OUTPUT_ID] [-max-intervals N] FILE
//
// It prints a whole configuration, as router convert carbon-c-relay does:
// an [[inputs.graphite]] on carbon-aggregator's line port (2023), an
// [[outputs.graphite]] standing for its DESTINATIONS, one [[rules]] table
// with [rules.aggregate] per rule line, in file order, and a last rule
// forwarding every metric (FORWARD_ALL = True, carbon's default). The
// [[rules]] tables may be copied into another configuration.
//
// The rules are read as carbon 1.1's RuleManager and AggregationRule read
// them (carbon/aggregator/rules.py): a line is
//
//	output_template (frequency) = method input_pattern
//
// and one that is blank or starts with '#' is skipped. The input pattern is
// split at '.'; a part holding <name> matches one or more characters other
// than '.', <<name>> one or more of any, a part that is "*" one or more
// characters other than '.', any other '*' zero or more. Nothing else is
// escaped: carbon hands the rest to Python's re (its example uses \d{2}).
// The converter writes the anchored POSIX extended regular expression with
// a group per field, in order, and the output template with the fields as
// back references (\1 .. \9; \g{N} before a digit).
//
// methods: sum, avg (average), min, max, count; p50 (median), p75, p80,
// p90, p95, p99 (percentile75 ...). The percentiles differ in value:
// carbon interpolates linearly between the two nearest values (rank
// p x (n-1)), the router takes carbon-c-relay's nearest rank; each such
// rule says so in a comment. p999 has no equivalent.
//
// every is the frequency. timestamp is "start": carbon stamps an aggregate
// with the start of its interval (timestamp - timestamp % frequency), as
// the router's buckets are aligned. expire is (MAX_AGGREGATION_INTERVALS +
// 1) x frequency: carbon computes every frequency seconds and emits each
// interval that got values since, then drops intervals that started more
// than MAX_AGGREGATION_INTERVALS intervals before the current one
// (carbon/aggregator/buffers.py), so it adds late values to an interval
// until (MAX_AGGREGATION_INTERVALS + 1) x frequency after its start,
// emitting the updated aggregate each time. The router emits an interval
// once, when it expires (plus a spread of up to one frequency), with every
// value carbon would have counted; its aggregates arrive that much later.
// MAX_AGGREGATION_INTERVALS is 5 unless -max-intervals gives carbon.conf's.
//
// Every rule has send_to = [ID], the output's id (-o, default "carbon"):
// carbon-aggregator sends its aggregates to its DESTINATIONS and never
// aggregates them again, where aggregates without send_to would re-enter
// the rules (and the router refuses a rule whose aggregates match its own
// expression, as carbon's own examples' do).
//
// Other differences, by design: carbon keeps one buffer per produced name,
// shared by every rule producing it (the first rule's method and
// frequency; a metric two such rules match is counted twice), the router
// one per rule; carbon takes any future timestamp, the router drops one
// past its last bucket and counts it; with FORWARD_ALL carbon does not
// forward a metric whose name is one of its own aggregates; a value for an
// interval carbon has dropped starts a new aggregate of the late values
// alone, the router drops it and counts it; values are written with 6
// decimals (carbon-c-relay's %f), carbon's as Python floats; \d is [0-9].
//
// What the router cannot express is reported with FILE:LINE and exit status
// 2, nothing printed: p999, more than 9 fields, two <<fields>>, regular
// expression syntax other than characters, escaped punctuation, \d,
// bracket expressions without negation and quantifiers (only {m} next to a
// field, where a lazy Python field and a greedy POSIX one would split a
// name differently), a '\' or a '%' format other than %% in the output
// template. A line carbon refuses (its parse, an unknown method, a regular
// expression Python's re refuses, as far as the converter reads it) or
// fails on with every metric it matches (a field of the output missing
// from the input, a frequency below 1) gives exit status 1, whatever else
// it holds. The TOML is checked against the router's own loader before it
// is printed.
package carbonagg

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/metricsrouter/router/agent"
	"github.com/metricsrouter/router/agent/rules"
	"github.com/metricsrouter/router/registry"
)

func init() {
	registry.AddConverter("carbon-aggregator", "[-o OUTPUT_ID] [-max-intervals N] FILE", func(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
		return Run(registry.Default, args, stdout, stderr)
	})
}

const usage = `usage: router convert carbon-aggregator [options] FILE

Prints the router configuration equivalent to carbon-aggregator (Graphite
carbon 1.1) with the aggregation rules of FILE (aggregation-rules.conf):
its line receiver, an output for its destinations, one aggregate rule per
rule line and a rule forwarding every metric (FORWARD_ALL).

  -o ID             the id of the output standing for its DESTINATIONS
                    (default "carbon"); aggregates go to it directly
  -max-intervals N  carbon.conf's MAX_AGGREGATION_INTERVALS (default 5):
                    expire is (N + 1) x frequency

Exit status: 0 converted; 1 carbon refuses the file (or fails on every
metric a rule matches); 2 it uses what the router cannot express (each is
listed with its file and line) or a usage error.
`

// Run is `router convert carbon-aggregator args...`; the TOML is checked
// against the plugins of reg before it is printed.
func Run(reg *registry.Registry, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("router convert carbon-aggregator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	output := fs.String("o", DefaultOutput, "")
	maxIntervals := fs.Int("max-intervals", 0, "")
	if code, ok := registry.ParseConverterArgs(fs, args); !ok {
		return code
	}
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "max-intervals" })
	if set && (*maxIntervals < 1 || *maxIntervals > 1000) {
		fmt.Fprintf(stderr, "router convert carbon-aggregator: -max-intervals %d: want 1 to 1000 (the router's expire must exceed every)\n", *maxIntervals)
		return 2
	}
	if *output == "" || *output == rules.Blackhole {
		fmt.Fprintf(stderr, "router convert carbon-aggregator: -o %q: want an output id\n", *output)
		return 2
	}
	file := fs.Arg(0)
	data, err := os.ReadFile(file)
	if err != nil {
		fmt.Fprintf(stderr, "router convert: %v\n", err)
		return 1
	}
	rs, errs := Parse(file, string(data))
	var out *Output
	if len(errs) == 0 {
		out = Convert(file, rs, ConvertOptions{Output: *output, MaxIntervals: *maxIntervals,
			Command: "router convert carbon-aggregator " + strings.Join(args, " ")})
		errs = Check(reg, file, out)
	}
	if len(errs) > 0 {
		return registry.ReportConvertErrors(stderr, errs)
	}
	_, _ = io.WriteString(stdout, out.TOML)
	return 0
}

// Check loads the converted configuration as `router -check` does (the
// loader, then every plugin's Init) with the plugins of reg, and returns
// the router's complaints as Unsupported errors at the rule line they come
// from.
func Check(reg *registry.Registry, file string, out *Output) []*Error {
	msg, n := agent.CheckConverted(reg, out.TOML)
	if msg == "" {
		return nil
	}
	at := Pos{File: file}
	if n >= 1 && n <= len(out.Origin) && out.Origin[n-1].File != "" {
		at = out.Origin[n-1]
	}
	return []*Error{{Pos: at, Msg: "the router refuses the converted configuration: " + msg, Unsupported: true}}
}
