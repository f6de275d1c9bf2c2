package kafka

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/jsonmetric"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

const topic = "metrics"

func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(3), kfake.SeedTopics(12, topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// produce writes lines, perRecord of them per record ('\n' separated).
func produce(t testing.TB, addrs []string, lines []string, perRecord int, opts ...kgo.Opt) {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var rs []*kgo.Record
	for i := 0; i < len(lines); i += perRecord {
		j := min(i+perRecord, len(lines))
		rs = append(rs, &kgo.Record{Value: []byte(strings.Join(lines[i:j], "\n"))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// emitter records the raw lines of the batches it accepts. fail, if set,
// decides per call whether Emit refuses the batch (and with what); block
// makes Emit wait until it is closed or the Emit's ctx ends.
type emitter struct {
	mu      sync.Mutex
	lines   []string
	calls   int
	fail    func(call int, ctx context.Context) error
	block   chan struct{}
	blocked chan struct{} // receives once per blocked call
}

func (e *emitter) Emit(ctx context.Context, b metric.Batch) error {
	e.mu.Lock()
	e.calls++
	call := e.calls
	e.mu.Unlock()
	if e.block != nil {
		select {
		case e.blocked <- struct{}{}:
		default:
		}
		select {
		case <-e.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if e.fail != nil {
		if err := e.fail(call, ctx); err != nil {
			return err
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range b {
		e.lines = append(e.lines, string(b[i].Raw()))
	}
	return nil
}

func (e *emitter) got() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.lines...)
}

func (e *emitter) wait(t testing.TB, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(e.got()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d lines, want %d, within %v", len(e.got()), n, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newInput(t testing.TB, addrs []string, set func(*Kafka)) (*Kafka, *plugintest.Metrics) {
	t.Helper()
	p, ok := registry.Default.Lookup(registry.Inputs, "kafka")
	if !ok {
		t.Fatal("inputs.kafka not registered")
	}
	k := p.New().(*Kafka)
	k.Brokers = addrs
	k.Topics = []string{topic}
	k.SessionTimeout = registry.Duration(6 * time.Second)
	k.RebalanceTimeout = registry.Duration(6 * time.Second)
	if set != nil {
		set(k)
	}
	env, m := plugintest.Env(t, "inputs.kafka")
	if err := k.Init(env); err != nil {
		t.Fatal(err)
	}
	return k, m
}

// start runs k until the returned stop is called; stop waits for Run.
func start(t testing.TB, k *Kafka, out registry.Emitter) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx, out) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Error("Run did not return within 20s of the cancellation")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func names(n int, prefix string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s.%d %d 1700000000", prefix, i, i)
	}
	return out
}

// counts returns how often each line was delivered.
func counts(lines ...[]string) map[string]int {
	c := map[string]int{}
	for _, ls := range lines {
		for _, l := range ls {
			c[l]++
		}
	}
	return c
}

func checkAll(t testing.TB, want []string, c map[string]int) (dups int) {
	t.Helper()
	missing := 0
	for _, l := range want {
		if c[l] == 0 {
			missing++
		}
		if c[l] > 1 {
			dups += c[l] - 1
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d lines never delivered", missing, len(want))
	}
	if len(c) != len(want) {
		t.Fatalf("%d distinct lines delivered, want %d", len(c), len(want))
	}
	return dups
}

func TestFormats(t *testing.T) {
	// one topic per format, of one partition: the order of records is kept
	c := newCluster(t, kfake.SeedTopics(1, "graphite", "statsd", "json"))
	jsonLine := func(line string) string {
		var m metric.Metric
		if err := graphite.Parse([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		b, err := jsonmetric.Append(nil, &m)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name      string
		strict    bool
		format    string
		in        []string // record values
		want      []string // raw lines delivered
		errs      uint64
		wantLines uint64
	}{
		{"graphite", false, "graphite",
			[]string{"a.b 1 1700000000\r\nc.d 2 1700000001\n\nbad line\n", "e.f 3 1700000002", "x 1\n\r\n"},
			[]string{"a.b 1 1700000000", "c.d 2 1700000001", "e.f 3 1700000002"}, 2, 5},
		{"statsd", false, "statsd",
			[]string{"a:1|c\nb:2|g|@0.5\r\n", "t:12|ms|#env:prod\n_e{1,1}:x|y", "broken\n"},
			[]string{"a:1|c", "b:2|g|@0.5", "t:12|ms|#env:prod", "_e{1,1}:x|y", "broken"}, 0, 5},
		{"statsd_strict", true, "statsd",
			[]string{"a:1|c\nb:2|g|@0.5\r\n", "t:12|ms|#env:prod\n_e{1,1}:x|y", "broken\n"},
			[]string{"a:1|c", "b:2|g|@0.5", "t:12|ms|#env:prod"}, 2, 5},
		{"json", false, "json",
			[]string{jsonLine("a.b 1 1700000000") + "\n" + jsonLine("c.d;dc=par 2 1700000001") + "\r\n", "{\"name\":1}\n" + jsonLine("e.f 3 1700000002")},
			[]string{"a.b 1 1700000000", "c.d;dc=par 2 1700000001", "e.f 3 1700000002"}, 1, 4},
	}
	produced := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic(tc.format))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			for _, v := range tc.in {
				if produced[tc.format] {
					break
				}
				if err := cl.ProduceSync(t.Context(), &kgo.Record{Value: []byte(v), Partition: 0}).FirstErr(); err != nil {
					t.Fatal(err)
				}
			}
			produced[tc.format] = true
			k, m := newInput(t, c.ListenAddrs(), func(k *Kafka) {
				k.Format, k.Strict, k.Topics, k.Group = tc.format, tc.strict, []string{tc.format}, tc.name
			})
			e := &emitter{}
			stop := start(t, k, e)
			e.wait(t, len(tc.want), 20*time.Second)
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if got := e.got(); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if n := m.Get("parse_errors_total"); n != tc.errs {
				t.Errorf("parse_errors_total = %d, want %d", n, tc.errs)
			}
			if n := m.Get("lines_total"); n != tc.wantLines {
				t.Errorf("lines_total = %d, want %d", n, tc.wantLines)
			}
			if n := m.Get("records_total"); n != uint64(len(tc.in)) {
				t.Errorf("records_total = %d, want %d", n, len(tc.in))
			}
		})
	}
}

// TestExactCounts: 100k lines, in records of 1 to 100 lines, arrive exactly
// once, the counters agree, and the lag gauge ends at 0.
func TestExactCounts(t *testing.T) {
	if testing.Short() {
		t.Skip("100k lines")
	}
	c := newCluster(t)
	want := names(100000, "exact")
	produce(t, c.ListenAddrs(), want[:1000], 1)
	produce(t, c.ListenAddrs(), want[1000:], 100)
	k, m := newInput(t, c.ListenAddrs(), func(k *Kafka) { k.MaxPollRecords = 500 })
	e := &emitter{}
	stop := start(t, k, e)
	e.wait(t, len(want), 25*time.Second)
	waitGauge(t, func() bool { return k.lag.value() == 0 }, "lag 0 after catch-up")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if d := checkAll(t, want, counts(e.got())); d != 0 {
		t.Fatalf("%d duplicates", d)
	}
	if m.Get("lines_total") != 100000 || m.Get("records_total") != 1000+990 || m.Get("parse_errors_total") != 0 {
		t.Fatalf("lines %d records %d parse errors %d", m.Get("lines_total"), m.Get("records_total"), m.Get("parse_errors_total"))
	}
}

func waitGauge(t testing.TB, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNoCommitWithoutEmit: a batch Emit refused is not committed: a new
// member of the group reads every record again; a batch Emit accepted is
// committed and not read again.
func TestNoCommitWithoutEmit(t *testing.T) {
	c := newCluster(t)
	want := names(2000, "nocommit")
	produce(t, c.ListenAddrs(), want, 10)

	// first member: Emit fails at once, as when the agent gives up at shutdown
	k1, _ := newInput(t, c.ListenAddrs(), nil)
	e1 := &emitter{fail: func(int, context.Context) error { return registry.ErrStopped }}
	ctx := t.Context()
	if err := k1.Run(ctx, e1); err != nil {
		t.Fatalf("Run after ErrStopped: %v", err)
	}
	if e1.calls == 0 || len(e1.got()) != 0 {
		t.Fatalf("first member: %d calls, %d lines accepted", e1.calls, len(e1.got()))
	}

	// second member: Emit blocks, then the member is stopped and the
	// blocked batch is refused on the uncancelled context too
	k2, _ := newInput(t, c.ListenAddrs(), nil)
	e2 := &emitter{block: make(chan struct{}), blocked: make(chan struct{}, 1),
		fail: func(int, context.Context) error { return registry.ErrStopped }}
	stop2 := start(t, k2, e2)
	select {
	case <-e2.blocked:
	case <-time.After(20 * time.Second):
		t.Fatal("second member got no records: the first committed what it never emitted")
	}
	go func() { time.Sleep(100 * time.Millisecond); close(e2.block) }()
	if err := stop2(); err != nil {
		t.Fatal(err)
	}

	// third member: reads all, commits
	k3, _ := newInput(t, c.ListenAddrs(), nil)
	e3 := &emitter{}
	stop3 := start(t, k3, e3)
	e3.wait(t, len(want), 20*time.Second)
	stop3()
	if d := checkAll(t, want, counts(e3.got())); d != 0 {
		t.Fatalf("%d duplicates", d)
	}

	// fourth member: nothing left to read
	more := names(10, "after")
	produce(t, c.ListenAddrs(), more, 1)
	k4, _ := newInput(t, c.ListenAddrs(), nil)
	e4 := &emitter{}
	stop4 := start(t, k4, e4)
	e4.wait(t, len(more), 20*time.Second)
	stop4()
	checkAll(t, more, counts(e4.got()))
}

// TestRestart: a member stopped mid-run and a second one started: together
// they deliver everything, and nothing twice (the first committed what it
// emitted, the batch in flight at shutdown included).
func TestRestart(t *testing.T) {
	c := newCluster(t)
	want := names(30000, "restart")
	produce(t, c.ListenAddrs(), want, 50)
	k1, _ := newInput(t, c.ListenAddrs(), func(k *Kafka) { k.MaxPollRecords = 20 })
	// the first member is stopped while one of its Emits waits
	e1 := &emitter{}
	stopping := make(chan struct{})
	e1.fail = func(call int, ctx context.Context) error {
		if call == 5 {
			close(stopping)
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}
	stop1 := start(t, k1, e1)
	<-stopping
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	if e1.calls != 6 {
		t.Fatalf("first member: %d Emits, want 6 (the one cut by the cancellation repeated without it)", e1.calls)
	}
	first := e1.got()
	if len(first) == 0 || len(first) >= len(want) {
		t.Fatalf("first member delivered %d lines", len(first))
	}
	k2, _ := newInput(t, c.ListenAddrs(), nil)
	e2 := &emitter{}
	stop2 := start(t, k2, e2)
	e2.wait(t, len(want)-len(first), 20*time.Second)
	stop2()
	if d := checkAll(t, want, counts(first, e2.got())); d != 0 {
		t.Fatalf("%d duplicates after a clean stop", d)
	}
}

// TestRebalance: a second member joins while records are produced, the
// first then leaves: nothing is lost.
func TestRebalance(t *testing.T) {
	if testing.Short() {
		t.Skip("rebalances")
	}
	c := newCluster(t)
	want := names(40000, "rebalance")
	k1, _ := newInput(t, c.ListenAddrs(), func(k *Kafka) { k.MaxPollRecords = 100 })
	e1, e2 := &emitter{}, &emitter{}
	stop1 := start(t, k1, e1)
	produce(t, c.ListenAddrs(), want[:10000], 10)
	k2, _ := newInput(t, c.ListenAddrs(), func(k *Kafka) { k.MaxPollRecords = 100 })
	stop2 := start(t, k2, e2)
	for i := 10000; i < 30000; i += 2000 {
		produce(t, c.ListenAddrs(), want[i:i+2000], 10)
	}
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	produce(t, c.ListenAddrs(), want[30000:], 10)
	deadline := time.Now().Add(25 * time.Second)
	for len(counts(e1.got(), e2.got())) < len(want) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	stop2()
	d := checkAll(t, want, counts(e1.got(), e2.got()))
	t.Logf("%d duplicates (uncommitted records read again after the rebalances)", d)
	if len(e2.got()) == 0 {
		t.Fatal("second member got nothing")
	}
}

// TestLag: the lag gauge is above 0 while an Emit blocks, and 0 once the
// member caught up.
func TestLag(t *testing.T) {
	c := newCluster(t)
	want := names(5000, "lag")
	produce(t, c.ListenAddrs(), want, 10)
	k, _ := newInput(t, c.ListenAddrs(), func(k *Kafka) { k.MaxPollRecords = 10 })
	e := &emitter{block: make(chan struct{}), blocked: make(chan struct{}, 1)}
	start(t, k, e)
	<-e.blocked
	if k.lag.value() <= 0 {
		t.Fatalf("lag %v while an Emit blocks", k.lag.value())
	}
	close(e.block)
	e.wait(t, len(want), 20*time.Second)
	waitGauge(t, func() bool { return k.lag.value() == 0 }, "lag 0")
}

// TestStartLatest: a new group with start_offset = "latest" skips what the
// topic held.
func TestStartLatest(t *testing.T) {
	c := newCluster(t)
	produce(t, c.ListenAddrs(), names(1000, "old"), 10)
	k, _ := newInput(t, c.ListenAddrs(), func(k *Kafka) { k.StartOffset = "latest" })
	e := &emitter{}
	start(t, k, e)
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; len(e.got()) == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("nothing new delivered")
		}
		produce(t, c.ListenAddrs(), []string{fmt.Sprintf("new.%d 1 1700000000", i)}, 1)
		time.Sleep(200 * time.Millisecond)
	}
	for _, l := range e.got() {
		if strings.HasPrefix(l, "old.") {
			t.Fatalf("old line delivered: %q", l)
		}
	}
}

func TestSASLPlain(t *testing.T) {
	c := newCluster(t, kfake.EnableSASL(), kfake.Superuser("PLAIN", "router", "s3cret"))
	want := names(100, "sasl")
	produce(t, c.ListenAddrs(), want, 10, kgo.SASL(plain.Auth{User: "router", Pass: "s3cret"}.AsMechanism()))
	k, _ := newInput(t, c.ListenAddrs(), func(k *Kafka) {
		k.SASLMechanism, k.SASLUsername, k.SASLPassword = "PLAIN", "router", "s3cret"
	})
	e := &emitter{}
	stop := start(t, k, e)
	e.wait(t, len(want), 20*time.Second)
	stop()
	checkAll(t, want, counts(e.got()))
}

func TestTLS(t *testing.T) {
	pki := plugintest.NewPKI(t, "kafka")
	leaf := pki.Leaf(t, "broker")
	c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{leaf.TLS}}))
	want := names(100, "tls")
	produce(t, c.ListenAddrs(), want, 10, kgo.DialTLSConfig(&tls.Config{RootCAs: pki.Pool}))
	k, _ := newInput(t, c.ListenAddrs(), func(k *Kafka) { k.TLSCA = pki.CA })
	e := &emitter{}
	stop := start(t, k, e)
	e.wait(t, len(want), 20*time.Second)
	stop()
	checkAll(t, want, counts(e.got()))
}

func TestInitErrors(t *testing.T) {
	tests := []struct {
		name string
		set  func(*Kafka)
		want string
	}{
		{"no topics", func(k *Kafka) { k.Topics = nil }, "topics: at least one topic"},
		{"no group", func(k *Kafka) { k.Group = "" }, "group: must not be empty"},
		{"format", func(k *Kafka) { k.Format = "pickle" }, `format "pickle"`},
		{"strict", func(k *Kafka) { k.Strict = true }, "strict: only for format"},
		{"start", func(k *Kafka) { k.StartOffset = "middle" }, "start_offset"},
		{"poll", func(k *Kafka) { k.MaxPollRecords = 0 }, "max_poll_records"},
		{"fetch", func(k *Kafka) { k.FetchMaxBytes = 1 << 30 }, "fetch_max_bytes"},
		{"brokers", func(k *Kafka) { k.Brokers = nil }, "brokers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := registry.Default.Lookup(registry.Inputs, "kafka")
			k := p.New().(*Kafka)
			k.Brokers, k.Topics = []string{"127.0.0.1:9092"}, []string{"t"}
			tc.set(k)
			env, _ := plugintest.Env(t, "inputs.kafka")
			err := k.Init(env)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Init: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSample(t *testing.T) {
	p, _ := registry.Default.Lookup(registry.Inputs, "kafka")
	k := p.New().(*Kafka)
	if err := plugintest.DecodeSample(sample, "inputs", "kafka", k); err != nil {
		t.Fatal(err)
	}
	env, _ := plugintest.Env(t, "inputs.kafka")
	if err := k.Init(env); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDecode: records of 100 Graphite lines into a batch.
func BenchmarkDecode(b *testing.B) {
	var rs []*kgo.Record
	lines := names(10000, "servers.host.cpu")
	for i := 0; i < len(lines); i += 100 {
		rs = append(rs, &kgo.Record{Value: []byte(strings.Join(lines[i:i+100], "\n"))})
	}
	env, _ := plugintest.Env(b, "inputs.kafka")
	p, _ := registry.Default.Lookup(registry.Inputs, "kafka")
	k := p.New().(*Kafka)
	k.Brokers, k.Topics = []string{"127.0.0.1:9092"}, []string{"t"}
	if err := k.Init(env); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(rs) * len(rs[0].Value)))
	for b.Loop() {
		batch, _ := k.dec.decode(rs)
		if len(batch) != len(lines) {
			b.Fatalf("%d metrics", len(batch))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/line")
}

// TestDecodeOwnsLines: decoded metrics do not point into the record values
// (franz-go's fetch buffers, which a queued metric would otherwise keep
// alive whole): overwriting the values after decode leaves the metrics
// intact, and a poll mostly made of malformed lines is detached to the
// size of its good lines (metric.RetainedBytes holds).
func TestDecodeOwnsLines(t *testing.T) {
	env, _ := plugintest.Env(t, "inputs.kafka")
	p, _ := registry.Default.Lookup(registry.Inputs, "kafka")
	k := p.New().(*Kafka)
	k.Brokers, k.Topics = []string{"127.0.0.1:9092"}, []string{"t"}
	if err := k.Init(env); err != nil {
		t.Fatal(err)
	}
	junk := strings.Repeat("x", 4000)
	rs := []*kgo.Record{
		{Value: []byte("a.b 1 1700000000\n" + junk)},
		{Value: []byte(junk + "\nc.d 2 1700000000")},
	}
	b, lines := k.dec.decode(rs)
	if lines != 4 || len(b) != 2 {
		t.Fatalf("lines %d, metrics %d: want 4 and 2", lines, len(b))
	}
	for _, r := range rs {
		for i := range r.Value {
			r.Value[i] = '#'
		}
	}
	if got := string(b[0].Path()) + " " + string(b[1].Path()); got != "a.b c.d" {
		t.Fatalf("paths after the record values were overwritten: %q", got)
	}
	for i := range b {
		if n := metric.Backing(b[i:i+1], rs[0].Value) + metric.Backing(b[i:i+1], rs[1].Value); n != 0 {
			t.Fatalf("metric %d points into a record value", i)
		}
	}
}
