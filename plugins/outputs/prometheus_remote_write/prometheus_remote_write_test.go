package prometheus_remote_write

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"
	"google.golang.org/protobuf/encoding/protowire"

	graphite "github.com/metricsrouter/router/plugins/codec/graphite"
	statsd "github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// series is one decoded TimeSeries: its labels as `k="v"` joined by ',',
// in wire order, and its samples.
type series struct {
	labels  string
	samples []smp
}

type smp struct {
	v  float64
	ts int64
}

// decodeWriteRequest reads a WriteRequest with protowire, failing on any
// field remote-write 1.0 does not have here.
func decodeWriteRequest(b []byte) ([]series, error) {
	var out []series
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 || num != 1 || typ != protowire.BytesType {
			return nil, fmt.Errorf("WriteRequest: field %d type %d", num, typ)
		}
		b = b[n:]
		tsb, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return nil, errors.New("timeseries: bad length")
		}
		b = b[n:]
		var s series
		var labels []string
		for len(tsb) > 0 {
			num, typ, n := protowire.ConsumeTag(tsb)
			if n < 0 || typ != protowire.BytesType {
				return nil, errors.New("TimeSeries: bad tag")
			}
			tsb = tsb[n:]
			sub, n := protowire.ConsumeBytes(tsb)
			if n < 0 {
				return nil, errors.New("TimeSeries: bad length")
			}
			tsb = tsb[n:]
			switch num {
			case 1:
				var name, value []byte
				for len(sub) > 0 {
					f, _, n := protowire.ConsumeTag(sub)
					sub = sub[n:]
					v, n := protowire.ConsumeBytes(sub)
					if n < 0 {
						return nil, errors.New("Label: bad")
					}
					sub = sub[n:]
					if f == 1 {
						name = v
					} else {
						value = v
					}
				}
				labels = append(labels, fmt.Sprintf("%s=%q", name, value))
			case 2:
				var sm smp
				for len(sub) > 0 {
					f, t, n := protowire.ConsumeTag(sub)
					sub = sub[n:]
					switch {
					case f == 1 && t == protowire.Fixed64Type:
						v, n := protowire.ConsumeFixed64(sub)
						sub = sub[n:]
						sm.v = math.Float64frombits(v)
					case f == 2 && t == protowire.VarintType:
						v, n := protowire.ConsumeVarint(sub)
						sub = sub[n:]
						sm.ts = int64(v)
					default:
						return nil, fmt.Errorf("Sample: field %d type %d", f, t)
					}
				}
				s.samples = append(s.samples, sm)
			default:
				return nil, fmt.Errorf("TimeSeries: field %d", num)
			}
		}
		s.labels = strings.Join(labels, ",")
		out = append(out, s)
	}
	return out, nil
}

// receiver is a remote-write endpoint on 127.0.0.1 that records what it got
// and answers with the next status of its script (200 when none is left).
type receiver struct {
	mu      sync.Mutex
	got     []series
	headers []http.Header
	script  []int
	body    string
	srv     *httptest.Server
	errs    []error
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{script: script}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.headers = append(r.headers, req.Header.Clone())
		code := http.StatusNoContent
		if len(r.script) > 0 {
			code, r.script = r.script[0], r.script[1:]
		}
		if code/100 == 2 {
			raw, err := s2.Decode(nil, b)
			if err != nil {
				r.errs = append(r.errs, err)
			}
			ss, err := decodeWriteRequest(raw)
			if err != nil {
				r.errs = append(r.errs, err)
			}
			r.got = append(r.got, ss...)
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, r.body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) series(t *testing.T) []series {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) > 0 {
		t.Fatalf("decode: %v", r.errs)
	}
	return slices.Clone(r.got)
}

func newOutput(t *testing.T, rw *RemoteWrite) *plugintest.Metrics {
	t.Helper()
	env, ms := plugintest.Env(t, "outputs.prometheus_remote_write")
	if rw.Timeout == 0 {
		rw.Timeout = registry.Duration(5 * time.Second)
	}
	if err := rw.Init(env); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rw.Close() })
	return ms
}

func graphiteBatch(t testing.TB, lines ...string) metric.Batch {
	b := make(metric.Batch, len(lines))
	for i, l := range lines {
		if err := graphite.Parse([]byte(l), &b[i]); err != nil {
			t.Fatalf("parse %q: %v", l, err)
		}
	}
	return b
}

