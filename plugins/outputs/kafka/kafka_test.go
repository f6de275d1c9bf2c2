package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/jsonmetric"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

const topic = "metrics"

func newCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(3), kfake.SeedTopics(12, topic)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// newOutput returns a connected output to c (12 partitions, hash).
func newOutput(t *testing.T, c *kfake.Cluster, set func(*Kafka)) (*Kafka, *plugintest.Metrics) {
	t.Helper()
	k := New()
	k.Brokers = c.ListenAddrs()
	k.Topic = topic
	k.Partitions = 12
	k.Timeout = registry.Duration(10 * time.Second)
	if set != nil {
		set(k)
	}
	env, m := plugintest.Env(t, "outputs.kafka")
	if err := k.Init(env); err != nil {
		t.Fatal(err)
	}
	if err := k.Connect(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k, m
}

type record struct {
	part  int32
	value string
}

// consume reads the topic from the start until it has n records.
func consume(t *testing.T, c *kfake.Cluster, n int, opts ...kgo.Opt) []record {
	return consumeN(t, c, n, 0, opts...)
}

// consumeN reads the topic from the start until it has n records (n > 0)
// or at least nlines lines.
func consumeN(t *testing.T, c *kfake.Cluster, n, nlines int, opts ...kgo.Opt) []record {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	var out []record
	have := 0
	for (n > 0 && len(out) < n) || (n == 0 && have < nlines) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d records, want %d", len(out), n)
		}
		fs.EachError(func(_ string, _ int32, err error) { t.Logf("fetch: %v", err) })
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, record{r.Partition, string(r.Value)})
			have += strings.Count(string(r.Value), "\n") + 1
		})
	}
	// nothing more is there (a short wait for strays)
	ctx2, cancel2 := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel2()
	cl.PollFetches(ctx2).EachRecord(func(r *kgo.Record) { out = append(out, record{r.Partition, string(r.Value)}) })
	if n > 0 && len(out) != n {
		t.Fatalf("consumed %d records, want %d", len(out), n)
	}
	return out
}

// lines splits records into their lines.
func lines(recs []record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, strings.Split(r.value, "\n")...)
	}
	return out
}

