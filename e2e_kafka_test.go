package main

// Kafka between routers: a producer router (Graphite in, outputs.kafka) and
// a consumer router (inputs.kafka, Graphite out), real binaries, against
// franz-go's in-process cluster (kfake: three brokers, twelve partitions)
// and Debian's kcat as an independent client.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/metricsrouter/router/internal/kafkatest"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// kafkaLines returns n Graphite lines over series names: line i is
// "<prefix>.<i mod series> <i> <ts>", so its value tells it apart.
func kafkaLines(prefix string, n, series int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf("%s.%d %d %d", prefix, i%series, i, 1700000000+i%600)
	}
	return lines
}

// kafkaProducer writes the config of a router that takes Graphite on in and
// writes it to topic "metrics" (12 partitions, jump_fnv1a_ch); more is
// added to the output's table.
func kafkaProducer(t *testing.T, c *kafkatest.Cluster, in, stats, more string) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
[[outputs.kafka]]
  id = "kafka"
  brokers = [%s]
  topic = "metrics"
  partitions = 12
  hash = "jump_fnv1a_ch"
  lines_per_record = 100
  retry_initial = "50ms"
  retry_max = "500ms"
%s`, stats, in, c.Brokers(), more))
}

// kafkaConsumer writes the config of a router that reads topic "metrics" in
// group "e2e" and writes Graphite to sink.
func kafkaConsumer(t *testing.T, c *kafkatest.Cluster, stats, sink, more string) string {
	t.Helper()
	return writeConfig(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.kafka]]
  brokers = [%s]
  topics = ["metrics"]
  group = "e2e"
  ## the brokers' minimum: a killed member's partitions move after 6 s
  session_timeout = "6s"
%s
[[outputs.graphite]]
  address = %q
`, stats, c.Brokers(), more, sink))
}

// readPartitions reads topic "metrics" from its start until it holds want
// lines, and returns the lines of each partition.
func readPartitions(t *testing.T, c *kafkatest.Cluster, want int) map[int32][]string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs...), kgo.ConsumeTopics("metrics"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	parts := map[int32][]string{}
	n := 0
	for n < want && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			for _, l := range strings.Split(strings.TrimRight(string(r.Value), "\n"), "\n") {
				parts[r.Partition] = append(parts[r.Partition], l)
				n++
			}
		})
	}
	if n != want {
		t.Fatalf("topic holds %d lines, want %d", n, want)
	}
	return parts
}

// topicLines reads every line of topic "metrics" (until nothing new came
// for a second).
func topicLines(t *testing.T, c *kafkatest.Cluster) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs...), kgo.ConsumeTopics("metrics"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		f := cl.PollFetches(ctx)
		cancel()
		n := 0
		f.EachRecord(func(r *kgo.Record) {
			out = append(out, strings.Split(strings.TrimRight(string(r.Value), "\n"), "\n")...)
			n++
		})
		if n == 0 {
			return out
		}
	}
}

