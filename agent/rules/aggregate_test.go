package rules

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/metricsrouter/router/agent/aggregate"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

func aggSpec(comps ...string) *aggregate.Spec {
	s := &aggregate.Spec{Every: registry.Duration(10 * time.Second), Expire: registry.Duration(20 * time.Second)}
	for i := 0; i+1 < len(comps); i += 2 {
		s.Compute = append(s.Compute, aggregate.ComputeSpec{Type: comps[i], WriteTo: comps[i+1]})
	}
	return s
}

// TestAggregateRules: an aggregate rule feeds one series per compute,
// named by write_to with back references; the metric counts as sent; stop
// ends the chain; the products of an aggregate skip it when they come
// back (RouteFrom); a rule whose products match its own expressions
// without send_to is refused.
func TestAggregateRules(t *testing.T) {
	specs := []Spec{
		{ID: "cpu", Match: Exprs{`^cpu\.([^.]+)\.[0-9]+$`}, Stop: true, Aggregate: aggSpec("sum", `agg.\1.sum`, "count", `agg.\_1.n`)},
		{ID: "all", Match: Exprs{`^agg\.`}, Aggregate: aggSpec("count", `total.count`)},
		{Match: Exprs{"*"}, SendTo: []string{"a"}},
	}
	ch, err := Compile(specs, func(id string) bool { return id == "a" })
	if err != nil {
		t.Fatal(err)
	}
	now := int64(1000)
	ch.BindAggregates(func(r *AggRule) *aggregate.Aggregate { return aggregate.New(r.Cfg, func() int64 { return now }, 1) })
	tr := ch.Explain(parse(t, "cpu.WEB.3 5 995"))
	if want := []string{"agg.WEB.sum", "agg.web.n"}; !slices.Equal(tr.Aggregates, want) || len(tr.Sends) != 0 || tr.Dropped != "" {
		t.Fatalf("aggregates %q sends %v dropped %q, want %q, none, \"\"", tr.Aggregates, tr.Sends, tr.Dropped, want)
	}
	b := metric.Batch{parse(t, "cpu.WEB.3 5 995"), parse(t, "cpu.WEB.4 7 996"), parse(t, "mem.x 1 995")}
	subs := ch.Route(b)
	if len(subs) != 1 || len(subs[0]) != 1 || string(subs[0][0].Path()) != "mem.x" {
		t.Fatalf("subs %v", subs)
	}
	if ch.Unmatched.Load() != 0 {
		t.Fatalf("unmatched %d: an aggregated metric counts as sent", ch.Unmatched.Load())
	}
	cpu, all := ch.Aggregates()[0].Agg, ch.Aggregates()[1].Agg
	if n, _ := cpu.Series(); n != 2 || cpu.C.Received.Load() != 2 {
		t.Fatalf("cpu: %d series, %d received", n, cpu.C.Received.Load())
	}
	now = 1100
	out := string(cpu.Expire(nil, false))
	if want := "agg.WEB.sum 12.000000 1000\nagg.web.n 2 1000\n"; !sameLines(out, want) {
		t.Fatalf("emitted %q, want %q", out, want)
	}
	// the products re-enter: "all" takes them, "cpu" does not see them
	var prod metric.Batch
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		prod = append(prod, parse(t, l))
	}
	subs = ch.RouteFrom(prod, 0)
	if all.C.Received.Load() != 2 || cpu.C.Received.Load() != 2 || len(subs[0]) != 2 {
		t.Fatalf("re-entry: all received %d, cpu %d, sent %v", all.C.Received.Load(), cpu.C.Received.Load(), subs)
	}

	_, err = Compile([]Spec{{Match: Exprs{`^x\.([^.]+)$`}, Aggregate: aggSpec("sum", `x.\1_sum`)}}, func(string) bool { return true })
	if err == nil || !strings.Contains(err.Error(), "it would feed itself") {
		t.Fatalf("a self-feeding aggregate: %v", err)
	}
	if _, err = Compile([]Spec{{Match: Exprs{`^x\.([^.]+)$`}, SendTo: []string{"a"}, Aggregate: aggSpec("sum", `x.\1_sum`)}}, func(string) bool { return true }); err != nil {
		t.Fatalf("with send_to it does not feed itself: %v", err)
	}
	_, err = Compile([]Spec{{Match: Exprs{`a`}, Validate: "x", Aggregate: aggSpec("sum", "s")}, {Aggregate: aggSpec("sum", "s")}, {Match: Exprs{"q"}, Aggregate: aggSpec("p95", "s")}}, func(string) bool { return true })
	for _, want := range []string{"rule 1: an aggregate rule takes match", "rule 2: aggregate needs match", `rule 3: aggregate: compute[0]: type "p95"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func sameLines(a, b string) bool {
	x, y := strings.Split(strings.TrimSpace(a), "\n"), strings.Split(strings.TrimSpace(b), "\n")
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
