// Package prometheus_remote_write sends metrics to a Prometheus remote-write
// 1.0 receiver (Prometheus with --web.enable-remote-write-receiver, Mimir,
// Thanos, VictoriaMetrics, ...): one protobuf WriteRequest per batch,
// snappy block compressed, one sample per metric with its own timestamp.
//
// Names and labels come from graphite_exporter's mapping language (the
// mapping_file, read by statsd_exporter's mapper, as graphite_exporter
// does): a metric that no rule matches is named after its path with every
// character outside [a-zA-Z0-9_:] replaced by '_'. Graphite 1.1 tags
// (";k=v") and StatsD tags (",k=v" and DogStatsD "|#k:v") become labels,
// overridden by the mapping's labels of the same name. Label names that
// Prometheus would refuse are fixed and counted.
//
// Retries follow the remote-write spec: a network error, 5xx or 429 keeps
// the batch (the runner retries with backoff); any other 4xx rejects it for
// good (counted, with out-of-order and too-old samples counted apart).
package prometheus_remote_write

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/prometheus/statsd_exporter/pkg/mapper"

	"github.com/metricsrouter/router/plugins/internal/httpout"
	"github.com/metricsrouter/router/plugins/internal/streamout"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/registry"
)

//go:embed sample.toml
var sample string

func init() {
	registry.AddOutput("prometheus_remote_write", func() registry.Output {
		return &RemoteWrite{Timeout: registry.Duration(30 * time.Second)}
	}, sample, registry.OutputSpec{BatchSize: 2000, FlushInterval: registry.Duration(time.Second), Workers: 4})
}

// maxCache bounds the per-writer cache of mapped names; it is emptied when
// full.
const maxCache = 100_000

// BasicAuth is the basic_auth table.
type BasicAuth struct {
	Username string `toml:"username"`
	Password string `toml:"password"`
}

// RemoteWrite is the outputs.prometheus_remote_write plugin.
type RemoteWrite struct {
	URL             string            `toml:"url"`
	Headers         map[string]string `toml:"headers"`
	BasicAuth       *BasicAuth        `toml:"basic_auth"`
	BearerToken     string            `toml:"bearer_token"`
	BearerTokenFile string            `toml:"bearer_token_file"`
	Timeout         registry.Duration `toml:"timeout"`
	MappingFile     string            `toml:"mapping_file"`
	registry.TLSClient

	client *http.Client
	host   string
	mapper *mapper.MetricMapper
	cache  map[string]*mapped

	labels []label // scratch: the labels of one series
	arena  []byte  // scratch: fixed label names
	raw    []byte  // the marshalled WriteRequest
	body   []byte  // its snappy block

	mappingDropped *atomic.Uint64
	labelsFixed    *atomic.Uint64
	tagsInvalid    *atomic.Uint64
	outOfOrder     *atomic.Uint64
}

// mapped is what the mapping makes of one metric name.
type mapped struct {
	drop   bool
	name   []byte
	labels []label // valid names, non-empty values
}

