// Package kafka is the output that produces metrics to a Kafka topic, as
// Graphite lines, StatsD lines or JSON objects (package jsonmetric), one or
// several metrics per record ('\n' between them, none after the last).
//
// Placement: with partitioner = "hash" every metric goes to the partition
// the hash ring (outputs.consistent_hash's rings, hash = carbon_ch, fnv1a_ch
// or jump_fnv1a_ch) gives its path (metric.Path, consistent_hash's key), so
// a series always lands on the same partition. The ring is built in Init
// over `partitions` members, member N (partition N) being host
// "partition", port "N", no instance; jump_fnv1a_ch over such members is
// the jump hash over partitions 0..N-1, so adding partitions moves few
// series. With partitioner = "round_robin", records go to the topic's
// partitions in turn.
//
// Delivery: Write produces every record of its batch and waits for each
// acknowledgement (acks, with idempotent writes by default, so franz-go's
// own retries add no duplicates). When some records fail, Write returns a
// *registry.PartialWriteError whose Written is the longest prefix of the
// batch, in batch order, whose metrics are all in acknowledged records; the
// runner writes the rest again. Metrics after that prefix that were in
// acknowledged records are then produced twice: that is this output's
// duplicate window (at-least-once).
package kafka

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/metricsrouter/router/plugins/internal/kafkaopt"
	"github.com/metricsrouter/router/plugins/internal/streamout"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/outputs/consistent_hash"
	"github.com/metricsrouter/router/plugins/outputs/consistent_hash/hashring"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

const (
	defMaxRecordBytes = 1000000
	defTimeout        = 30 * time.Second
	// The runner's batches: large enough to fill records and producer
	// batches on every partition, two writers to overlap round trips.
	defBatchSize = 10000
	defWorkers   = 2
)

func init() {
	registry.AddOutput("kafka", func() registry.Output { return New() }, sample,
		registry.OutputSpec{BatchSize: defBatchSize, Workers: defWorkers})
}

// New returns an output with the defaults.
func New() *Kafka {
	return &Kafka{
		Common:         kafkaopt.Defaults(),
		Format:         kafkaopt.FormatGraphite,
		LinesPerRecord: 1,
		MaxRecordBytes: defMaxRecordBytes,
		Compression:    "none",
		Acks:           "all",
		Idempotent:     true,
		Partitioner:    "hash",
		Hash:           "jump_fnv1a_ch",
		Collision:      hashring.CollisionBump,
		Flavour:        hashring.FlavourCRelay,
		Timeout:        registry.Duration(defTimeout),
	}
}

// Kafka is the outputs.kafka plugin.
type Kafka struct {
	kafkaopt.Common
	Topic          string            `toml:"topic"`
	Format         string            `toml:"format"`
	LinesPerRecord int               `toml:"lines_per_record"`
	MaxRecordBytes int               `toml:"max_record_bytes"`
	Compression    string            `toml:"compression"`
	Acks           string            `toml:"acks"`
	Idempotent     bool              `toml:"idempotent"`
	Partitioner    string            `toml:"partitioner"`
	Hash           string            `toml:"hash"`
	Collision      string            `toml:"collision"`
	Flavour        string            `toml:"flavour"`
	Partitions     int               `toml:"partitions"`
	Timeout        registry.Duration `toml:"timeout"`

	log     zerolog.Logger
	sampled zerolog.Logger
	ring    hashring.Ring
	opts    []kgo.Opt // format-independent producer options
	client  *kgo.Client
	kc      *kafkaopt.Client
	nparts  int // partitions to write to
	rr      int // next round-robin partition
	scratch []int

	enc encoder
	fl  *flight

	records, recordBytes, produceErrors, refusedC *atomic.Uint64
}