// writeAll writes b until every metric is taken, as the runner retries.
func writeAll(t *testing.T, k *Kafka, b metric.Batch) (attempts int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for len(b) > 0 {
		attempts++
		err := k.Write(ctx, b)
		var pw *registry.PartialWriteError
		switch {
		case err == nil:
			return attempts
		case errors.As(err, &pw):
			b = b[pw.Written:]
		case ctx.Err() != nil:
			t.Fatalf("write: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return attempts
}

func testBatch(t *testing.T, n int) (metric.Batch, []string) {
	var ls []string
	for i := range n {
		ls = append(ls, fmt.Sprintf("servers.host%d.cpu.load %d 1700000000", i, i))
	}
	return plugintest.Batch(t, ls...), ls
}

func TestInitErrors(t *testing.T) {
	cases := []struct {
		name string
		set  func(*Kafka)
		want string
	}{
		{"no topic", func(k *Kafka) { k.Topic = "" }, "topic"},
		{"no brokers", func(k *Kafka) { k.Brokers = nil }, "brokers"},
		{"format", func(k *Kafka) { k.Format = "pickle" }, "format"},
		{"lines", func(k *Kafka) { k.LinesPerRecord = 0 }, "lines_per_record"},
		{"max bytes", func(k *Kafka) { k.MaxRecordBytes = 10 }, "max_record_bytes"},
		{"compression", func(k *Kafka) { k.Compression = "brotli" }, "compression"},
		{"acks", func(k *Kafka) { k.Acks = "some" }, "acks"},
		{"idempotent leader", func(k *Kafka) { k.Acks = "leader" }, "idempotent"},
		{"partitioner", func(k *Kafka) { k.Partitioner = "sticky" }, "partitioner"},
		{"no partitions", func(k *Kafka) { k.Partitions = 0 }, "partitions"},
		{"partitions rr", func(k *Kafka) { k.Partitioner = "round_robin" }, "partitions"},
		{"hash", func(k *Kafka) { k.Hash = "md5" }, "hash"},
		{"hash statsd", func(k *Kafka) { k.Hash = "statsd" }, "hash"},
		{"collision", func(k *Kafka) { k.Hash = "carbon_ch"; k.Collision = "x" }, "collision"},
		{"timeout", func(k *Kafka) { k.Timeout = 0 }, "timeout"},
		{"sasl", func(k *Kafka) { k.SASLMechanism = "GSSAPI" }, "sasl_mechanism"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := New()
			k.Brokers = []string{"127.0.0.1:9092"}
			k.Topic = topic
			k.Partitions = 12
			c.set(k)
			env, _ := plugintest.Env(t, "outputs.kafka")
			err := k.Init(env)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Init: %v, want an error about %s", err, c.want)
			}
		})
	}
	k := New()
	k.Brokers, k.Topic, k.Partitions, k.Acks, k.Idempotent = []string{"127.0.0.1:9092"}, topic, 3, "none", false
	env, _ := plugintest.Env(t, "outputs.kafka")
	if err := k.Init(env); err != nil {
		t.Fatalf("acks none without idempotence: %v", err)
	}
}

func TestSample(t *testing.T) {
	k := New()
	if err := plugintest.DecodeSample(sample, "outputs", "kafka", k); err != nil {
		t.Fatal(err)
	}
	env, _ := plugintest.Env(t, "outputs.kafka")
	if err := k.Init(env); err != nil {
		t.Fatal(err)
	}
	d := New()
	if k.Format != d.Format || k.LinesPerRecord != d.LinesPerRecord || k.MaxRecordBytes != d.MaxRecordBytes ||
		k.Compression != d.Compression || k.Acks != d.Acks || k.Idempotent != d.Idempotent || k.Hash != d.Hash ||
		k.Timeout != d.Timeout || k.ClientID != d.ClientID || k.DialTimeout != d.DialTimeout {
		t.Errorf("sample.toml's values differ from the defaults: %+v", k)
	}
}

// TestFormats: each format's records read back into the metrics written.
func TestFormats(t *testing.T) {
	in := []string{
		"servers.a.cpu 0.5 1700000000",
		"disk.used;dc=par 3 1700000001",
		"statsd:api.hits:1|c|@0.1",
		"statsd:queue:-2|g|#env:prod",
		"statsd:users:u42|s",
		"statsd:_e{1,1}:a|b", // opaque: only statsd carries it (and here it parses as no valid line)
	}
	want := map[string][]string{
		"graphite": {"servers.a.cpu 0.5 1700000000", "disk.used;dc=par 3 1700000001", "api.hits 1 ", "queue;env=prod -2 ", "<refused>", "<refused>"},
		"statsd":   {"servers.a.cpu:0.5|g", "disk.used:3|g|#dc:par", "api.hits:1|c|@0.1", "queue:-2|g|#env:prod", "users:u42|s", "_e{1,1}:a|b"},
		"json":     {"servers.a.cpu 0.5 1700000000", "disk.used;dc=par 3 1700000001", "api.hits:1|c|@0.1", "queue:-2|g|#env:prod", "users:u42|s", "<refused>"},
	}
	for _, format := range []string{"graphite", "statsd", "json"} {
		t.Run(format, func(t *testing.T) {
			c := newCluster(t)
			k, m := newOutput(t, c, func(k *Kafka) { k.Format = format })
			b := plugintest.Batch(t, in[:5]...)
			var op metric.Metric
			if err := statsd.ParseOpaque([]byte("_e{1,1}:a|b"), &op); err != nil {
				t.Fatal(err)
			}
			b = append(b, op)
			nrefused := 0
			for _, w := range want[format] {
				if w == "<refused>" {
					nrefused++
				}
			}
			err := k.Write(t.Context(), b)
			var pr registry.PartlyRejected
			if nrefused == 0 && err != nil {
				t.Fatalf("Write: %v", err)
			}
			if nrefused > 0 && (!errors.As(err, &pr) || !errors.Is(err, registry.ErrRejected) || pr.Rejected() != nrefused) {
				t.Fatalf("Write: %v, want %d rejected", err, nrefused)
			}
			if got := m.Get("conversion_refused_total"); got != uint64(nrefused) {
				t.Errorf("conversion_refused_total = %d", got)
			}
			recs := consume(t, c, len(b)-nrefused)
			var got []string
			for _, l := range lines(recs) {
				switch format {
				case "json":
					var mm metric.Metric
					if _, err := jsonmetric.Parse([]byte(l), &mm, nil); err != nil {
						t.Fatalf("%s: %v", l, err)
					}
					l = string(mm.Line())
				case "graphite":
					var mm metric.Metric
					if err := graphite.Parse([]byte(l), &mm); err != nil {
						t.Fatalf("%s: %v", l, err)
					}
					if strings.HasSuffix(l, " 1700000000") || strings.HasSuffix(l, " 1700000001") {
						break
					}
					l = l[:strings.LastIndexByte(l, ' ')+1] // stamped now
				case "statsd":
					var mm metric.Metric
					if err := statsd.Parse([]byte(l), &mm); err != nil && l != "_e{1,1}:a|b" {
						t.Fatalf("%s: %v", l, err)
					}
				}
				got = append(got, l)
			}
			var w []string
			for _, s := range want[format] {
				if s != "<refused>" {
					w = append(w, s)
				}
			}
			slices.Sort(got)
			slices.Sort(w)
			if !slices.Equal(got, w) {
				t.Fatalf("read back\n%q\nwant\n%q", got, w)
			}
			if m.Get("records_total") != uint64(len(recs)) {
				t.Errorf("records_total = %d, want %d", m.Get("records_total"), len(recs))
			}
		})
	}
}

// TestPlacement: every metric lands on the partition Place names, and
// several partitions are used.
func TestPlacement(t *testing.T) {
	for _, lpr := range []int{1, 7} {
		t.Run(fmt.Sprint("lines_per_record=", lpr), func(t *testing.T) {
			c := newCluster(t)
			k, _ := newOutput(t, c, func(k *Kafka) { k.LinesPerRecord = lpr })
			b, in := testBatch(t, 300)
			if err := k.Write(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			place := map[string]string{}
			for i := range b {
				place[in[i]] = k.Place(&b[i])
			}
			nrec := 0
			perPart := map[int32][]int{}
			for i := range b {
				var p int32
				fmt.Sscanf(place[in[i]], topic+"[%d]", &p)
				perPart[p] = append(perPart[p], i)
			}
			for _, ms := range perPart {
				nrec += (len(ms) + lpr - 1) / lpr
			}
			recs := consume(t, c, nrec)
			seen := map[int32][]string{}
			for _, r := range recs {
				ls := strings.Split(r.value, "\n")
				if len(ls) > lpr {
					t.Fatalf("record of %d lines", len(ls))
				}
				for _, l := range ls {
					if want := fmt.Sprintf("%s[%d]", topic, r.part); place[l] != want {
						t.Fatalf("%q on %s, Place says %s", l, want, place[l])
					}
					seen[r.part] = append(seen[r.part], l)
				}
			}
			if len(seen) < 10 {
				t.Errorf("only %d partitions used", len(seen))
			}
			// batch order is kept within each partition
			for p, ms := range perPart {
				var w []string
				for _, i := range ms {
					w = append(w, in[i])
				}
				if !slices.Equal(seen[p], w) {
					t.Errorf("partition %d: %q, want %q", p, seen[p], w)
				}
			}
		})
	}
}

// TestMaxRecordBytes: records never exceed it; a metric longer is refused.
func TestMaxRecordBytes(t *testing.T) {
	c := newCluster(t)
	k, m := newOutput(t, c, func(k *Kafka) {
		k.LinesPerRecord = 100
		k.MaxRecordBytes = 120
		k.Partitioner, k.Partitions = "round_robin", 0
	})
	ls := []string{
		"a.b.c 1 1700000000", "a.b.d 2 1700000000", "a.b.e 3 1700000000", "a.b.f 4 1700000000",
		"a.b.g 5 1700000000", "a.b.h 6 1700000000", strings.Repeat("x", 120) + " 7 1700000000", "a.b.i 8 1700000000",
	}
	b := plugintest.Batch(t, ls...)
	err := k.Write(t.Context(), b)
	var pr registry.PartlyRejected
	if !errors.As(err, &pr) || pr.Rejected() != 1 || !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Write: %v, want one too large", err)
	}
	if m.Get("conversion_refused_total") != 1 {
		t.Errorf("conversion_refused_total = %d", m.Get("conversion_refused_total"))
	}
	// 7 lines of 18 bytes + '\n': 6 per 120-byte record
	recs := consume(t, c, 2)
	total := 0
	for _, r := range recs {
		if len(r.value) > 120 {
			t.Errorf("record of %d bytes", len(r.value))
		}
		total += strings.Count(r.value, "\n") + 1
	}
	if total != 7 {
		t.Errorf("%d lines, want 7", total)
	}
}

func TestCompression(t *testing.T) {
	for _, comp := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			c := newCluster(t)
			k, _ := newOutput(t, c, func(k *Kafka) { k.Compression = comp; k.LinesPerRecord = 50 })
			b, in := testBatch(t, 500)
			if err := k.Write(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			got := lines(consumeN(t, c, 0, len(in)))
			slices.Sort(got)
			slices.Sort(in)
			if !slices.Equal(got, in) {
				t.Fatal("lines differ")
			}
		})
	}
}

