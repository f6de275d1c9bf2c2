// Package kafka is the Kafka input: a consumer group member that reads
// Graphite, StatsD or JSON metrics from topics, one or more per record
// separated by '\n', and commits a record's offset only once the batch it
// is in was queued (or spooled) by every output.
//
// Delivery is at-least-once. The loop polls at most max_poll_records
// records, parses every line of them into one batch, emits it and, only
// when Emit returned nil, commits those records' offsets synchronously;
// rebalances are held off from the poll until that commit
// (kgo.BlockRebalanceOnPoll), so a commit never lands on a partition this
// member no longer owns. Records polled but not committed (an Emit cut by
// shutdown, a failed commit, a router killed) are read again by whichever
// member owns their partition next.
//
// Memory: a poll's record values are copied into one buffer its metrics
// point into (no allocation per line; see decoder.decode): a poll costs
// that buffer and one batch allocation. What is
// fetched but not yet polled is about fetch_max_bytes per broker, counted
// as the brokers send it (compressed; a broker may return one record batch
// larger than the limit, and a read is refused past twice the limit), and
// a batch is at most max_poll_records records.
package kafka

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/jsonmetric"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/internal/kafkaopt"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

// Defaults of the keys.
const (
	defGroup          = "router"
	defMaxPollRecords = 10000
	defFetchMaxBytes  = 32 << 20
	// maxFetchMaxBytes keeps franz-go's response limit (twice the fetch
	// size) within the 1 GiB it accepts.
	maxFetchMaxBytes = 512 << 20
	// commitTimeout bounds one synchronous offset commit.
	commitTimeout = 30 * time.Second
)

func init() {
	registry.AddInput("kafka", func() registry.Input {
		return &Kafka{
			Common:           kafkaopt.Defaults(),
			Group:            defGroup,
			Format:           kafkaopt.FormatGraphite,
			StartOffset:      "earliest",
			MaxPollRecords:   defMaxPollRecords,
			FetchMaxBytes:    defFetchMaxBytes,
			SessionTimeout:   registry.Duration(45 * time.Second),
			RebalanceTimeout: registry.Duration(60 * time.Second),
		}
	}, sample)
}

// Kafka is the inputs.kafka plugin.
type Kafka struct {
	kafkaopt.Common
	Topics           []string          `toml:"topics"`
	Group            string            `toml:"group"`
	Format           string            `toml:"format"`
	StartOffset      string            `toml:"start_offset"`
	MaxPollRecords   int               `toml:"max_poll_records"`
	FetchMaxBytes    int               `toml:"fetch_max_bytes"`
	SessionTimeout   registry.Duration `toml:"session_timeout"`
	RebalanceTimeout registry.Duration `toml:"rebalance_timeout"`
	Strict           bool              `toml:"strict"`

	env  registry.Env
	log  zerolog.Logger // sampled: parse and fetch errors
	dec  decoder
	c    counters
	lag  lagTracker
	opts []kgo.Opt // the consumer's own options (Init)
}

type counters struct {
	records, lines, commitErrors, fetchErrors *atomic.Uint64
}