func TestMapping(t *testing.T) {
	// Each case: a Graphite line, and the series graphite_exporter would
	// expose for it with testdata/mapping.yaml (name and labels), or "" when
	// the mapping drops it.
	cases := []struct{ name, line, want string }{
		{"glob with captures", "test.dispatcher.FooProcessor.send.success 1 1700000000",
			`__name__="dispatcher_events_total",action="send",job="test_dispatcher",outcome="success",processor="FooProcessor"`},
		{"glob ${1} template", "foo_product.signup.facebook.failure 2 1700000000",
			`__name__="signup_events_total",job="foo_product_server",outcome="failure",provider="facebook"`},
		{"regex", "servers.rack-003-server-c4de.networking.subnetworks.transmissions.eth0.failure.mean_rate 3 1700000000",
			`__name__="servers_networking_transmissions_failure_mean_rate",device="eth0",hostname="rack-003-server-c4de"`},
		{"drop", "noise.a.b 4 1700000000", ""},
		{"no match: default name", "carbon.agents.host-1.cpu.usage 5 1700000000",
			`__name__="carbon_agents_host_1_cpu_usage"`},
		{"no match: leading digit", "1st.metric 6 1700000000", `__name__="_1st_metric"`},
		{"tags become labels", "disk.used;host=a;dc=eu-1 7 1700000000",
			`__name__="disk_used",dc="eu-1",host="a"`},
		{"mapping label beats tag", "app.eu.requests;region=us;env=prod 8 1700000000",
			`__name__="app_requests",env="prod",region="eu"`},
		{"invalid tag names fixed", "x.y;my-tag=1;9lives=2 9 1700000000",
			`_9lives="2",__name__="x_y",my_tag="1"`},
		{"last duplicate tag wins", "x.z;k=1;k=2 10 1700000000", `__name__="x_z",k="2"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := newReceiver(t)
			rw := &RemoteWrite{URL: r.srv.URL + "/api/v1/write", MappingFile: "testdata/mapping.yaml"}
			ms := newOutput(t, rw)
			if err := rw.Write(t.Context(), graphiteBatch(t, tc.line)); err != nil {
				t.Fatal(err)
			}
			got := r.series(t)
			if tc.want == "" {
				if len(got) != 0 || ms.Get("mapping_dropped_total") != 1 {
					t.Fatalf("got %v, dropped %d; want dropped", got, ms.Get("mapping_dropped_total"))
				}
				return
			}
			if len(got) != 1 || got[0].labels != tc.want {
				t.Fatalf("got %+v\nwant %s", got, tc.want)
			}
		})
	}
}

func TestLabelsFixedCounted(t *testing.T) {
	r := newReceiver(t)
	rw := &RemoteWrite{URL: r.srv.URL}
	ms := newOutput(t, rw)
	b := graphiteBatch(t, "a.b;my-tag=1;ok=2;9x=3 1 1700000000", "a.c;__reserved=1 1 1700000000")
	if err := rw.Write(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if n := ms.Get("label_names_fixed_total"); n != 2 {
		t.Errorf("label_names_fixed_total = %d, want 2", n)
	}
	if n := ms.Get("tags_invalid_total"); n != 1 {
		t.Errorf("tags_invalid_total = %d, want 1", n)
	}
	got := r.series(t)
	if len(got) != 2 || got[1].labels != `__name__="a_c"` {
		t.Fatalf("got %+v", got)
	}
}

func TestEncodingAndHeaders(t *testing.T) {
	r := newReceiver(t)
	rw := &RemoteWrite{URL: r.srv.URL + "/api/v1/write", Headers: map[string]string{"X-Scope-OrgID": "t1"},
		BasicAuth: &BasicAuth{Username: "u", Password: "p"}}
	newOutput(t, rw)
	b := graphiteBatch(t, "a.b 1.5 1700000000", "a.c -2 1700000001.25", "a.d 1e300 1700000002")
	if err := rw.Write(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	got := r.series(t)
	want := []series{
		{`__name__="a_b"`, []smp{{1.5, 1700000000000}}},
		{`__name__="a_c"`, []smp{{-2, 1700000001250}}},
		{`__name__="a_d"`, []smp{{1e300, 1700000002000}}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	h := r.headers[0]
	for k, v := range map[string]string{
		"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
		"X-Prometheus-Remote-Write-Version": "0.1.0", "X-Scope-Orgid": "t1",
	} {
		if h.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, h.Get(k), v)
		}
	}
	if u, p, ok := (&http.Request{Header: h}).BasicAuth(); !ok || u != "u" || p != "p" {
		t.Errorf("basic auth = %q %q %v", u, p, ok)
	}
}

func TestBearerTokenFile(t *testing.T) {
	r := newReceiver(t)
	f := t.TempDir() + "/token"
	if err := writeFile(f, "s3cret\n"); err != nil {
		t.Fatal(err)
	}
	rw := &RemoteWrite{URL: r.srv.URL, BearerTokenFile: f}
	newOutput(t, rw)
	if err := rw.Write(t.Context(), graphiteBatch(t, "a 1 1700000000")); err != nil {
		t.Fatal(err)
	}
	if got := r.headers[0].Get("Authorization"); got != "Bearer s3cret" {
		t.Fatalf("Authorization = %q", got)
	}
}

func TestStatusCodes(t *testing.T) {
	cases := []struct {
		code       int
		body       string
		rejected   bool
		retried    bool
		outOfOrder uint64
	}{
		{200, "", false, false, 0},
		{204, "", false, false, 0},
		{400, "out of order sample", true, false, 1},
		{400, "bad labels", true, false, 0},
		{401, "", true, false, 0},
		{404, "", true, false, 0},
		{429, "", false, true, 0},
		{500, "", false, true, 0},
		{503, "", false, true, 0},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.code, tc.body), func(t *testing.T) {
			r := newReceiver(t, tc.code)
			r.body = tc.body
			rw := &RemoteWrite{URL: r.srv.URL}
			ms := newOutput(t, rw)
			err := rw.Write(t.Context(), graphiteBatch(t, "a 1 1700000000"))
			if got := errors.Is(err, registry.ErrRejected); got != tc.rejected {
				t.Errorf("rejected = %v (%v), want %v", got, err, tc.rejected)
			}
			if got := err != nil && !errors.Is(err, registry.ErrRejected); got != tc.retried {
				t.Errorf("retried = %v (%v), want %v", got, err, tc.retried)
			}
			if n := ms.Get("out_of_order_total"); n != tc.outOfOrder {
				t.Errorf("out_of_order_total = %d, want %d", n, tc.outOfOrder)
			}
		})
	}
}

func TestStatsD(t *testing.T) {
	r := newReceiver(t)
	rw := &RemoteWrite{URL: r.srv.URL}
	newOutput(t, rw)
	lines := []string{"gauge.a:3|g|#env:prod,bare", "cnt:1|c", "gauge.b:+1|g", "tm:3|ms", "gauge.c,host=h1:4|g"}
	b := make(metric.Batch, len(lines))
	for i, l := range lines {
		if err := statsd.Parse([]byte(l), &b[i]); err != nil {
			t.Fatal(err)
		}
	}
	err := rw.Write(t.Context(), b)
	var pr registry.PartlyRejected
	if !errors.As(err, &pr) || pr.Rejected() != 3 || !errors.Is(err, registry.ErrRejected) {
		t.Fatalf("err = %v, want 3 refused", err)
	}
	got := r.series(t)
	if len(got) != 2 || got[0].labels != `__name__="gauge_a",env="prod"` || got[1].labels != `__name__="gauge_c",host="h1"` {
		t.Fatalf("got %+v", got)
	}
	if got[0].samples[0].v != 3 || time.Since(time.UnixMilli(got[0].samples[0].ts)) > time.Minute {
		t.Fatalf("sample %+v: want 3 at about now", got[0].samples[0])
	}
}

func TestInitErrors(t *testing.T) {
	for name, rw := range map[string]*RemoteWrite{
		"bad url":      {URL: "ftp://x"},
		"two auths":    {URL: "http://x/", BearerToken: "a", BasicAuth: &BasicAuth{Username: "u"}},
		"no mapping":   {URL: "http://x/", MappingFile: "testdata/none.yaml"},
		"token file":   {URL: "http://x/", BearerTokenFile: "testdata/none.token"},
		"header lines": {URL: "http://x/", Headers: map[string]string{"A": "b\nc"}},
	} {
		t.Run(name, func(t *testing.T) {
			env, _ := plugintest.Env(t, "outputs.prometheus_remote_write")
			rw.Timeout = registry.Duration(time.Second)
			if err := rw.Init(env); err == nil {
				t.Fatal("Init: no error")
			}
		})
	}
}

func TestWriteAllocs(t *testing.T) {
	rw := &RemoteWrite{URL: "http://127.0.0.1:1/", MappingFile: "testdata/mapping.yaml"}
	newOutput(t, rw)
	b := benchBatch(t, 1000)
	enc := func() {
		raw := rw.raw[:0]
		for i := range b {
			labels, drop, err := rw.series(&b[i])
			if err == nil && !drop {
				raw = appendSeries(raw, labels, b[i].Value(), 1)
			}
		}
		rw.raw = raw
	}
	enc()
	if n := testing.AllocsPerRun(10, enc); n != 0 {
		t.Fatalf("%v allocations per 1000-metric batch once warm, want 0", n)
	}
}

func benchBatch(t testing.TB, n int) metric.Batch {
	lines := make([]string, n)
	for i := range lines {
		switch i % 4 {
		case 0:
			lines[i] = fmt.Sprintf("test.dispatcher.P%d.send.success %d 1700000000", i%50, i)
		case 1:
			lines[i] = fmt.Sprintf("app.r%d.requests;host=h%d;dc=eu %d 1700000000", i%10, i%7, i)
		case 2:
			lines[i] = fmt.Sprintf("plain.metric.%d %d 1700000000", i, i)
		default:
			lines[i] = fmt.Sprintf("noise.%d.x %d 1700000000", i, i)
		}
	}
	return graphiteBatch(t, lines...)
}

func BenchmarkWrite(b *testing.B) {
	r := newReceiverB(b)
	rw := &RemoteWrite{URL: r.URL, MappingFile: "testdata/mapping.yaml", Timeout: registry.Duration(5 * time.Second)}
	env := registry.Env{Log: plugintest.Logger(b), Metrics: plugintest.NewMetrics()}
	if err := rw.Init(env); err != nil {
		b.Fatal(err)
	}
	batch := benchBatch(b, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := rw.Write(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

func newReceiverB(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}