func TestRoundRobin(t *testing.T) {
	c := newCluster(t)
	k, _ := newOutput(t, c, func(k *Kafka) { k.Partitioner, k.Partitions = "round_robin", 0 })
	b, _ := testBatch(t, 100)
	if err := k.Write(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	b2, _ := testBatch(t, 20)
	if err := k.Write(t.Context(), b2); err != nil {
		t.Fatal(err)
	}
	n := map[int32]int{}
	for _, r := range consume(t, c, 120) {
		n[r.part]++
	}
	for p := range int32(12) {
		if n[p] != 10 {
			t.Errorf("partition %d: %d records, want 10 (%v)", p, n[p], n)
		}
	}
	if got := k.Place(&b[0]); got != topic+"[*]" {
		t.Errorf("Place = %q", got)
	}
}

// TestFaults: a broker removed or produce errors mid-run; nothing is lost.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	t.Run("retriable", func(t *testing.T) {
		// the client retries by itself: one Write, no duplicates
		c := newCluster(t)
		k, m := newOutput(t, c, nil)
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: 3})
		b, in := testBatch(t, 400)
		if err := k.Write(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		got := lines(consume(t, c, 400))
		slices.Sort(got)
		slices.Sort(in)
		if !slices.Equal(got, in) {
			t.Fatal("lines lost or duplicated")
		}
		if m.Get("produce_errors_total") != 0 {
			t.Errorf("produce_errors_total = %d", m.Get("produce_errors_total"))
		}
	})
	t.Run("failed", func(t *testing.T) {
		// a record fails: Write says how far it got, the rest is written again
		c := newCluster(t)
		k, m := newOutput(t, c, nil)
		b, in := testBatch(t, 400)
		// a partition of a metric in the middle of the batch
		p := int32(k.partition(&b[200]))
		c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Partitions: []int32{p}, Err: kerr.PolicyViolation})
		err := k.Write(t.Context(), b)
		if err == nil {
			t.Fatal("Write did not fail")
		}
		var pw *registry.PartialWriteError
		written := 0
		if errors.As(err, &pw) {
			written = pw.Written
		}
		for i := range written {
			if k.partition(&b[i]) == int(p) {
				t.Fatalf("Written %d includes metric %d of the failed partition", written, i)
			}
		}
		if written <= 0 || written > 200 {
			t.Errorf("Written = %d, want the metrics before the first of partition %d", written, p)
		}
		if m.Get("produce_errors_total") == 0 {
			t.Error("produce_errors_total = 0")
		}
		writeAll(t, k, b[written:])
		got := map[string]int{}
		recs := consume(t, c, 400+countAfter(k, b, written, p))
		for _, l := range lines(recs) {
			got[l]++
		}
		for i, l := range in {
			if got[l] == 0 {
				t.Fatalf("%q lost", l)
			}
			if got[l] > 1 && (i < written || k.partition(&b[i]) == int(p)) {
				t.Fatalf("%q written %d times", l, got[l])
			}
		}
	})
	t.Run("broker removed", func(t *testing.T) {
		c := newCluster(t)
		k, _ := newOutput(t, c, func(k *Kafka) { k.LinesPerRecord = 10 })
		b, in := testBatch(t, 3000)
		attempts := 0
		for i := 0; i < len(b); i += 300 {
			if i == 1500 {
				if err := c.RemoveNode(1); err != nil {
					t.Fatal(err)
				}
			}
			attempts += writeAll(t, k, b[i:i+300])
		}
		got := map[string]int{}
		for _, l := range lines(consumeN(t, c, 0, len(in))) {
			got[l]++
		}
		for _, l := range in {
			if got[l] == 0 {
				t.Fatalf("%q lost", l)
			}
			if got[l] > 1 && attempts == 10 {
				t.Fatalf("%q written %d times, with no Write failed", l, got[l])
			}
		}
		t.Logf("%d writes for 10 batches", attempts)
	})
}