// Init validates the configuration.
func (k *Kafka) Init(env registry.Env) error {
	var errs []error
	if err := k.Common.Check(); err != nil {
		errs = append(errs, err)
	}
	if len(k.Topics) == 0 {
		errs = append(errs, errors.New("topics: at least one topic"))
	}
	for _, t := range k.Topics {
		if t == "" {
			errs = append(errs, errors.New("topics: empty topic name"))
		}
	}
	if k.Group == "" {
		errs = append(errs, errors.New("group: must not be empty"))
	}
	if err := kafkaopt.CheckFormat(k.Format); err != nil {
		errs = append(errs, err)
	}
	if k.Strict && k.Format != kafkaopt.FormatStatsD {
		errs = append(errs, errors.New(`strict: only for format = "statsd"`))
	}
	if err := registry.CheckOneOf("start_offset", k.StartOffset, "earliest", "latest"); err != nil {
		errs = append(errs, err)
	}
	if k.MaxPollRecords < 1 {
		errs = append(errs, errors.New("max_poll_records: must be at least 1"))
	}
	if k.FetchMaxBytes < 1<<10 || k.FetchMaxBytes > maxFetchMaxBytes {
		errs = append(errs, fmt.Errorf("fetch_max_bytes = %d: want 1024..%d", k.FetchMaxBytes, maxFetchMaxBytes))
	}
	if k.SessionTimeout <= 0 || k.RebalanceTimeout <= 0 {
		errs = append(errs, errors.New("session_timeout and rebalance_timeout: must be positive"))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	k.env = env
	k.log = env.Log.Sample(&zerolog.BurstSampler{Burst: 5, Period: 10 * time.Second})
	m := env.Metrics
	k.c = counters{
		records:      m.Counter("records_total", "Kafka records polled (each holds one or more lines)."),
		lines:        m.Counter("lines_total", "Lines in polled records, malformed ones included, empty ones not."),
		commitErrors: m.Counter("commit_errors_total", "Offset commits that failed: their records are read again (by this or another member)."),
		fetchErrors:  m.Counter("fetch_errors_total", "Errors franz-go reported for a partition's fetch (retried by the client)."),
	}
	k.dec = decoder{parseErrors: m.Counter("parse_errors_total", "Malformed lines, counted and skipped."), log: k.log}
	switch k.Format {
	case kafkaopt.FormatGraphite:
		k.dec.parse = graphite.Parse
	case kafkaopt.FormatStatsD:
		k.dec.parse = statsd.Parse
		if !k.Strict {
			unparsed := m.Counter("passed_unparsed_total", "Lines the StatsD codec does not understand (events, service checks, unknown types, bad values), forwarded as they came (strict = false).")
			k.dec.parse = func(line []byte, m *metric.Metric) error {
				if statsd.Parse(line, m) == nil {
					return nil
				}
				if err := statsd.ParseOpaque(line, m); err != nil {
					return err
				}
				unparsed.Add(1)
				return nil
			}
		}
	case kafkaopt.FormatJSON:
		k.dec.json = true
	}
	m.Gauge("kafka_lag", "Records not yet consumed: the sum over this member's assigned partitions of the high watermark minus the next offset to read, as of the last poll.", k.lag.value)

	part := k.FetchMaxBytes / 4
	part = max(part, min(1<<20, k.FetchMaxBytes))
	start := kgo.NewOffset().AtStart()
	if k.StartOffset == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	k.opts = []kgo.Opt{
		kgo.ConsumerGroup(k.Group),
		kgo.ConsumeTopics(k.Topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeStartOffset(start),
		kgo.FetchMaxBytes(int32(k.FetchMaxBytes)),
		kgo.FetchMaxPartitionBytes(int32(part)),
		kgo.BrokerMaxReadBytes(int32(2 * k.FetchMaxBytes)),
		kgo.SessionTimeout(k.SessionTimeout.D()),
		kgo.RebalanceTimeout(k.RebalanceTimeout.D()),
		kgo.OnPartitionsAssigned(k.assigned),
		kgo.OnPartitionsRevoked(k.revoked),
		kgo.OnPartitionsLost(k.lost),
	}
	if k.StartOffset == "earliest" {
		// a committed offset that fell out of the log: read all that is left
		k.opts = append(k.opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	}
	return nil
}

// Run consumes until ctx is cancelled.
func (k *Kafka) Run(ctx context.Context, out registry.Emitter) error {
	cc, err := k.Common.Options(k.env.Log)
	if err != nil {
		return err
	}
	defer cc.Release()
	cl, err := kgo.NewClient(append(slices.Clip(cc.Opts), k.opts...)...)
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	err = k.consume(ctx, cl, out)
	// Close leaves the group: its partitions go to the other members at once
	cl.Close()
	k.lag.reset()
	return err
}

// consume is the poll loop. It returns nil once ctx is cancelled, or the
// error that stopped it.
func (k *Kafka) consume(ctx context.Context, cl *kgo.Client, out registry.Emitter) error {
	for {
		if ctx.Err() != nil {
			return nil
		}
		fetches := cl.PollRecords(ctx, k.MaxPollRecords)
		stop, err := k.handle(ctx, cl, out, fetches)
		cl.AllowRebalance()
		if stop || err != nil {
			return err
		}
	}
}

// handle emits and commits one poll's records. stop: the loop must end.
func (k *Kafka) handle(ctx context.Context, cl *kgo.Client, out registry.Emitter, fetches kgo.Fetches) (stop bool, err error) {
	fetches.EachError(func(t string, p int32, err error) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			stop = true
			return
		}
		if errors.Is(err, kgo.ErrClientClosed) {
			stop = true
			return
		}
		k.c.fetchErrors.Add(1)
		k.log.Warn().Err(err).Str("topic", t).Int32("partition", p).Msg("fetch error")
	})
	k.lag.update(fetches)
	n := fetches.NumRecords()
	if n == 0 {
		return stop, nil
	}
	recs := make([]*kgo.Record, 0, n)
	fetches.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	b, lines := k.dec.decode(recs)
	k.c.records.Add(uint64(len(recs)))
	k.c.lines.Add(uint64(lines))
	if len(b) > 0 {
		err := out.Emit(ctx, b)
		if err != nil && ctx.Err() != nil && !errors.Is(err, registry.ErrStopped) {
			// shutdown: hand over what was polled, the agent bounds the wait
			err = out.Emit(context.WithoutCancel(ctx), b)
		}
		if err != nil {
			// not queued: leave the offsets uncommitted, the records go to
			// the next owner of their partitions
			if ctx.Err() != nil || errors.Is(err, registry.ErrStopped) {
				return true, nil
			}
			return true, fmt.Errorf("emit: %w", err)
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
	defer cancel()
	if err := cl.CommitRecords(cctx, recs...); err != nil {
		k.c.commitErrors.Add(1)
		k.env.Log.Warn().Err(err).Int("count", len(recs)).Msg("offset commit failed, records will be read again")
	}
	return stop || ctx.Err() != nil, nil
}

func (k *Kafka) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	k.env.Log.Info().Int("count", countParts(m)).Str("partitions", fmtParts(m)).Msg("partitions assigned")
}

func (k *Kafka) revoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	k.lag.drop(m)
	k.env.Log.Info().Int("count", countParts(m)).Str("partitions", fmtParts(m)).Msg("partitions revoked")
}

func (k *Kafka) lost(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	k.lag.drop(m)
	k.env.Log.Warn().Int("count", countParts(m)).Str("partitions", fmtParts(m)).Msg("partitions lost")
}

func countParts(m map[string][]int32) int {
	n := 0
	for _, ps := range m {
		n += len(ps)
	}
	return n
}

// fmtParts renders partitions as "topic:0,1,2 other:3", topics sorted.
func fmtParts(m map[string][]int32) string {
	var sb strings.Builder
	for _, t := range slices.Sorted(mapKeys(m)) {
		if sb.Len() > 0 {
			sb.WriteByte(' ')
		}
		sb.WriteString(t)
		ps := slices.Sorted(slices.Values(m[t]))
		for i, p := range ps {
			if i == 0 {
				sb.WriteByte(':')
			} else {
				sb.WriteByte(',')
			}
			fmt.Fprint(&sb, p)
		}
	}
	return sb.String()
}

func mapKeys(m map[string][]int32) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// decoder parses record values into batches.
type decoder struct {
	parse       func(line []byte, m *metric.Metric) error
	json        bool
	arena       []byte // JSON: where parsed metrics' bytes go
	parseErrors *atomic.Uint64
	log         zerolog.Logger
}

// decode parses every line of rs into a new batch; it returns the batch
// and the number of non-empty lines.
//
// Record values are slices of the fetch response franz-go read (or of its
// decompressed batch): a metric pointing there would keep that whole
// buffer, up to fetch_max_bytes, alive while it is queued, far beyond what
// metric.RetainedBytes charges. Graphite and StatsD lines are therefore
// parsed out of one copy of the poll's values, which the batch keeps in
// place when its lines fill it (metric.Dense) and detaches from otherwise;
// JSON metrics are written into the decoder's arena.
func (d *decoder) decode(rs []*kgo.Record) (metric.Batch, int) {
	n, size := 0, 0
	for _, r := range rs {
		n += bytes.Count(r.Value, nl) + 1
		size += len(r.Value) + 1
	}
	var buf []byte
	if !d.json {
		buf = make([]byte, 0, size)
	}
	b := make(metric.Batch, n)
	i, lines, used := 0, 0, 0
	for _, r := range rs {
		v := r.Value
		if !d.json {
			s := len(buf)
			buf = append(append(buf, v...), '\n')
			v = buf[s : len(buf)-1]
		}
		for len(v) > 0 {
			line := v
			if j := bytes.IndexByte(v, '\n'); j >= 0 {
				line, v = v[:j:j], v[j+1:]
			} else {
				v = nil
			}
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[: len(line)-1 : len(line)-1]
			}
			if len(line) == 0 {
				continue
			}
			lines++
			if err := d.parseLine(line, &b[i]); err != nil {
				b[i] = metric.Metric{}
				d.parseErrors.Add(1)
				d.log.Warn().Err(err).Bytes("line", truncate(line)).Msg("malformed line skipped")
				continue
			}
			used += len(line) + 1
			i++
		}
	}
	b = b[:i:i]
	if !d.json && !metric.Dense(used, len(buf)) {
		metric.Detach(b, buf)
	}
	if !metric.Dense(i, n) {
		b = append(metric.Batch(nil), b...)
	}
	return b, lines
}