// Init validates the configuration, reads the mapping file and prepares
// the HTTP client (no connection).
func (p *RemoteWrite) Init(env registry.Env) error {
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("url %q: want http(s)://host[:port]/path", p.URL)
	}
	if p.Timeout <= 0 {
		return errors.New("timeout: must be positive")
	}
	auths := 0
	if p.BasicAuth != nil {
		auths++
		if p.BasicAuth.Username == "" {
			return errors.New("basic_auth.username: required")
		}
	}
	if p.BearerToken != "" {
		auths++
	}
	if p.BearerTokenFile != "" {
		auths++
		if _, err := readToken(p.BearerTokenFile); err != nil {
			return err
		}
	}
	if auths > 1 {
		return errors.New("basic_auth, bearer_token and bearer_token_file: give at most one")
	}
	for k, v := range p.Headers {
		if strings.ContainsAny(k+v, "\r\n") || k == "" {
			return fmt.Errorf("headers.%s: must be one line", k)
		}
	}
	if err := p.TLSClient.Check(); err != nil {
		return err
	}
	if p.MappingFile != "" {
		m := &mapper.MetricMapper{}
		if err := m.InitFromFile(p.MappingFile); err != nil {
			return fmt.Errorf("mapping_file %s: %w", p.MappingFile, err)
		}
		p.mapper = m
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: p.Timeout.D(),
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	if u.Scheme == "https" || p.TLSClient.Enabled() {
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "443")
		}
		cfg, err := p.TLSClient.ClientConfig(host)
		if err != nil {
			return err
		}
		tr.TLSClientConfig = cfg
	}
	p.client = &http.Client{
		Timeout:       p.Timeout.D(),
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p.host = u.Host
	p.cache = make(map[string]*mapped)
	ms := env.Metrics
	if ms == nil {
		ms = nopMetrics{}
	}
	p.mappingDropped = ms.Counter("mapping_dropped_total", "Metrics dropped by an `action: drop` rule of the mapping file.")
	p.labelsFixed = ms.Counter("label_names_fixed_total", "Label names (from tags or the mapping) changed to be valid Prometheus label names.")
	p.tagsInvalid = ms.Counter("tags_invalid_total", "Tags left out: no value, or a name reserved by Prometheus.")
	p.outOfOrder = ms.Counter("out_of_order_total", "Batches the receiver rejected for out-of-order, duplicate or too-old samples.")
	if w := p.TLSClient.Warning(); w != "" {
		env.Log.Warn().Msg(w)
	}
	return nil
}

type nopMetrics struct{}

func (nopMetrics) Counter(string, string) *atomic.Uint64 { return new(atomic.Uint64) }
func (nopMetrics) Gauge(string, string, func() float64)  {}

func readToken(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("bearer_token_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Destination returns the receiver's host:port.
func (p *RemoteWrite) Destination() string { return registry.URLDestination(p.URL) }

// Connect does nothing: each Write is one request.
func (p *RemoteWrite) Connect(context.Context) error { return nil }

// Close releases idle connections.
func (p *RemoteWrite) Close() error {
	if p.client != nil {
		p.client.CloseIdleConnections()
		if t, ok := p.client.Transport.(*http.Transport); ok && t.TLSClientConfig != nil {
			registry.ReleaseTLS(t.TLSClientConfig)
		}
	}
	return nil
}

// errRefuse says why a metric cannot be a sample.
var (
	errOpaque = errors.New("not a metric (opaque StatsD line)")
	errType   = errors.New("StatsD type other than an absolute gauge (aggregate it with aggregators.statsd first)")
	errValue  = errors.New("value is not a number")
)

// Write sends the batch as one WriteRequest.
func (p *RemoteWrite) Write(ctx context.Context, b metric.Batch) error {
	if len(b) == 0 {
		return nil
	}
	nowMs := time.Now().UnixMilli()
	raw := p.raw[:0]
	refused, series, dropped := 0, 0, 0
	var why error
	for i := range b {
		m := &b[i]
		labels, drop, err := p.series(m)
		if err != nil {
			if refused++; why == nil {
				why = err
			}
			continue
		}
		if drop {
			dropped++
			continue
		}
		raw = appendSeries(raw, labels, m.Value(), timestampMs(m, nowMs))
		series++
	}
	p.raw = raw
	if series == 0 {
		p.mappingDropped.Add(uint64(dropped))
		if refused > 0 {
			return &streamout.Refused{N: refused, Reason: why}
		}
		return nil
	}
	p.body = s2.EncodeSnappy(p.body[:cap(p.body)], raw)
	if err := p.post(ctx, p.body); err != nil {
		return err // the batch comes back: its drops are counted then
	}
	p.mappingDropped.Add(uint64(dropped))
	if refused > 0 {
		return &streamout.Refused{N: refused, Reason: why}
	}
	return nil
}

func (p *RemoteWrite) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range p.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "router-remote-write")
	}
	switch {
	case p.BasicAuth != nil:
		req.SetBasicAuth(p.BasicAuth.Username, p.BasicAuth.Password)
	case p.BearerToken != "":
		req.Header.Set("Authorization", "Bearer "+p.BearerToken)
	case p.BearerTokenFile != "":
		tok, err := readToken(p.BearerTokenFile) // read each time: tokens rotate
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", p.host, err)
	}
	msg := httpout.ReadSome(resp.Body)
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode/100 == 5:
		return fmt.Errorf("post %s: %s %s", p.host, resp.Status, msg)
	case resp.StatusCode/100 == 4:
		if outOfOrder(msg) {
			p.outOfOrder.Add(1)
		}
		return fmt.Errorf("post %s: %s %s: %w", p.host, resp.Status, msg, registry.ErrRejected)
	default: // 1xx, 3xx: a misconfigured url
		return fmt.Errorf("post %s: %s %s: %w", p.host, resp.Status, msg, registry.ErrRejected)
	}
}

