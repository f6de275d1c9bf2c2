package rules

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metricsrouter/router/agent/aggregate"
	"github.com/metricsrouter/router/agent/selector"
	"github.com/metricsrouter/router/plugins/metric"
)

// Chain is a compiled rule chain. It is immutable and safe for concurrent
// use; counters are atomic and updated once per batch.
type Chain struct {
	specs  []Spec
	routes []route
	outs   []string // slot -> output id, in order of first mention
	// keyers[slot], for the slots of a rule with route_using (one slot per
	// such rule and output), computes the hash key; nil elsewhere
	keyers []*Keyer
	pre    *trie // filled while compiling, then walked as preR
	suf    *trie
	preR   *radix
	sufR   *radix
	always []int32 // routes without a gate, ascending
	aggs   []*AggRule

	// Matched counts, per rule, the metrics that matched it (each
	// expression of a multi-expression rule counts separately, as each is
	// a route of its own in carbon-c-relay).
	Matched []*atomic.Uint64
	// Unmatched, Blackholed and Invalid count metrics sent nowhere, by
	// cause: no rule sent them, a blackhole rule ended them, a failed
	// validation ended them.
	Unmatched, Blackholed, Invalid *atomic.Uint64
	bind                           sync.Once

	// OnInvalid, when set, is called for metrics that failed a validate
	// with else = "log" (the agent logs them, rate-limited).
	OnInvalid func(rule string, line []byte)

	pool sync.Pool
}

// route is one expression of a rule; the expressions of a rule share its
// action, and each fires on its own, as in carbon-c-relay (a metric
// matching two expressions of one rule is sent twice).
type route struct {
	rule int32
	pat  *pattern
	act  *action
}

type action struct {
	// tags: match_tag, which a metric must pass besides the expression
	// (nil: none)
	tags      *selector.Tags
	agg       *AggRule
	rewrite   bool
	into      string
	intoT     tmpl
	validate  *pattern
	logFail   bool
	sends     []int32
	blackhole bool
	stop      bool
}

// Keyer is a route_using: the key a metric is placed by is the rewrite of
// its name with the rule's expressions and the replacement.
type Keyer struct {
	pats []*pattern
	t    tmpl
	Repl string
}

// Key appends the key of name to dst (name itself when no expression
// matches, which cannot happen for a metric the rule sent).
func (k *Keyer) Key(dst, name []byte) []byte {
	var loc [20]int
	for _, p := range k.pats {
		if n := p.match(name, loc[:]); n != 0 {
			return expandT(dst, name, k.t, loc[:], n)
		}
	}
	return append(dst, name...)
}

// Keyer returns the route_using of slot i, or nil.
func (c *Chain) Keyer(i int) *Keyer {
	if i < len(c.keyers) {
		return c.keyers[i]
	}
	return nil
}

// AggRule is an aggregate rule of the chain: its compiled configuration,
// the outputs its produced metrics go to (slots; none: back into the chain
// from the top), and its state, which the agent binds (BindAggregates) so
// that it outlives a reload that keeps the rule.
type AggRule struct {
	Index int // among the chain's aggregates
	Rule  int // in the chain's specs
	Label string
	Cfg   *aggregate.Config
	Sends []int32
	Agg   *aggregate.Aggregate
	tmpls []tmpl // the computes' write_to, read once
	// Print identifies the rule's state: rules with equal prints may share
	// it across a reload.
	Print string
}