// Init validates the keys and builds the ring.
func (k *Kafka) Init(env registry.Env) error {
	var errs []error
	if err := k.Common.Check(); err != nil {
		errs = append(errs, err)
	}
	if k.Topic == "" {
		errs = append(errs, errors.New("topic: required"))
	}
	if err := kafkaopt.CheckFormat(k.Format); err != nil {
		errs = append(errs, err)
	}
	if k.LinesPerRecord < 1 {
		errs = append(errs, errors.New("lines_per_record: at least 1"))
	}
	if k.MaxRecordBytes < 64 || k.MaxRecordBytes > 1<<30 {
		errs = append(errs, errors.New("max_record_bytes: from 64 to 1 GiB"))
	}
	if k.Timeout <= 0 {
		errs = append(errs, errors.New("timeout: must be positive"))
	}
	var comp kgo.CompressionCodec
	switch k.Compression {
	case "none":
		comp = kgo.NoCompression()
	case "gzip":
		comp = kgo.GzipCompression()
	case "snappy":
		comp = kgo.SnappyCompression()
	case "lz4":
		comp = kgo.Lz4Compression()
	case "zstd":
		comp = kgo.ZstdCompression()
	default:
		errs = append(errs, fmt.Errorf("compression %q: want \"none\", \"gzip\", \"snappy\", \"lz4\" or \"zstd\"", k.Compression))
	}
	var acks kgo.Acks
	switch k.Acks {
	case "all":
		acks = kgo.AllISRAcks()
	case "leader":
		acks = kgo.LeaderAck()
	case "none":
		acks = kgo.NoAck()
	default:
		errs = append(errs, fmt.Errorf("acks %q: want \"all\", \"leader\" or \"none\"", k.Acks))
	}
	if k.Idempotent && k.Acks != "all" {
		errs = append(errs, fmt.Errorf("idempotent = true needs acks = \"all\" (acks = %q): set idempotent = false", k.Acks))
	}
	switch k.Partitioner {
	case "hash":
		if k.Partitions < 1 || k.Partitions > 65536 {
			errs = append(errs, errors.New("partitions: with partitioner = \"hash\", the topic's partition count (1..65536)"))
			break
		}
		if k.Hash == "statsd" {
			errs = append(errs, errors.New("hash \"statsd\": want \"carbon_ch\", \"fnv1a_ch\" or \"jump_fnv1a_ch\""))
			break
		}
		r, err := consistent_hash.BuildRing(k.Hash, k.Collision, k.Flavour, partitionTargets(k.Partitions))
		if err != nil {
			errs = append(errs, err)
		}
		k.ring = r
	case "round_robin":
		if k.Partitions != 0 {
			errs = append(errs, errors.New("partitions: only with partitioner = \"hash\""))
		}
	default:
		errs = append(errs, fmt.Errorf("partitioner %q: want \"hash\" or \"round_robin\"", k.Partitioner))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	k.opts = []kgo.Opt{
		kgo.DefaultProduceTopic(k.Topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(acks),
		kgo.ProducerBatchCompression(comp),
		kgo.RecordDeliveryTimeout(k.Timeout.D()),
		kgo.ProducerBatchMaxBytes(int32(max(k.MaxRecordBytes+512, 1000012))),
		// one request to a stalled leader leaves time for retries
		kgo.ProduceRequestTimeout(min(k.Timeout.D(), 10*time.Second)),
		// Write hands over a whole batch, then waits: lingering only delays it
		kgo.ProducerLinger(0),
	}
	if !k.Idempotent {
		k.opts = append(k.opts, kgo.DisableIdempotentWrite())
	}
	k.log = env.Log
	k.sampled = env.Log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})
	if env.Metrics != nil {
		k.records = env.Metrics.Counter("records_total", "Records acknowledged by the brokers.")
		k.recordBytes = env.Metrics.Counter("record_bytes_total", "Bytes of the values of acknowledged records (before compression).")
		k.produceErrors = env.Metrics.Counter("produce_errors_total", "Records that failed (their metrics are written again).")
		k.refusedC = env.Metrics.Counter("conversion_refused_total", "Metrics the format cannot carry or larger than max_record_bytes, not sent (counted as rejected).")
	} else {
		k.records, k.recordBytes, k.produceErrors, k.refusedC = new(atomic.Uint64), new(atomic.Uint64), new(atomic.Uint64), new(atomic.Uint64)
	}
	if w := k.TLSClient.Warning(); w != "" {
		env.Log.Warn().Msg(w)
	}
	k.enc = encoder{format: k.Format, lines: k.LinesPerRecord, maxBytes: k.MaxRecordBytes}
	k.nparts = k.Partitions
	return nil
}

