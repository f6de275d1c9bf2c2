package rules

import (
	"fmt"
	"slices"
	"strings"

	"github.com/metricsrouter/router/agent/aggregate"
)

// Spec is one [[rules]] table as written:
//
//	[[rules]]
//	  match = ['^sys\.', '\.count$']   # or "*"
//	  validate = '^[0-9.]+ [0-9]+$'    # optional; else = "drop" | "log"
//	  send_to = ["carbon", "archive"]  # output ids, or ["blackhole"]
//	  stop = true
//
//	[[rules]]
//	  rewrite = '^server\.([^.]+)\.'
//	  into = 'srv.\_1.'
type Spec struct {
	ID    string `toml:"id"`
	Match Exprs  `toml:"match"`
	// MatchTag narrows a match or aggregate rule to the metrics that have,
	// for every key, a tag whose value one of its patterns matches (glob
	// patterns, as in tagpass):
	//
	//	[[rules]]
	//	  match = '^servers\.'                     # optional: "*" without
	//	  match_tag = {env = "prod", dc = ["ams*", "fra*"]}
	//	  send_to = ["carbon-prod"]
	MatchTag map[string]Exprs `toml:"match_tag"`
	Validate string           `toml:"validate"`
	Else     string           `toml:"else"`
	SendTo   []string         `toml:"send_to"`
	Stop     bool             `toml:"stop"`
	Rewrite  string           `toml:"rewrite"`
	Into     *string          `toml:"into"`
	// Aggregate makes the rule carbon-c-relay's aggregate: what matches is
	// put into buckets (agent/aggregate); send_to, when set, is where the
	// produced metrics go, else they re-enter the chain from the top.
	Aggregate *aggregate.Spec `toml:"aggregate"`
	// RouteUsing is carbon-c-relay's "route using": the consistent hash of
	// the outputs this rule sends to places the metric by the match's
	// rewrite with this replacement instead of by its name (the name is
	// not changed). Two tiers of routers use it to send every metric of an
	// aggregation group to the one router that aggregates it.
	RouteUsing string `toml:"route_using"`

	// Line is the table's line in the file (set by the loader); File the
	// file. Both only name the rule in messages.
	Line int    `toml:"-"`
	File string `toml:"-"`
}

// Keys are the keys a [[rules]] table may have.
var Keys = []string{"id", "match", "match_tag", "validate", "else", "send_to", "stop", "rewrite", "into", "aggregate", "route_using"}

// Blackhole is the send_to name that discards.
const Blackhole = "blackhole"

// Exprs is one expression or a list of them.
type Exprs []string

// UnmarshalTOML takes a string or an array of strings.
func (e *Exprs) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*e = Exprs{v}
		return nil
	case []any:
		out := make(Exprs, 0, len(v))
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return fmt.Errorf("want strings, found %T", x)
			}
			out = append(out, s)
		}
		*e = out
		return nil
	}
	return fmt.Errorf("want a string or an array of strings, found %T", v)
}

// where names the rule in messages: "rule 3 (line 40)".
func (s *Spec) where(i int) string {
	name := fmt.Sprintf("rule %d", i+1)
	if s.ID != "" {
		name = fmt.Sprintf("rule %q", s.ID)
	}
	if s.Line > 0 {
		name += fmt.Sprintf(" (line %d)", s.Line)
	}
	return name
}

// Label is the rule's name in metrics and traces: its id, else its number
// in file order (1-based).
func (s *Spec) Label(i int) string {
	if s.ID != "" {
		return s.ID
	}
	return fmt.Sprint(i + 1)
}

// Describe is a one-line rendering of the rule for traces.
func (s *Spec) Describe() string {
	switch {
	case s.Rewrite != "":
		into := ""
		if s.Into != nil {
			into = *s.Into
		}
		return fmt.Sprintf("rewrite %s into %s", s.Rewrite, into)
	case s.Aggregate != nil:
		var b strings.Builder
		a := s.Aggregate
		fmt.Fprintf(&b, "aggregate %s%s every %v expire after %v", strings.Join(s.Match, " "), s.describeTags(), a.Every.D(), a.Expire.D())
		for _, c := range a.Compute {
			fmt.Fprintf(&b, " compute %s write to %s", c.Type, c.WriteTo)
		}
		if len(s.SendTo) > 0 {
			b.WriteString(" send to " + strings.Join(s.SendTo, " "))
		}
		if s.Stop {
			b.WriteString(" stop")
		}
		return b.String()
	default:
		var b strings.Builder
		match := s.Match
		if len(match) == 0 {
			match = Exprs{"*"}
		}
		b.WriteString("match " + strings.Join(match, " "))
		b.WriteString(s.describeTags())
		if s.Validate != "" {
			els := s.Else
			if els == "" {
				els = "drop"
			}
			fmt.Fprintf(&b, " validate %s else %s", s.Validate, els)
		}
		if s.RouteUsing != "" {
			b.WriteString(" route using " + s.RouteUsing)
		}
		if len(s.SendTo) > 0 {
			b.WriteString(" send to " + strings.Join(s.SendTo, " "))
		}
		if s.Stop {
			b.WriteString(" stop")
		}
		return b.String()
	}
}

// describeTags renders match_tag for Describe: " tagged k=v|w* k2=x", the
// keys sorted; "" without match_tag.
func (s *Spec) describeTags() string {
	if len(s.MatchTag) == 0 {
		return ""
	}
	keys := make([]string, 0, len(s.MatchTag))
	for k := range s.MatchTag {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString(" tagged")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, strings.Join(s.MatchTag[k], "|"))
	}
	return b.String()
}
