package jsonmetric

// The encoding/json reading of an object, kept as the reference of Parse.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/metricsrouter/router/plugins/codec/graphite"
	"github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

// object is the JSON form of a metric.
type object struct {
	Name      *string         `json:"name"`
	Value     json.RawMessage `json:"value"`
	Type      *string         `json:"type"`
	Rate      json.RawMessage `json:"rate"`
	Delta     bool            `json:"delta"`
	Timestamp json.RawMessage `json:"timestamp"`
	Tags      tagList         `json:"tags"`
	KeyTags   tagList         `json:"key_tags"`
}

type tag struct {
	key, value string
	hasValue   bool
}

// tagList is a JSON object of string or null members, in order.
type tagList struct {
	set  bool
	tags []tag
}

func (l *tagList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*l = tagList{}
		return nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return ErrTag
	}
	l.set, l.tags = true, l.tags[:0]
	for d.More() {
		kt, err := d.Token()
		if err != nil {
			return ErrTag
		}
		k, _ := kt.(string)
		vt, err := d.Token()
		if err != nil {
			return ErrTag
		}
		switch v := vt.(type) {
		case string:
			l.tags = append(l.tags, tag{k, v, true})
		case nil:
			if k != "" {
				l.tags = append(l.tags, tag{key: k})
			}
		default:
			return ErrTag
		}
	}
	return nil
}

// parseReference is Parse written with encoding/json: the reference the
// hand-written reader is compared with (FuzzParseDifferential). now stamps
// a Graphite object without timestamp.
func parseReference(obj []byte, m *metric.Metric, arena []byte, now func() time.Time) ([]byte, error) {
	var o object
	if err := json.Unmarshal(obj, &o); err != nil {
		return arena, fmt.Errorf("%w: %v", ErrObject, err)
	}
	if o.Name == nil || len(o.Value) == 0 {
		return arena, fmt.Errorf("%w: want name and value", ErrObject)
	}
	// The line is shorter than the object, but for a timestamp Parse adds
	// and strings that decode longer.
	need := len(obj) + 32
	if cap(arena)-len(arena) < need {
		arena = make([]byte, 0, max(minArena, need))
	}
	start := len(arena)
	line := arena[start:start]
	var err error
	if o.Type == nil {
		line, err = refGraphiteLine(line, &o, now)
	} else {
		line, err = refStatsdLine(line, &o)
	}
	if err != nil {
		return arena[:start], err
	}
	// A line longer than expected (invalid UTF-8 in the object decodes to
	// U+FFFD, 3 bytes for 1) was moved by append into memory of its own:
	// the arena then stays as it was.
	inArena := cap(line) == cap(arena)-start
	line = line[:len(line):len(line)]
	if o.Type == nil {
		err = graphite.Parse(line, m)
	} else {
		err = statsd.Parse(line, m)
		if err == nil && len(m.Ext()) > 0 {
			err = ErrExt
		}
	}
	if err != nil || !inArena {
		return arena[:start], err
	}
	return arena[:start+len(line)], nil
}

func refGraphiteLine(line []byte, o *object, now func() time.Time) ([]byte, error) {
	name := []byte(*o.Name)
	if len(name) == 0 || !clean(name, gName) {
		return line, ErrName
	}
	if o.Rate != nil || o.Delta || o.KeyTags.set {
		return line, fmt.Errorf("%w: rate, delta or key_tags without type", ErrObject)
	}
	val, _, err := number(o.Value)
	if err != nil {
		return line, err
	}
	line = append(line, name...)
	for _, t := range o.Tags.tags {
		if !clean([]byte(t.key), gTagKey) || (t.hasValue && !clean([]byte(t.value), gTagVal)) {
			return line, ErrTag
		}
		line = append(line, ';')
		line = append(line, t.key...)
		if t.hasValue {
			line = append(line, '=')
			line = append(line, t.value...)
		}
	}
	line = append(line, ' ')
	line = append(line, val...)
	line = append(line, ' ')
	if o.Timestamp != nil {
		ts, _, err := number(o.Timestamp)
		if err != nil {
			return line, ErrTime
		}
		line = append(line, ts...)
	} else {
		line = strconv.AppendInt(line, now().Unix(), 10)
	}
	return line, nil
}

func refStatsdLine(line []byte, o *object) ([]byte, error) {
	typ, ok := metric.ParseType([]byte(*o.Type))
	if !ok {
		return line, ErrType
	}
	name := []byte(*o.Name)
	if len(name) == 0 || !clean(name, sName) {
		return line, ErrName
	}
	line = append(line, name...)
	for _, t := range o.KeyTags.tags {
		if !clean([]byte(t.key), sKeyKey) || (t.hasValue && !clean([]byte(t.value), sKeyVal)) {
			return line, ErrTag
		}
		line = append(line, ',')
		line = append(line, t.key...)
		if t.hasValue {
			line = append(line, '=')
			line = append(line, t.value...)
		}
	}
	line = append(line, ':')
	if o.Delta && typ != metric.Gauge {
		return line, ErrDelta
	}
	if typ == metric.Set {
		var member string
		if o.Value[0] == '"' {
			if err := json.Unmarshal(o.Value, &member); err != nil {
				return line, ErrValue
			}
		} else if _, _, err := number(o.Value); err == nil {
			member = string(o.Value)
		} else {
			return line, ErrValue
		}
		if member == "" || !clean([]byte(member), sMember) {
			return line, ErrValue
		}
		line = append(line, member...)
	} else {
		val, v, err := number(o.Value)
		if err != nil {
			return line, err
		}
		if typ == metric.Gauge {
			if o.Delta && val[0] != '-' {
				line = append(line, '+')
			} else if !o.Delta && (v < 0 || val[0] == '-') {
				return line, ErrDelta
			}
		}
		line = append(line, val...)
	}
	line = append(line, '|')
	line = append(line, typ.String()...)
	if o.Rate != nil {
		r, v, err := number(o.Rate)
		if err != nil || !(v > 0) {
			return line, ErrRate
		}
		line = append(line, '|', '@')
		line = append(line, r...)
	}
	if o.Tags.set {
		line = append(line, '|', '#')
		for i, t := range o.Tags.tags {
			if !clean([]byte(t.key), sDogKey) || (t.hasValue && !clean([]byte(t.value), sDogVal)) {
				return line, ErrTag
			}
			if i > 0 {
				line = append(line, ',')
			}
			line = append(line, t.key...)
			if t.hasValue {
				line = append(line, ':')
				line = append(line, t.value...)
			}
		}
	}
	if o.Timestamp != nil {
		ts := []byte(o.Timestamp)
		if len(ts) == 0 || !allDigits(ts) {
			return line, ErrTime
		}
		line = append(line, '|', 'T')
		line = append(line, ts...)
	}
	return line, nil
}