// partitionTargets are the ring members of partitions 0..n-1: host
// "partition", port "N".
func partitionTargets(n int) []registry.Target {
	t := make([]registry.Target, n)
	for i := range t {
		p := strconv.Itoa(i)
		t[i] = registry.Target{ID: "partition-" + p, Plugin: "kafka", Address: "partition:" + p, Host: "partition", Port: p, Spec: "partition:" + p}
	}
	return t
}

// partition returns the partition of m (hash partitioner), for Write: the
// lookup uses the output's scratch slice (a local one would escape through
// the Ring interface, an allocation per metric).
func (k *Kafka) partition(m *metric.Metric) int {
	if cap(k.scratch) == 0 {
		k.scratch = make([]int, 0, 1)
	}
	return lookup(k.ring, m, k.scratch)
}

func lookup(r hashring.Ring, m *metric.Metric, dst []int) int {
	d := r.Lookup(m.Path(), 1, nil, dst[:0])
	if len(d) == 0 {
		return 0
	}
	return d[0]
}

// Place returns "<topic>[<partition>]", or "<topic>[*]" with round_robin.
func (k *Kafka) Place(m *metric.Metric) string {
	if k.ring == nil {
		return k.Topic + "[*]"
	}
	return k.Topic + "[" + strconv.Itoa(lookup(k.ring, m, make([]int, 0, 1))) + "]"
}

// Destination returns the first broker.
func (k *Kafka) Destination() string {
	if len(k.Brokers) == 0 {
		return ""
	}
	return k.Brokers[0]
}

// Connect creates the client and checks the topic's partitions.
func (k *Kafka) Connect(ctx context.Context) error {
	if k.client != nil {
		return nil
	}
	kc, err := k.Common.Options(k.log)
	if err != nil {
		return fmt.Errorf("kafka: %w: %w", err, registry.ErrFatal)
	}
	opts := append(append([]kgo.Opt{}, kc.Opts...), k.opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		kc.Release()
		return fmt.Errorf("kafka: %w: %w", err, registry.ErrFatal)
	}
	n, err := topicPartitions(ctx, cl, k.Topic, k.DialTimeout.D())
	if err != nil {
		cl.Close()
		kc.Release()
		return fmt.Errorf("kafka topic %s: %w: %w", k.Topic, err, registry.ErrNotConnected)
	}
	switch {
	case k.ring == nil:
		k.nparts = n
	case n < k.Partitions:
		cl.Close()
		kc.Release()
		err := fmt.Errorf("kafka topic %s has %d partitions, partitions = %d: %w", k.Topic, n, k.Partitions, registry.ErrNotConnected)
		k.log.Error().Err(err).Int("count", n).Msg("topic has fewer partitions than configured")
		return err
	case n > k.Partitions:
		k.log.Warn().Int("count", n).Msg("topic has more partitions than configured: the extra ones get nothing")
	}
	k.client, k.kc = cl, kc
	return nil
}

// topicPartitions asks the cluster for topic's partition count.
func topicPartitions(ctx context.Context, cl *kgo.Client, topic string, timeout time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*timeout)
	defer cancel()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, err
	}
	if len(resp.Topics) != 1 {
		return 0, errors.New("no metadata for the topic")
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		return 0, err
	}
	if len(resp.Topics[0].Partitions) == 0 {
		return 0, errors.New("topic has no partitions")
	}
	return len(resp.Topics[0].Partitions), nil
}

// Close closes the client, waiting for nothing: the runner has written
// what it could.
func (k *Kafka) Close() error {
	if k.client != nil {
		k.client.Close()
		k.kc.Release()
		k.client, k.kc = nil, nil
	}
	return nil
}

// flight is the records of one Write and their outcome. It is reused by
// the next Write only once every promise has run.
type flight struct {
	recs    []kgo.Record
	errs    []error
	left    atomic.Int64
	done    chan struct{}
	promise func(*kgo.Record, error)
}

