package carbonagg

import (
	"fmt"
	"strings"

	"github.com/metricsrouter/router/registry"
)

// DefaultOutput is the id of the converted configuration's output when -o
// does not name it.
const DefaultOutput = "carbon"

// DefaultMaxIntervals is carbon's MAX_AGGREGATION_INTERVALS default
// (carbon/conf.py).
const DefaultMaxIntervals = 5

// ConvertOptions are what the command line adds to the rules.
type ConvertOptions struct {
	// Output is the id of the output standing for carbon-aggregator's
	// DESTINATIONS (empty: DefaultOutput). Every rule sends its aggregates
	// there directly, as carbon-aggregator does: they never meet the rules
	// again.
	Output string
	// MaxIntervals is carbon.conf's MAX_AGGREGATION_INTERVALS (0:
	// DefaultMaxIntervals); expire is (MaxIntervals + 1) x frequency.
	MaxIntervals int
	// Command is the command line, for the header.
	Command string
}

// Output is the converted configuration; Origin[i] is the rule line TOML
// line i+1 comes from (zero for the rest).
type Output struct {
	TOML   string
	Origin []Pos
}

type writer struct {
	b      strings.Builder
	origin []Pos
	at     Pos
}

func (w *writer) line(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	for _, l := range strings.Split(s, "\n") {
		w.b.WriteString(l)
		w.b.WriteByte('\n')
		w.origin = append(w.origin, w.at)
	}
}

// Convert writes the router configuration equivalent to carbon-aggregator
// with the rules of file: its line receiver, an output for its
// destinations, one aggregate rule per rule line in file order, and a last
// rule that forwards every metric (FORWARD_ALL = True, carbon's default).
func Convert(file string, rules []*Rule, opt ConvertOptions) *Output {
	n := opt.MaxIntervals
	if n == 0 {
		n = DefaultMaxIntervals
	}
	out := opt.Output
	if out == "" {
		out = DefaultOutput
	}
	w := &writer{}
	w.line("# Converted from the carbon-aggregator rules %s by", comment(file))
	w.line("#   %s", comment(opt.Command))
	w.line("# Run it with: router -config THIS_FILE.toml (check it first with -check).")
	w.line("# The input and the output stand for carbon.conf's [aggregator] LINE_RECEIVER_PORT")
	w.line("# and DESTINATIONS: edit them. To add the rules to another configuration, copy")
	w.line("# the [[rules]] tables (the last one is FORWARD_ALL).")
	w.line("#")
	w.line("# Each rule line is a [[rules]] table with [rules.aggregate], in file order:")
	w.line("#   match = the input pattern as an anchored regular expression, a group per field;")
	w.line("#   write_to = the output template, the fields as back references; every = frequency;")
	w.line("#   timestamp = \"start\": carbon stamps an aggregate with its interval's start;")
	w.line("#   expire = (MAX_AGGREGATION_INTERVALS + 1) x frequency, MAX_AGGREGATION_INTERVALS = %d", n)
	if opt.MaxIntervals == 0 {
		w.line("#   (carbon's default; -max-intervals sets it): carbon keeps an interval that long")
	} else {
		w.line("#   (-max-intervals): carbon keeps an interval that long")
	}
	w.line("#   from its start and adds late values to it, emitting it again; the router emits")
	w.line("#   each interval once, when it expires, so aggregates arrive that much later.")
	w.line("# Aggregates go to the output directly (send_to), as carbon-aggregator sends them")
	w.line("# to its DESTINATIONS without aggregating them again.")
	w.line("")
	w.line("[[inputs.graphite]]")
	w.line("  # carbon-aggregator's line receiver ([aggregator] LINE_RECEIVER_PORT)")
	w.line(`  listen = ":2023"`)
	w.line(`  protocol = "tcp"`)
	w.line("")
	w.line("[[outputs.graphite]]")
	w.line("  # carbon-aggregator's DESTINATIONS (carbon's default: carbon-cache's pickle")
	w.line("  # port), in pickle as carbon-aggregator sends them")
	w.line("  id = %s", basic(out))
	w.line(`  address = "127.0.0.1:2004"`)
	w.line(`  format = "pickle"`)
	for _, r := range rules {
		w.at = r.Pos
		w.line("")
		w.line("[[rules]]")
		w.line("  # %s: %s", r.Pos, comment(r.Text))
		for _, note := range r.Notes {
			w.line("  # %s", comment(note))
		}
		w.line("  match = %s", literal(r.Match))
		w.line("  send_to = [%s]", basic(out))
		w.line("  [rules.aggregate]")
		w.line(`    every = "%ds"`, r.Frequency)
		w.line(`    expire = "%ds"`, r.Frequency*int64(n+1))
		w.line(`    timestamp = "start"`)
		w.line(`    compute = [{ type = %s, write_to = %s }]`, basic(r.Compute), literal(r.WriteTo))
	}
	w.at = Pos{}
	w.line("")
	w.line("[[rules]]")
	w.line("  # FORWARD_ALL = True (carbon's default): every metric received goes on to the")
	w.line("  # destinations too. Delete this rule for FORWARD_ALL = False.")
	w.line(`  match = "*"`)
	w.line("  send_to = [%s]", basic(out))
	return &Output{TOML: w.b.String(), Origin: w.origin}
}

// basic quotes s as a TOML basic string.
func basic(s string) string { return registry.QuoteTOML(s) }

// literal quotes an expression (registry.QuoteTOMLLiteral).
func literal(s string) string { return registry.QuoteTOMLLiteral(s) }
