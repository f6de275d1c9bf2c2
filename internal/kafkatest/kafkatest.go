// Package kafkatest starts a Kafka cluster for tests (franz-go's in-process
// kfake: no broker can be installed from the registries the tests use) and
// drives Debian's kcat (librdkafka) as an independent client.
package kafkatest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Cluster is a running kfake cluster.
type Cluster struct {
	*kfake.Cluster
	Addrs []string
}

// Start starts brokers brokers holding topics of partitions partitions
// each, on 127.0.0.1, closed when the test ends.
func Start(t testing.TB, brokers int, partitions int32, topics ...string) *Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(brokers), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &Cluster{Cluster: c, Addrs: c.ListenAddrs()}
}

// Brokers is the broker list as a TOML array's body: "a:1", "b:2".
func (c *Cluster) Brokers() string {
	return `"` + strings.Join(c.Addrs, `", "`) + `"`
}

// Read reads topic from its start (no consumer group) until want records
// arrived or timeout passed, and returns them.
func Read(t testing.TB, addrs []string, topic string, want int, timeout time.Duration) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want && ctx.Err() == nil {
		f := cl.PollFetches(ctx)
		f.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// Produce writes each value as one record of topic (the partitioner of
// franz-go's default: sticky by key, here none) and waits for the brokers.
func Produce(t testing.TB, addrs []string, topic string, values [][]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Topic: topic, Value: v}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// Kcat returns Debian's kcat, or skips the test; under CI (scripts/test.sh
// installs it) its absence fails the test.
func Kcat(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is not installed (apt-get install kcat)")
		}
		t.Skip("kcat is not installed (apt-get install kcat)")
	}
	return p
}

// KcatConsume runs kcat as a consumer of topic from its start until it has
// read the end of every partition, and returns what it printed: one record
// value per line followed by the delimiter, with format fmt (kcat -f).
func KcatConsume(t testing.TB, addrs []string, topic, format string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, Kcat(t), "-C", "-b", strings.Join(addrs, ","), "-t", topic,
		"-o", "beginning", "-e", "-q", "-f", format)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat -C: %v: %s", err, stderr.Bytes())
	}
	return out
}

// KcatProduce runs kcat as a producer: every line of data becomes one
// record of topic (kcat's default delimiter, a newline).
func KcatProduce(t testing.TB, addrs []string, topic string, data []byte, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	argv := append([]string{"-P", "-b", strings.Join(addrs, ","), "-t", topic}, args...)
	cmd := exec.CommandContext(ctx, Kcat(t), argv...)
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v: %s", err, out)
	}
}