// Compile builds a chain. isOutput reports whether an output id exists. All
// errors are returned together, one per line, each naming its rule.
func Compile(specs []Spec, isOutput func(id string) bool) (*Chain, error) {
	c := &Chain{specs: specs, pre: newTrie(), suf: newTrie(), Matched: make([]*atomic.Uint64, len(specs)),
		Unmatched: new(atomic.Uint64), Blackholed: new(atomic.Uint64), Invalid: new(atomic.Uint64)}
	for i := range c.Matched {
		c.Matched[i] = new(atomic.Uint64)
	}
	slot := map[string]int32{}
	ids := map[string]int{}
	var errs []error
	for i := range specs {
		s := &specs[i]
		fail := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", s.where(i), fmt.Sprintf(format, a...)))
		}
		if s.ID != "" {
			if j, dup := ids[s.ID]; dup {
				fail("id %q is also rule %d's", s.ID, j+1)
			}
			ids[s.ID] = i
		}
		act := &action{}
		if len(s.MatchTag) > 0 {
			if s.Rewrite != "" {
				fail("match_tag belongs to a match or aggregate rule")
				continue
			}
			table := make(map[string][]string, len(s.MatchTag))
			for k, v := range s.MatchTag {
				table[k] = v
			}
			tags, err := selector.CompileTags("match_tag", table)
			if err != nil {
				fail("%v", err)
				continue
			}
			act.tags = &tags
		}
		var exprs []string
		switch {
		case s.Aggregate != nil:
			if s.Rewrite != "" || s.Into != nil || s.Validate != "" || s.Else != "" {
				fail("an aggregate rule takes match, send_to, stop and [rules.aggregate] (rewrite, into, validate and else belong to other rules)")
				continue
			}
			if len(s.Match) == 0 {
				fail("aggregate needs match")
				continue
			}
			cfg, err := aggregate.Compile(s.Aggregate)
			if err != nil {
				fail("aggregate: %v", err)
				continue
			}
			ar := &AggRule{Index: len(c.aggs), Rule: i, Label: s.Label(i), Cfg: cfg, Print: aggPrint(s)}
			for _, comp := range cfg.Computes {
				ar.tmpls = append(ar.tmpls, compileTmpl(comp.WriteTo))
			}
			for _, id := range s.SendTo {
				if id == Blackhole || !isOutput(id) {
					fail("send_to: no output with id %q", id)
					continue
				}
				n, ok := slot[id]
				if !ok {
					n = int32(len(c.outs))
					slot[id] = n
					c.outs = append(c.outs, id)
				}
				ar.Sends = append(ar.Sends, n)
			}
			c.aggs = append(c.aggs, ar)
			act.agg = ar
			act.stop = s.Stop
			exprs = s.Match
			if len(ar.Sends) == 0 {
				if e := feedsItself(s); e != "" {
					fail("%s", e)
					continue
				}
			}
		case s.Rewrite != "" && len(s.Match) > 0:
			fail("has both match and rewrite: a rule is one of them")
			continue
		case s.Rewrite != "":
			if s.Into == nil {
				fail("rewrite needs into")
				continue
			}
			if s.Validate != "" || len(s.SendTo) > 0 || s.Stop || s.Else != "" {
				fail("a rewrite rule takes only rewrite and into (validate, send_to, stop and else belong to match rules)")
				continue
			}
			act.rewrite, act.into, act.intoT = true, *s.Into, compileTmpl(*s.Into)
			exprs = []string{s.Rewrite}
		case len(s.Match) > 0 || act.tags != nil:
			if s.Into != nil {
				fail("into belongs to a rewrite rule")
			}
			if len(s.SendTo) == 0 && s.Validate == "" {
				fail("match needs send_to (output ids or \"blackhole\") or validate")
				continue
			}
			exprs = s.Match
			if len(exprs) == 0 {
				exprs = []string{"*"} // match_tag alone: every name
			}
		default:
			fail("needs match or rewrite")
			continue
		}
		if s.Validate != "" {
			p, err := compilePattern(s.Validate)
			if err != nil {
				fail("validate: %v", err)
				continue
			}
			act.validate = p
			switch s.Else {
			case "", "drop":
			case "log":
				act.logFail = true
			default:
				fail("else = %q: want \"drop\" or \"log\"", s.Else)
			}
		} else if s.Else != "" {
			fail("else needs validate")
		}
		var keyer *Keyer
		if s.RouteUsing != "" {
			if act.agg != nil || act.rewrite || len(s.SendTo) == 0 {
				fail("route_using belongs to a match rule with send_to")
				continue
			}
			keyer = &Keyer{t: compileTmpl(s.RouteUsing), Repl: s.RouteUsing}
		}
		for _, id := range s.SendTo {
			if act.agg != nil {
				break // the produced metrics' outputs, above
			}
			if id == Blackhole {
				if len(s.SendTo) > 1 {
					fail("send_to: \"blackhole\" discards; it cannot be combined with outputs")
				}
				act.blackhole = true
				continue
			}
			if !isOutput(id) {
				fail("send_to: no output with id %q", id)
				continue
			}
			if keyer != nil {
				// a slot of its own: the output gets these metrics with
				// their key
				for len(c.keyers) < len(c.outs) {
					c.keyers = append(c.keyers, nil)
				}
				act.sends = append(act.sends, int32(len(c.outs)))
				c.outs = append(c.outs, id)
				c.keyers = append(c.keyers, keyer)
				continue
			}
			n, ok := slot[id]
			if !ok {
				n = int32(len(c.outs))
				slot[id] = n
				c.outs = append(c.outs, id)
			}
			act.sends = append(act.sends, n)
		}
		// c-relay: a blackhole implies stop; a rule without destinations
		// (a bare validate) never stops but on a failed validation.
		if act.agg == nil {
			act.stop = act.blackhole || (len(s.SendTo) > 0 && s.Stop)
		}
		for k, e := range exprs {
			if e == "*" && len(exprs) > 1 {
				fail("\"*\" must be the only expression")
				break
			}
			if act.rewrite && e == "*" {
				fail("rewrite \"*\" is not an expression")
				break
			}
			p, err := compilePattern(e)
			if err == nil && keyer != nil {
				keyer.pats = append(keyer.pats, p)
			}
			if err != nil {
				if len(exprs) > 1 {
					fail("match[%d]: %v", k, err)
				} else {
					fail("%v", err)
				}
				continue
			}
			r := int32(len(c.routes))
			c.routes = append(c.routes, route{rule: int32(i), pat: p, act: act})
			switch p.gate {
			case gatePrefix:
				c.pre.add(p.gateLit, false, r)
			case gateSuffix:
				c.suf.add(p.gateLit, true, r)
			default:
				c.always = append(c.always, r)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.preR, c.sufR = c.pre.compile(), c.suf.compile()
	c.pre, c.suf = nil, nil
	c.pool.New = func() any { return &State{} }
	return c, nil
}

// aggPrint is what identifies an aggregate rule's state: its expressions
// and its aggregate, not its place in the file or its outputs.
func aggPrint(s *Spec) string {
	return fmt.Sprintf("%q %#v", s.Match, *s.Aggregate)
}

// feedsItself returns why an aggregate rule without send_to would feed on
// its own products (they re-enter the chain from the top), or "": the
// write_to of a compute, its back references filled with "x", matches one
// of the rule's expressions.
func feedsItself(s *Spec) string {
	for _, c := range s.Aggregate.Compute {
		var name []byte
		WalkReplacement(c.WriteTo, true, func(b byte) { name = append(name, b) }, func(int, bool, bool, bool) { name = append(name, 'x') })
		for _, e := range s.Match {
			p, err := compilePattern(e)
			if err == nil && p.match(name, nil) != 0 {
				return fmt.Sprintf("aggregate: a produced metric (%s, from write_to %q) matches the rule's own expression %q: it would feed itself; set send_to, or change write_to or match", name, c.WriteTo, e)
			}
		}
	}
	return ""
}

// Aggregates returns the chain's aggregate rules, in file order.
func (c *Chain) Aggregates() []*AggRule { return c.aggs }

// BindAggregates gives every aggregate rule its state: get returns the
// state of a rule with the same Print from the chain being replaced, or a
// new one. Call it once, before the chain routes anything.
func (c *Chain) BindAggregates(get func(r *AggRule) *aggregate.Aggregate) {
	for _, r := range c.aggs {
		r.Agg = get(r)
	}
}

// Bind replaces the chain's counters with the caller's (a metrics
// registry's), once, before the chain routes anything; later calls do
// nothing.
func (c *Chain) Bind(unmatched, blackholed, invalid *atomic.Uint64, rule func(label string) *atomic.Uint64) {
	c.bind.Do(func() {
		c.Unmatched, c.Blackholed, c.Invalid = unmatched, blackholed, invalid
		for i := range c.specs {
			c.Matched[i] = rule(c.specs[i].Label(i))
		}
	})
}

// Outputs returns the output ids the chain sends to; slot i of a routed
// batch is Outputs()[i].
func (c *Chain) Outputs() []string { return c.outs }

// Specs returns the rules as compiled.
func (c *Chain) Specs() []Spec { return c.specs }

// Unreachable returns a warning for every rule after a rule that stops
// every metric ("match *" with stop, or to blackhole).
func (c *Chain) Unreachable() []string {
	for i, r := range c.routes {
		if r.pat.kind == kindAll && !r.act.rewrite && r.act.validate == nil && r.act.tags == nil && r.act.stop {
			var w []string
			seen := map[int32]bool{}
			for _, later := range c.routes[i+1:] {
				if later.rule != r.rule && !seen[later.rule] {
					seen[later.rule] = true
					s := &c.specs[later.rule]
					w = append(w, fmt.Sprintf("%s can never fire: %s stops every metric", s.where(int(later.rule)), c.specs[r.rule].where(int(r.rule))))
				}
			}
			return w
		}
	}
	return nil
}

// State is the scratch of one evaluation; Route takes one from the chain's
// pool.
type State struct {
	cand   []int32
	loc    [20]int
	name   []byte
	rest   []byte
	sends  []send
	counts []int
	hits   []uint32 // per rule, this batch
	arena  []byte
	// per aggregate: what this batch puts into it
	aggs []aggregate.Batch
	now  int64 // the clock, read once per batch for metrics without a timestamp
}

type send struct {
	slot int32
	m    metric.Metric
}

// Route evaluates every metric of b and returns one sub-batch per output
// slot (nil where nothing goes). Sub-batches share one new backing array;
// renamed metrics share one new arena: a batch costs a few allocations, not
// one per metric.
func (c *Chain) Route(b metric.Batch) []metric.Batch { return c.RouteFrom(b, -1) }

// SkipAggregates is the origin of metrics that no aggregate takes (those
// produced at shutdown: carbon-c-relay's aggregators take no value while
// it stops).
const SkipAggregates = -2

// RouteFrom is Route for the metrics aggregate origin produced (-1: none;
// SkipAggregates: every aggregate): they skip that aggregate, so that a
// rule whose produced names match its own expressions does not feed on
// itself.
func (c *Chain) RouteFrom(b metric.Batch, origin int) []metric.Batch {
	st := c.pool.Get().(*State)
	if len(st.aggs) != len(c.aggs) {
		st.aggs = make([]aggregate.Batch, len(c.aggs))
	}
	st.now = 0
	st.sends = st.sends[:0]
	st.arena = nil
	if len(st.hits) != len(c.specs) {
		st.hits = make([]uint32, len(c.specs))
	}
	var unmatched, blackholed, invalid uint64
	// ident: so far every metric went, unchanged, to slot 0 alone; then
	// that slot's sub-batch is b itself and nothing is copied.
	ident := true
	for i := range b {
		n := len(st.sends)
		cause := c.eval(st, b[i], nil, origin)
		if ident && (len(st.sends) != n+1 || st.sends[n].slot != 0 || !samePath(&st.sends[n].m, &b[i])) {
			ident = false
		}
		switch cause {
		case dropUnmatched:
			unmatched++
		case dropBlackhole:
			blackholed++
		case dropInvalid:
			invalid++
		}
	}
	for i, h := range st.hits {
		if h != 0 {
			c.Matched[i].Add(uint64(h))
			st.hits[i] = 0
		}
	}
	for i := range st.aggs {
		if ab := &st.aggs[i]; len(ab.Entries) > 0 || ab.Received > 0 {
			if ag := c.aggs[i].Agg; ag != nil {
				ag.Put(ab)
			}
			ab.Reset()
		}
	}
	if unmatched > 0 {
		c.Unmatched.Add(unmatched)
	}
	if blackholed > 0 {
		c.Blackholed.Add(blackholed)
	}
	if invalid > 0 {
		c.Invalid.Add(invalid)
	}
	var subs []metric.Batch
	if ident && len(b) > 0 {
		subs = make([]metric.Batch, len(c.outs))
		subs[0] = b
		clear(st.sends)
	} else if len(st.sends) > 0 {
		if cap(st.counts) < len(c.outs) {
			st.counts = make([]int, len(c.outs))
		}
		counts := st.counts[:len(c.outs)]
		clear(counts)
		for _, s := range st.sends {
			counts[s.slot]++
		}
		backing := make(metric.Batch, len(st.sends))
		subs = make([]metric.Batch, len(c.outs))
		off := 0
		for k, n := range counts {
			if n > 0 {
				subs[k] = backing[off : off : off+n]
				off += n
			}
		}
		for _, s := range st.sends {
			subs[s.slot] = append(subs[s.slot], s.m)
		}
		clear(st.sends) // drop the references to the batch's buffers
	}
	st.arena = nil
	c.pool.Put(st)
	return subs
}

// samePath reports whether a is b, not renamed: the same line bytes.
func samePath(a, b *metric.Metric) bool {
	la, lb := a.Line(), b.Line()
	return len(la) == len(lb) && len(la) > 0 && &la[0] == &lb[0]
}

type dropCause uint8

const (
	sent dropCause = iota
	dropUnmatched
	dropBlackhole
	dropInvalid
)

var causeNames = [...]string{"", "unmatched", "blackhole", "validate"}

// candidates fills st.cand with the routes after `after` worth testing on
// name, ascending.
func (c *Chain) candidates(st *State, name []byte, after int32) {
	st.cand = c.preR.walk(name, false, after, st.cand[:0])
	if len(c.sufR.nodes) > 1 || len(c.sufR.nodes[0].routes) > 0 {
		st.cand = c.sufR.walk(name, true, after, st.cand)
	}
	k := len(st.cand)
	i, _ := slices.BinarySearch(c.always, after+1)
	st.cand = append(st.cand, c.always[i:]...)
	if k > 0 {
		slices.Sort(st.cand)
	}
}

// eval runs the chain on one metric, appending its sends to st.sends.
func (c *Chain) eval(st *State, m metric.Metric, tr *Trace, origin int) dropCause {
	name := m.Path()
	c.candidates(st, name, -1)
	sentAny, blackholed, invalid := false, false, false
	for ci := 0; ci < len(st.cand); ci++ {
		ri := st.cand[ci]
		r := &c.routes[ri]
		a := r.act
		if a.agg != nil && (a.agg.Index == origin || origin == SkipAggregates) {
			continue
		}
		var loc []int
		if a.rewrite || a.agg != nil {
			loc = st.loc[:]
		}
		n := r.pat.match(name, loc)
		if n == 0 || a.tags != nil && !a.tags.All(&m) {
			continue
		}
		st.hits[r.rule]++
		var step *Step
		if tr != nil {
			tr.Steps = append(tr.Steps, Step{Rule: c.specs[r.rule].Label(int(r.rule)), Expr: r.pat.src, Test: r.pat.kind.String(), Name: string(name)})
			step = &tr.Steps[len(tr.Steps)-1]
		}
		if a.rewrite {
			st.name = expandT(st.name[:0], name, a.intoT, loc, n)
			need := len(st.name) + len(m.Line()) + len(m.Tags()) + len(m.Ext()) + len(m.RateToken()) + 16
			if cap(st.arena)-len(st.arena) < need {
				st.arena = make([]byte, 0, max(16<<10, 2*need))
			}
			st.arena = m.SetPathIn(st.arena, st.name)
			name = m.Path()
			if step != nil {
				step.Into = a.into
				step.Rewritten = string(name)
			}
			c.candidates(st, name, ri)
			ci = -1
			continue
		}
		if a.agg != nil {
			c.feed(st, a.agg, &m, name, loc, n, tr, step)
			sentAny = true
			if a.stop {
				if step != nil {
					step.Stop = true
				}
				break
			}
			continue
		}
		if a.validate != nil {
			rest := c.rest(st, &m)
			ok := a.validate.match(rest, nil) != 0
			if step != nil {
				step.Validate, step.Valid, step.Rest = a.validate.src, ok, string(rest)
			}
			if !ok {
				invalid = true
				if a.logFail && c.OnInvalid != nil && tr == nil {
					c.OnInvalid(c.specs[r.rule].Label(int(r.rule)), m.Line())
				}
				stop := a.stop || (len(a.sends) == 0 && !a.blackhole)
				if step != nil {
					step.Stop = stop
				}
				if stop {
					break
				}
				continue
			}
		}
		if a.blackhole {
			blackholed = true
			if step != nil {
				step.Blackhole = true
			}
		}
		for _, s := range a.sends {
			st.sends = append(st.sends, send{slot: s, m: m})
			sentAny = true
			if tr != nil {
				step.Sends = append(step.Sends, c.outs[s])
				tr.Sends = append(tr.Sends, Send{Output: c.outs[s], Slot: int(s), Name: string(name), Metric: m})
			}
		}
		if a.stop {
			if step != nil {
				step.Stop = true
			}
			break
		}
	}
	cause := sent
	switch {
	case sentAny:
	case blackholed:
		cause = dropBlackhole
	case invalid:
		cause = dropInvalid
	default:
		cause = dropUnmatched
	}
	if tr != nil {
		tr.Dropped = causeNames[cause]
	}
	return cause
}

// feed adds metric m (named name, matched with loc) to aggregate ar: one
// entry per compute, under the name its write_to gives.
func (c *Chain) feed(st *State, ar *AggRule, m *metric.Metric, name []byte, loc []int, n int, tr *Trace, step *Step) {
	v, ts := m.Value(), m.Time()
	if ts == 0 && m.Format() != metric.Graphite {
		// StatsD lines carry no timestamp: now, read once per batch
		if st.now == 0 {
			st.now = time.Now().Unix()
		}
		ts = st.now
	}
	var ab *aggregate.Batch
	if tr == nil {
		ab = &st.aggs[ar.Index]
		ab.Received++
	}
	for k := range ar.Cfg.Computes {
		st.name = expandT(st.name[:0], name, ar.tmpls[k], loc, n)
		if ab != nil {
			ab.Add(k, st.name, v, ts)
		}
		if step != nil {
			step.Aggregates = append(step.Aggregates, string(st.name))
			tr.Aggregates = append(tr.Aggregates, string(st.name))
		}
	}
}

// rest is what a validate expression sees: the metric's line after the
// name, with single spaces (carbon-c-relay validates cleansed lines).
func (c *Chain) rest(st *State, m *metric.Metric) []byte {
	if m.Format() == metric.Graphite {
		st.rest = append(st.rest[:0], m.ValueToken()...)
		if ts := m.TimeToken(); len(ts) > 0 {
			st.rest = append(st.rest, ' ')
			st.rest = append(st.rest, ts...)
		}
		return st.rest
	}
	line := m.Line()
	if p := len(m.Path()); p < len(line) {
		return line[p+1:]
	}
	return nil
}

// Trace is what the chain did with one metric, for the route mode.
type Trace struct {
	Steps []Step
	Sends []Send
	// Aggregates are the names of the series the metric feeds.
	Aggregates []string
	Dropped    string // "", "unmatched", "blackhole" or "validate"
}

// Step is one rule that matched.
type Step struct {
	Rule      string // label
	Expr      string
	Test      string // strcmp, strncmp, tailcmp, strstr, regex, *
	Name      string // the name it matched
	Into      string
	Rewritten string
	Validate  string
	Rest      string
	Valid     bool
	Sends     []string
	Blackhole bool
	Stop      bool
	// Aggregates: an aggregate rule's produced names, one per compute.
	Aggregates []string
}

// Send is one output the metric goes to, with its name at that point.
type Send struct {
	Output string
	Slot   int // of Outputs()
	Name   string
	Metric metric.Metric
}

// Explain runs the chain on one metric and reports every step. It does not
// touch the counters.
func (c *Chain) Explain(m metric.Metric) *Trace {
	st := &State{hits: make([]uint32, len(c.specs))}
	tr := &Trace{}
	c.eval(st, m, tr, -1)
	return tr
}

// String renders a trace like carbon-c-relay's test mode, one step per
// block.
func (tr *Trace) String() string {
	var b strings.Builder
	for _, s := range tr.Steps {
		kind := "match"
		if s.Into != "" || s.Rewritten != "" {
			kind = "rewrite"
		}
		if len(s.Aggregates) > 0 {
			kind = "aggregate"
		}
		fmt.Fprintf(&b, "%s (rule %s)\n    %s [%s] -> %s\n", kind, s.Rule, s.Expr, s.Test, s.Name)
		if kind == "rewrite" {
			fmt.Fprintf(&b, "    into(%s) -> %s\n", s.Into, s.Rewritten)
		}
		if s.Validate != "" {
			res := "match"
			if !s.Valid {
				res = "fail"
			}
			fmt.Fprintf(&b, "    validate %s -> %s: %s\n", s.Validate, s.Rest, res)
		}
		for _, o := range s.Sends {
			fmt.Fprintf(&b, "    send to %s\n", o)
		}
		for _, n := range s.Aggregates {
			fmt.Fprintf(&b, "    feeds %s\n", n)
		}
		if s.Blackhole {
			b.WriteString("    blackholed\n")
		}
		if s.Stop {
			b.WriteString("    stop\n")
		}
	}
	if tr.Dropped != "" {
		fmt.Fprintf(&b, "dropped (%s)\n", tr.Dropped)
	}
	return b.String()
}
