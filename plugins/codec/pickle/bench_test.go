package pickle

import (
	"bytes"
	"strconv"
	"testing"

	ogorek "github.com/kisielk/og-rek"

	"github.com/metricsrouter/router/plugins/metric"
)

// benchPoints are 500 datapoints with carbon-like names.
func benchPoints() []point {
	pts := make([]point, 500)
	for i := range pts {
		pts[i] = point{"servers.host-" + strconv.Itoa(i%50) + ".cpu.cpu" + strconv.Itoa(i/50) + ".user",
			strconv.Itoa(1700000000 + i), float64(i) * 0.25}
	}
	return pts
}

func benchMessage(b *testing.B) []byte {
	var e Encoder
	return encodeMessage(b, &e, nil, benchPoints())[4:]
}

func reportPerPoint(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/datapoint")
}

// BenchmarkDecode: one 500-datapoint protocol-2 message to lines.
func BenchmarkDecode(b *testing.B) {
	msg := benchMessage(b)
	var d Decoder
	var dst []byte
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		var err error
		dst, _, err = d.Decode(dst[:0], msg)
		if err != nil {
			b.Fatal(err)
		}
	}
	reportPerPoint(b, 500)
}

// BenchmarkDecodeOgRek: the same message with og-rek, to Go values only.
func BenchmarkDecodeOgRek(b *testing.B) {
	msg := benchMessage(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := ogorek.NewDecoder(bytes.NewReader(msg)).Decode(); err != nil {
			b.Fatal(err)
		}
	}
	reportPerPoint(b, 500)
}

// BenchmarkEncode: 500 Graphite metrics into one message.
func BenchmarkEncode(b *testing.B) {
	ms := make([]metric.Metric, 500)
	for i, p := range benchPoints() {
		var err error
		ms[i], err = parseLine(p.name + " " + strconv.FormatFloat(p.value, 'f', -1, 64) + " " + p.ts)
		if err != nil {
			b.Fatal(err)
		}
	}
	var e Encoder
	dst := make([]byte, 0, 64<<10)
	b.ReportAllocs()
	for b.Loop() {
		dst = e.Begin(dst[:0])
		for i := range ms {
			dst, _ = e.AppendMetric(dst, &ms[i], 0)
		}
		dst = e.End(dst)
	}
	reportPerPoint(b, 500)
}