func (d *decoder) parseLine(line []byte, m *metric.Metric) error {
	if !d.json {
		return d.parse(line, m)
	}
	arena, err := jsonmetric.Parse(line, m, d.arena)
	if err == nil {
		d.arena = arena
	}
	return err
}

var nl = []byte{'\n'}

func truncate(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

// lagTracker sums, over the assigned partitions, the high watermark minus
// the next offset to read, as the polls saw them.
type lagTracker struct {
	mu    sync.Mutex
	parts map[tp]mark
	total atomic.Int64
}

type tp struct {
	topic string
	part  int32
}

type mark struct{ hw, next int64 }

func (l *lagTracker) value() float64 { return float64(l.total.Load()) }

func (l *lagTracker) update(fs kgo.Fetches) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.parts == nil {
		l.parts = map[tp]mark{}
	}
	changed := false
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Topic == "" || p.Partition < 0 {
			return // injected error
		}
		key := tp{p.Topic, p.Partition}
		mk, seen := l.parts[key]
		if n := len(p.Records); n > 0 {
			mk.next = p.Records[n-1].Offset + 1
		} else if p.Err != nil || !seen {
			return
		}
		mk.hw = p.HighWatermark
		l.parts[key] = mk
		changed = true
	})
	if changed {
		l.sum()
	}
}

func (l *lagTracker) drop(m map[string][]int32) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for t, ps := range m {
		for _, p := range ps {
			delete(l.parts, tp{t, p})
		}
	}
	l.sum()
}

func (l *lagTracker) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.parts)
	l.total.Store(0)
}

func (l *lagTracker) sum() {
	var s int64
	for _, mk := range l.parts {
		if d := mk.hw - mk.next; d > 0 {
			s += d
		}
	}
	l.total.Store(s)
}

var (
	_ registry.Input       = (*Kafka)(nil)
	_ registry.Initializer = (*Kafka)(nil)
)