// countAfter counts the metrics after written that were acknowledged (in
// other partitions than p): they are written twice.
func countAfter(k *Kafka, b metric.Batch, written int, p int32) int {
	n := 0
	for i := written; i < len(b); i++ {
		if k.partition(&b[i]) != int(p) {
			n++
		}
	}
	return n
}

func TestSASL(t *testing.T) {
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			c := newCluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "router", "s3cret"))
			k, _ := newOutput(t, c, func(k *Kafka) {
				k.SASLMechanism, k.SASLUsername, k.SASLPassword = mech, "router", "s3cret"
			})
			b, _ := testBatch(t, 10)
			if err := k.Write(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			var auth kgo.Opt
			switch mech {
			case "PLAIN":
				auth = kgo.SASL(plain.Auth{User: "router", Pass: "s3cret"}.AsMechanism())
			case "SCRAM-SHA-256":
				auth = kgo.SASL(scram.Auth{User: "router", Pass: "s3cret"}.AsSha256Mechanism())
			default:
				auth = kgo.SASL(scram.Auth{User: "router", Pass: "s3cret"}.AsSha512Mechanism())
			}
			consume(t, c, 10, auth)

			// a wrong password fails Connect
			bad := New()
			bad.Brokers, bad.Topic, bad.Partitions = c.ListenAddrs(), topic, 12
			bad.SASLMechanism, bad.SASLUsername, bad.SASLPassword = mech, "router", "wrong"
			bad.DialTimeout = registry.Duration(500 * time.Millisecond)
			env, _ := plugintest.Env(t, "outputs.kafka")
			if err := bad.Init(env); err != nil {
				t.Fatal(err)
			}
			if err := bad.Connect(t.Context()); !errors.Is(err, registry.ErrNotConnected) {
				bad.Close()
				t.Fatalf("Connect with a wrong password: %v, want ErrNotConnected", err)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	pki := plugintest.NewPKI(t, "kafka")
	srv := pki.Leaf(t, "broker")
	c := newCluster(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{srv.TLS}}))
	k, _ := newOutput(t, c, func(k *Kafka) { k.TLSCA = pki.CA })
	b, _ := testBatch(t, 10)
	if err := k.Write(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	consume(t, c, 10, kgo.DialTLSConfig(&tls.Config{RootCAs: pki.Pool}))

	// without the CA, Connect fails
	bad := New()
	bad.Brokers, bad.Topic, bad.Partitions, bad.TLSEnable = c.ListenAddrs(), topic, 12, true
	bad.DialTimeout = registry.Duration(500 * time.Millisecond)
	env, _ := plugintest.Env(t, "outputs.kafka")
	if err := bad.Init(env); err != nil {
		t.Fatal(err)
	}
	if err := bad.Connect(t.Context()); err == nil {
		bad.Close()
		t.Fatal("Connect without the CA succeeded")
	}
}