// TestKafkaRoundTrip: 1M lines router -> Kafka (3 brokers, 12 partitions)
// -> router -> sink, exactly once; each partition holds only the series
// -route places on it; kcat reads the same lines; lines kcat produces reach
// the sink.
func TestKafkaRoundTrip(t *testing.T) {
	skipShort(t)
	c := kafkatest.Start(t, 3, 12, "metrics")
	n, series := 1_000_000, 100_000
	if raceEnabled {
		n = 200_000 // kfake runs in this process, under the race detector
	}
	in, pstats, cstats := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	sink := plugintest.NewLineSink(t)
	pcfg := kafkaProducer(t, c, in, pstats, "")
	startBinary(t, pcfg)
	startBinary(t, kafkaConsumer(t, c, cstats, sink.Addr, ""))
	waitListen(t, in)
	lines := kafkaLines("kafka.e2e", n, series)
	start := time.Now()
	sendLines(t, in, lines, 4)
	if !sink.WaitLen(n, 120*time.Second) {
		t.Fatalf("sink got %d of %d lines", sink.Len(), n)
	}
	elapsed := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	if dups := checkExactlyOnce(t, lines, sink.Lines()); dups != 0 {
		t.Fatalf("%d duplicates without a fault", dups)
	}
	t.Logf("%d lines through Kafka in %v, exactly once", n, elapsed.Round(time.Millisecond))

	// each partition holds only the series its ring slot names
	parts := readPartitions(t, c, n)
	bin, err := buildRouter()
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, series)
	for i := range names {
		names[i] = fmt.Sprintf("kafka.e2e.%d", i)
	}
	placed := map[string]string{}
	for i, sends := range routeJSON(t, bin, pcfg, names) {
		if len(sends) != 1 {
			t.Fatalf("-route: %s has %d destinations", names[i], len(sends))
		}
		placed[names[i]] = sends[0].Dest
	}
	used := 0
	for p, ls := range parts {
		want := fmt.Sprintf("metrics[%d]", p)
		for _, l := range ls {
			name, _, _ := strings.Cut(l, " ")
			if placed[name] != want {
				t.Fatalf("%q is in partition %d, -route says %s", l, p, placed[name])
			}
		}
		used++
	}
	if used != 12 {
		t.Fatalf("%d of 12 partitions hold metrics", used)
	}

	// kcat (librdkafka) reads the same records, partition by partition
	out := kafkatest.KcatConsume(t, c.Addrs, "metrics", "P%p\n%s\n")
	kparts := map[int32]int{}
	var cur int32 = -1
	total := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		l := sc.Text()
		if p, ok := strings.CutPrefix(l, "P"); ok {
			v, err := strconv.Atoi(p)
			if err != nil {
				t.Fatalf("kcat: %q", l)
			}
			cur = int32(v)
			continue
		}
		if l == "" {
			continue
		}
		kparts[cur]++
		total++
	}
	if total != n {
		t.Fatalf("kcat read %d lines, want %d", total, n)
	}
	for p, ls := range parts {
		if kparts[p] != len(ls) {
			t.Fatalf("partition %d: kcat read %d lines, the Go client %d", p, kparts[p], len(ls))
		}
	}

	// kcat produces, the consumer router delivers
	k := kafkaLines("kafka.kcat", 10_000, 10_000)
	kafkatest.KcatProduce(t, c.Addrs, "metrics", []byte(strings.Join(k, "\n")+"\n"))
	if !sink.WaitLen(n+len(k), 60*time.Second) {
		t.Fatalf("kcat's lines: sink got %d of %d", sink.Len()-n, len(k))
	}
	got := sink.Lines()[n:]
	checkExactlyOnce(t, k, got)
	t.Logf("kcat read %d lines in 12 partitions as the Go client did; %d lines kcat produced were delivered", total, len(k))
}

// loadCheck checks got against what the clients of l (started with
// prefix) sent: each line at least once. It returns the lines never seen,
// the duplicates and the lines of no client.
func loadCheck(l *load, prefix string, got []string) (missing, dups, foreign int) {
	checks := make([]*seqCheck, len(l.sent))
	for c := range checks {
		checks[c] = newSeqCheck(fmt.Sprintf("%s.c%d", prefix, c), int(l.sent[c].Load()))
	}
	for _, line := range got {
		ok := false
		for _, ch := range checks {
			if ch.add(line, false) {
				ok = true
				break
			}
		}
		if !ok {
			foreign++
		}
	}
	for _, ch := range checks {
		missing += ch.missing()
		dups += ch.dups
	}
	return missing, dups, foreign
}

// TestKafkaBrokerLoss: a broker leaves the cluster while the producer
// router sends; nothing is lost.
func TestKafkaBrokerLoss(t *testing.T) {
	skipShort(t)
	c := kafkatest.Start(t, 3, 12, "metrics")
	in, pstats, cstats := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	sink := plugintest.NewLineSink(t)
	startBinary(t, kafkaProducer(t, c, in, pstats, ""))
	startBinary(t, kafkaConsumer(t, c, cstats, sink.Addr, ""))
	waitListen(t, in)
	l := startLoad(t, in, "kafka.loss", 4, 200)
	if !waitFor(20*time.Second, func() bool { return sink.Len() > 20_000 }) {
		t.Fatalf("nothing flows: sink has %d lines", sink.Len())
	}
	leader := c.LeaderFor("metrics", 0)
	if err := c.RemoveNode(leader); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	sent := l.end()
	if err := l.err(); err != nil {
		t.Fatal(err)
	}
	waitFor(60*time.Second, func() bool { return sink.Len() >= sent })
	time.Sleep(500 * time.Millisecond)
	missing, dups, foreign := loadCheck(l, "kafka.loss", sink.Lines())
	if missing != 0 || foreign != 0 {
		t.Fatalf("broker %d removed: sent %d, sink %d, missing %d, foreign %d", leader, sent, sink.Len(), missing, foreign)
	}
	_, tdups, _ := loadCheck(l, "kafka.loss", topicLines(t, c))
	t.Logf("broker %d removed mid-run: sent %d, delivered %d, duplicates %d (%d of them in the topic), lost 0", leader, sent, sink.Len(), dups, tdups)
}