// outOfOrder reports a rejection for samples out of order, duplicate or out
// of the receiver's time window (Prometheus, Mimir and Thanos wordings).
func outOfOrder(msg string) bool {
	msg = strings.ToLower(msg)
	for _, s := range []string{"out of order", "out-of-order", "out of bounds", "too old", "duplicate sample", "too far in the past"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// timestampMs is the metric's time in milliseconds, or now when it has none.
// A fractional Graphite timestamp keeps its milliseconds.
func timestampMs(m *metric.Metric, nowMs int64) int64 {
	tok := m.TimeToken()
	if len(tok) == 0 {
		return nowMs
	}
	if bytes.IndexByte(tok, '.') >= 0 {
		if f, err := strconv.ParseFloat(metric.UnsafeString(tok), 64); err == nil && f > 0 && f < 1e15 {
			return int64(f * 1000)
		}
	}
	if s := m.Time(); s > 0 {
		return s * 1000
	}
	return nowMs
}

// series returns the sorted labels of m's series (views valid until the
// next call), whether the mapping drops it, or why m cannot be a sample.
func (p *RemoteWrite) series(m *metric.Metric) ([]label, bool, error) {
	if m.Opaque() {
		return nil, false, errOpaque
	}
	if m.Format() == metric.StatsD {
		if m.Type() != metric.Gauge {
			return nil, false, errType
		}
		if v := m.ValueToken(); len(v) > 0 && (v[0] == '+' || v[0] == '-') {
			return nil, false, errType
		}
	}
	if v := m.Value(); v != v { // NaN
		return nil, false, errValue
	}
	ent := p.lookup(m.Name())
	if ent.drop {
		return nil, true, nil
	}
	labels := append(p.labels[:0], label{name: nameLabel, value: ent.name})
	arena := p.arena[:0]
	if m.Format() == metric.Graphite {
		labels, arena = p.addTags(labels, arena, m.PathTags(), ';', '=')
	} else {
		labels, arena = p.addTags(labels, arena, m.PathTags(), ',', '=')
		labels, arena = p.addTags(labels, arena, m.Tags(), ',', ':')
	}
	labels = append(labels, ent.labels...)
	slices.SortStableFunc(labels, func(a, b label) int { return bytes.Compare(a.name, b.name) })
	// the last of equal names wins: tags in order, then the mapping's labels
	out := labels[:0]
	for i := range labels {
		if i+1 < len(labels) && bytes.Equal(labels[i].name, labels[i+1].name) {
			continue
		}
		out = append(out, labels[i])
	}
	p.labels, p.arena = labels, arena
	return out, false, nil
}

var nameLabel = []byte("__name__")

// addTags appends the tags of s ("k=v" separated by sep, each optionally
// preceded by one), fixing names into arena. The arena is only appended to
// within a series, so earlier views stay valid.
func (p *RemoteWrite) addTags(labels []label, arena, s []byte, sep, kv byte) ([]label, []byte) {
	for len(s) > 0 {
		var tag []byte
		if i := bytes.IndexByte(s, sep); i >= 0 {
			tag, s = s[:i], s[i+1:]
		} else {
			tag, s = s, nil
		}
		if len(tag) == 0 {
			continue
		}
		i := bytes.IndexByte(tag, kv)
		if i <= 0 || i == len(tag)-1 {
			p.tagsInvalid.Add(1)
			continue
		}
		name, value := tag[:i], tag[i+1:]
		if !validLabelName(name) {
			p.labelsFixed.Add(1)
			if cap(arena)-len(arena) < len(name)+1 {
				// a new arena: the old one stays referenced by the labels so far
				arena = make([]byte, 0, max(2*cap(arena), 256, len(name)+1))
			}
			start := len(arena)
			arena = appendLabelName(arena, name)
			name = arena[start:len(arena):len(arena)]
		}
		if bytes.HasPrefix(name, []byte("__")) {
			p.tagsInvalid.Add(1) // reserved (__name__ and the like)
			continue
		}
		labels = append(labels, label{name: name, value: value})
	}
	return labels, arena
}

// lookup maps a metric name, through the cache.
func (p *RemoteWrite) lookup(name []byte) *mapped {
	if ent, ok := p.cache[string(name)]; ok {
		return ent
	}
	ent := p.mapName(string(name))
	if len(p.cache) >= maxCache {
		clear(p.cache)
	}
	p.cache[string(name)] = ent
	return ent
}

// mapName applies the mapping file, or the default, to name; it is what
// graphite_exporter does with a Graphite path (mapper type gauge).
func (p *RemoteWrite) mapName(name string) *mapped {
	if p.mapper == nil {
		return &mapped{name: metricName(name)}
	}
	mp, ls, ok := p.mapper.GetMapping(name, mapper.MetricTypeGauge)
	if !ok {
		return &mapped{name: metricName(name)}
	}
	if mp.Action == mapper.ActionTypeDrop {
		return &mapped{drop: true}
	}
	ent := &mapped{name: metricName(mp.Name)}
	for k, v := range ls {
		if v == "" {
			continue
		}
		n := []byte(k)
		if !validLabelName(n) {
			p.labelsFixed.Add(1)
			n = appendLabelName(nil, n)
		}
		ent.labels = append(ent.labels, label{name: n, value: []byte(v)})
	}
	slices.SortFunc(ent.labels, func(a, b label) int { return bytes.Compare(a.name, b.name) })
	return ent
}

// metricName is graphite_exporter's name: every character outside
// [a-zA-Z0-9_:] becomes '_', and, as statsd_exporter escapes names, a
// leading digit gets a '_' before it (Prometheus refuses such a name).
func metricName(s string) []byte {
	out := make([]byte, 0, len(s)+1)
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		out = append(out, '_')
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == ':' {
			out = append(out, c)
		} else {
			out = append(out, '_')
		}
	}
	return out
}

// validLabelName: [a-zA-Z_][a-zA-Z0-9_]*.
func validLabelName(b []byte) bool {
	if len(b) == 0 || b[0] >= '0' && b[0] <= '9' {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// appendLabelName appends name fixed as Prometheus's relabelling
// sanitizes label names: invalid bytes become '_', and a leading digit gets
// a '_' before it.
func appendLabelName(dst, name []byte) []byte {
	if len(name) == 0 || name[0] >= '0' && name[0] <= '9' {
		dst = append(dst, '_')
	}
	for _, c := range name {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' {
			dst = append(dst, c)
		} else {
			dst = append(dst, '_')
		}
	}
	return dst
}

var (
	_ registry.Output      = (*RemoteWrite)(nil)
	_ registry.Initializer = (*RemoteWrite)(nil)
	_ registry.Addresser   = (*RemoteWrite)(nil)
)