// TestConnect: no broker answers, or the topic has fewer partitions.
func TestConnect(t *testing.T) {
	k := New()
	k.Brokers, k.Topic, k.Partitions = []string{plugintest.FreeAddr(t)}, topic, 12
	k.DialTimeout = registry.Duration(500 * time.Millisecond)
	env, _ := plugintest.Env(t, "outputs.kafka")
	if err := k.Init(env); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := k.Connect(t.Context())
	if !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("Connect: %v, want ErrNotConnected", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Connect took %v", d)
	}
	b, _ := testBatch(t, 1)
	if err := k.Write(t.Context(), b); !errors.Is(err, registry.ErrNotConnected) {
		t.Errorf("Write: %v", err)
	}

	c := newCluster(t)
	few := New()
	few.Brokers, few.Topic, few.Partitions = c.ListenAddrs(), topic, 16
	if err := few.Init(env); err != nil {
		t.Fatal(err)
	}
	if err := few.Connect(t.Context()); !errors.Is(err, registry.ErrNotConnected) || !strings.Contains(err.Error(), "12 partitions") {
		t.Fatalf("Connect: %v", err)
	}
	many, _ := newOutput(t, c, func(k *Kafka) { k.Partitions = 8 })
	b, _ = testBatch(t, 100)
	if err := many.Write(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	for _, r := range consume(t, c, 100) {
		if r.part >= 8 {
			t.Fatalf("record on partition %d", r.part)
		}
	}
	unknown := New()
	unknown.Brokers, unknown.Topic, unknown.Partitions = c.ListenAddrs(), "nope", 12
	if err := unknown.Init(env); err != nil {
		t.Fatal(err)
	}
	if err := unknown.Connect(t.Context()); !errors.Is(err, registry.ErrNotConnected) {
		t.Fatalf("Connect to a missing topic: %v", err)
	}
}

// TestWriteCancelled: Write returns when ctx ends.
func TestWriteCancelled(t *testing.T) {
	c := newCluster(t)
	k, _ := newOutput(t, c, nil)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		time.Sleep(50 * time.Millisecond)
		return nil, errors.New("no"), true
	})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	b, _ := testBatch(t, 10)
	start := time.Now()
	if err := k.Write(ctx, b); err == nil {
		t.Fatal("Write succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Write took %v after cancel", d)
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, format := range []string{"graphite", "statsd", "json"} {
		for _, lpr := range []int{1, 100} {
			b.Run(fmt.Sprintf("%s/lines=%d", format, lpr), func(b *testing.B) {
				k := New()
				k.Brokers, k.Topic, k.Partitions, k.Format, k.LinesPerRecord = []string{"127.0.0.1:9092"}, topic, 12, format, lpr
				if err := k.Init(registry.Env{}); err != nil {
					b.Fatal(err)
				}
				ls := make([]string, 1000)
				for i := range ls {
					ls[i] = fmt.Sprintf("statsd:servers.host%d.requests:%d|c|#env:prod", i, i)
				}
				batch := plugintest.Batch(b, ls...)
				b.ReportAllocs()
				for b.Loop() {
					k.enc.encode(batch, k.nparts, k.partition)
				}
				b.ReportMetric(float64(len(k.enc.buf)), "bytes/batch")
			})
		}
	}
}