// TestKafkaConsumerKill9: the consumer router is killed with SIGKILL
// mid-run and started again; everything arrives, duplicates only of what
// it had not committed.
func TestKafkaConsumerKill9(t *testing.T) {
	skipShort(t)
	c := kafkatest.Start(t, 3, 12, "metrics")
	in, pstats, cstats := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	sink := plugintest.NewLineSink(t)
	startBinary(t, kafkaProducer(t, c, in, pstats, ""))
	ccfg := kafkaConsumer(t, c, cstats, sink.Addr, "")
	cons := startBinary(t, ccfg)
	waitListen(t, in)
	l := startLoad(t, in, "kafka.kill", 4, 200)
	if !waitFor(20*time.Second, func() bool { return sink.Len() > 20_000 }) {
		t.Fatalf("nothing flows: sink has %d lines", sink.Len())
	}
	cons.kill9(t)
	before := sink.Len()
	time.Sleep(time.Second)
	startBinary(t, ccfg)
	time.Sleep(2 * time.Second)
	sent := l.end()
	if err := l.err(); err != nil {
		t.Fatal(err)
	}
	waitFor(60*time.Second, func() bool { return sink.Len() >= sent })
	time.Sleep(time.Second)
	missing, dups, foreign := loadCheck(l, "kafka.kill", sink.Lines())
	if missing != 0 || foreign != 0 {
		t.Fatalf("consumer killed: sent %d, sink %d, missing %d, foreign %d", sent, sink.Len(), missing, foreign)
	}
	t.Logf("consumer kill -9 at %d lines delivered: sent %d, delivered %d, duplicates %d, lost 0", before, sent, sink.Len(), dups)
}

// TestKafkaProducerRestartWithSpool: the brokers refuse writes, the
// producer router spools, is killed with SIGKILL and started again on the
// same spool; once the brokers take writes again everything arrives.
func TestKafkaProducerRestartWithSpool(t *testing.T) {
	skipShort(t)
	c := kafkatest.Start(t, 3, 12, "metrics")
	in, pstats, cstats := plugintest.FreeAddr(t), plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	sink := plugintest.NewLineSink(t)
	refuse := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		select {
		case <-refuse:
			c.DropControl()
			return nil, nil, false
		default:
		}
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	spool := filepath.Join(t.TempDir(), "spool")
	pcfg := kafkaProducer(t, c, in, pstats, fmt.Sprintf("  spool_dir = %q\n  buffer_limit = 10000\n  timeout = \"2s\"\n", spool))
	p := startBinary(t, pcfg)
	startBinary(t, kafkaConsumer(t, c, cstats, sink.Addr, ""))
	waitListen(t, in)
	lines := graphiteLines("kafka.spool", 0, 100_000)
	sendLines(t, in, lines, 4)
	waitCounter(t, pstats, series("received_total", "inputs.graphite", "graphite-1"), float64(len(lines)), 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	if sink.Len() != 0 {
		t.Fatalf("the brokers refuse writes, yet the sink has %d lines", sink.Len())
	}
	if entries, _ := os.ReadDir(spool); len(entries) == 0 {
		t.Fatal("nothing spooled")
	}
	p.kill9(t)
	close(refuse)
	startBinary(t, pcfg)
	if !sink.WaitLen(len(lines), 60*time.Second) {
		t.Fatalf("after kill -9 and restart: sink got %d of %d", sink.Len(), len(lines))
	}
	time.Sleep(500 * time.Millisecond)
	dups := checkExactlyOnce(t, lines, sink.Lines())
	t.Logf("producer kill -9 with spool while the brokers refused writes: sent %d, delivered %d, duplicates %d, lost 0", len(lines), sink.Len(), dups)
}
