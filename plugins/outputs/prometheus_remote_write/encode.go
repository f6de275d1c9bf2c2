package prometheus_remote_write

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The remote-write 1.0 WriteRequest, marshalled by hand into a reused
// buffer (prometheus/prompb/types.proto and remote.proto):
//
//	WriteRequest { repeated TimeSeries timeseries = 1; }
//	TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
//	Label        { string name = 1; string value = 2; }
//	Sample       { double value = 1; int64 timestamp = 2; }  // ms since the epoch

// label is a name and value, both views into a metric, the mapping cache
// or the output's scratch arena.
type label struct{ name, value []byte }

func labelSize(l *label) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(len(l.name)) +
		protowire.SizeTag(2) + protowire.SizeBytes(len(l.value))
}

func sampleSize(ts int64) int {
	n := protowire.SizeTag(1) + protowire.SizeFixed64()
	if ts != 0 {
		n += protowire.SizeTag(2) + protowire.SizeVarint(uint64(ts))
	}
	return n
}

// appendSeries appends one WriteRequest.timeseries entry with one sample;
// labels must be sorted by name.
func appendSeries(dst []byte, labels []label, v float64, ts int64) []byte {
	size := 0
	for i := range labels {
		size += protowire.SizeTag(1) + protowire.SizeBytes(labelSize(&labels[i]))
	}
	ss := sampleSize(ts)
	size += protowire.SizeTag(2) + protowire.SizeBytes(ss)

	dst = protowire.AppendTag(dst, 1, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(size))
	for i := range labels {
		l := &labels[i]
		dst = protowire.AppendTag(dst, 1, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(labelSize(l)))
		dst = protowire.AppendTag(dst, 1, protowire.BytesType)
		dst = protowire.AppendBytes(dst, l.name)
		dst = protowire.AppendTag(dst, 2, protowire.BytesType)
		dst = protowire.AppendBytes(dst, l.value)
	}
	dst = protowire.AppendTag(dst, 2, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(ss))
	dst = protowire.AppendTag(dst, 1, protowire.Fixed64Type)
	dst = protowire.AppendFixed64(dst, math.Float64bits(v))
	if ts != 0 {
		dst = protowire.AppendTag(dst, 2, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(ts))
	}
	return dst
}