// TestKcat: librdkafka (Debian's kcat) reads every compression codec's
// records as written.
func TestKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("kcat not installed")
		}
		t.Skip("kcat not installed")
	}
	for _, comp := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		t.Run(comp, func(t *testing.T) {
			c := newCluster(t)
			k, _ := newOutput(t, c, func(k *Kafka) { k.Compression = comp; k.LinesPerRecord = 20; k.Format = "json" })
			b, _ := testBatch(t, 100)
			if err := k.Write(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, kcat, "-C", "-b", strings.Join(c.ListenAddrs(), ","), "-t", topic,
				"-o", "beginning", "-e", "-q", "-f", "\x1e%p %s").Output()
			if err != nil {
				t.Fatalf("kcat: %v\n%s", err, out)
			}
			n := 0
			for _, rec := range strings.Split(string(out), "\x1e")[1:] {
				p, value, _ := strings.Cut(rec, " ")
				for _, obj := range strings.Split(value, "\n") {
					var m metric.Metric
					if _, err := jsonmetric.Parse([]byte(obj), &m, nil); err != nil {
						t.Fatalf("%q: %v", obj, err)
					}
					if want := k.Place(&m); want != topic+"["+p+"]" {
						t.Fatalf("%s on partition %s, Place says %s", m.Line(), p, want)
					}
					n++
				}
			}
			if n != 100 {
				t.Fatalf("kcat read %d metrics, want 100", n)
			}
		})
	}
}

// BenchmarkWrite produces batches into kfake (whose own CPU dominates):
// it compares batch sizes and records packing end to end.
func BenchmarkWrite(b *testing.B) {
	for _, size := range []int{1000, 10000} {
		for _, lpr := range []int{1, 100} {
			b.Run(fmt.Sprintf("batch=%d/lines=%d", size, lpr), func(b *testing.B) {
				c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(12, topic))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				k := New()
				k.Brokers, k.Topic, k.Partitions, k.LinesPerRecord = c.ListenAddrs(), topic, 12, lpr
				if err := k.Init(registry.Env{}); err != nil {
					b.Fatal(err)
				}
				if err := k.Connect(b.Context()); err != nil {
					b.Fatal(err)
				}
				defer k.Close()
				ls := make([]string, size)
				for i := range ls {
					ls[i] = fmt.Sprintf("servers.host%d.cpu.load %d 1700000000", i, i)
				}
				batch := plugintest.Batch(b, ls...)
				b.ReportAllocs()
				for b.Loop() {
					if err := k.Write(b.Context(), batch); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds(), "metrics/s")
			})
		}
	}
}