// newFlight returns a flight whose promise counts each record as its
// outcome arrives (also for a Write that stopped waiting: its records may
// still be acknowledged).
func newFlight(k *Kafka) *flight {
	f := &flight{}
	f.promise = func(r *kgo.Record, err error) {
		i := (uintptr(unsafe.Pointer(r)) - uintptr(unsafe.Pointer(&f.recs[0]))) / unsafe.Sizeof(kgo.Record{})
		f.errs[i] = err
		if err == nil {
			k.records.Add(1)
			k.recordBytes.Add(uint64(len(r.Value)))
		} else {
			k.produceErrors.Add(1)
		}
		if f.left.Add(-1) == 0 {
			close(f.done)
		}
	}
	return f
}

// Write encodes b into records, produces them and waits for every
// acknowledgement.
func (k *Kafka) Write(ctx context.Context, b metric.Batch) error {
	if len(b) == 0 {
		return nil
	}
	if k.client == nil {
		return fmt.Errorf("kafka topic %s: %w", k.Topic, registry.ErrNotConnected)
	}
	e := &k.enc
	if k.ring != nil {
		e.encode(b, k.nparts, k.partition)
	} else {
		e.encode(b, 1, nil)
		// round robin: one record after the other over the partitions
		for i := range e.recs {
			e.recs[i].part = int32(k.rr % k.nparts)
			k.rr++
		}
		k.rr %= k.nparts
	}
	if e.refused > 0 && len(e.recs) == 0 {
		k.countRefused(e.refused, e.why)
		return &streamout.Refused{N: e.refused, Reason: e.why}
	}
	f := k.fl
	if f == nil {
		f = newFlight(k)
	}
	k.fl = nil // kept again only once every promise has run
	n := len(e.recs)
	if cap(f.recs) < n {
		f.recs = make([]kgo.Record, n)
		f.errs = make([]error, n)
	}
	f.recs, f.errs = f.recs[:n], f.errs[:n]
	f.left.Store(int64(n))
	f.done = make(chan struct{})
	for i := range e.recs {
		r := &e.recs[i]
		f.recs[i] = kgo.Record{Topic: k.Topic, Partition: r.part, Value: e.buf[r.start:r.end:r.end]}
		f.errs[i] = nil
	}
	for i := range f.recs {
		k.client.Produce(ctx, &f.recs[i], f.promise)
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		// the records may still be in flight: their buffers are theirs
		e.buf = nil
		return fmt.Errorf("kafka topic %s: %w", k.Topic, ctx.Err())
	}
	k.fl = f
	var firstErr error
	failed := 0
	acked := e.acked[:0]
	for _, err := range f.errs {
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
		}
		acked = append(acked, err == nil)
	}
	e.acked = acked
	if failed == 0 {
		k.countRefused(e.refused, e.why)
		if e.refused > 0 {
			return &streamout.Refused{N: e.refused, Reason: e.why}
		}
		return nil
	}
	// the longest prefix whose metrics are all in acknowledged records
	written, refused := 0, 0
	for ; written < len(b); written++ {
		r := e.recOf[written]
		if r == refusedRec {
			refused++
			continue
		}
		if !acked[r] {
			break
		}
	}
	k.countRefused(refused, e.why)
	err := fmt.Errorf("kafka topic %s: %d of %d records failed: %w", k.Topic, failed, n, firstErr)
	if written == 0 {
		return err
	}
	return &registry.PartialWriteError{Written: written, Refused: refused, Err: err}
}

// countRefused counts and logs (sampled) n metrics left out.
func (k *Kafka) countRefused(n int, why error) {
	if n > 0 {
		k.refusedC.Add(uint64(n))
		k.sampled.Warn().Int("count", n).Err(why).Msg("metrics the format cannot carry or too large were not sent (counted as rejected)")
	}
}

var (
	_ registry.Output      = (*Kafka)(nil)
	_ registry.Initializer = (*Kafka)(nil)
	_ registry.Placer      = (*Kafka)(nil)
	_ registry.Addresser   = (*Kafka)(nil)
)
