package http_json

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	codec "github.com/metricsrouter/router/plugins/codec/statsd"
	"github.com/metricsrouter/router/plugins/metric"
)

// fields are the parameters of one metric as received (form or JSON), before
// validation. A nil or empty field is absent and takes its default.
type fields struct {
	value, rate, tags, shift, time []byte
}

// builder renders the metrics of one request as StatsD lines into one
// buffer, validating every field on the way, then parses the lines with the
// StatsD codec into a batch. Nothing is emitted unless every metric is valid.
type builder struct {
	cfg      *handlerConfig
	grant    string // key prefix the token allows
	useGrant bool   // jwt_prefix_claim is in force
	batch    bool   // a /batch request: errors carry the metric's index
	buf      []byte
	ends     []int // /batch: end of each line in buf
	lines    int
}

// Field names, as clients spell them.
const (
	fType       = "type"
	fKey        = "key"
	fValue      = "value"
	fSampleRate = "sampleRate"
	fTags       = "tags"
	fShift      = "shift"
	fTime       = "time"
	fBody       = "body"
)

// oneForm reads an application/x-www-form-urlencoded body. As with
// PostFormValue, the first occurrence of a field counts and unknown fields
// are ignored.
func (b *builder) oneForm(typ metric.Type, key string, body []byte) *fieldError {
	var f fields
	var seen uint8
	for len(body) > 0 {
		var pair []byte
		pair, body, _ = bytes.Cut(body, []byte{'&'})
		k, v, _ := bytes.Cut(pair, []byte{'='})
		if bytes.IndexByte(k, '%') >= 0 || bytes.IndexByte(k, '+') >= 0 {
			u, err := url.QueryUnescape(string(k))
			if err != nil {
				return &fieldError{msg: "bad form encoding", field: fBody, index: -1}
			}
			k = []byte(u)
		}
		var bit uint8
		var dst *[]byte
		switch string(k) {
		case fValue:
			bit, dst = 1, &f.value
		case fSampleRate:
			bit, dst = 2, &f.rate
		case fTags:
			bit, dst = 4, &f.tags
		case fShift:
			bit, dst = 8, &f.shift
		case fTime:
			bit, dst = 16, &f.time
		default:
			continue
		}
		if seen&bit != 0 {
			continue
		}
		seen |= bit
		if bytes.IndexByte(v, '%') >= 0 || bytes.IndexByte(v, '+') >= 0 {
			u, err := url.QueryUnescape(string(v))
			if err != nil {
				return &fieldError{msg: "bad form encoding", field: string(k), index: -1}
			}
			v = []byte(u)
		}
		*dst = v
	}
	b.grow(len(key) + len(b.cfg.prefix) + len(f.value) + len(f.rate) + len(f.tags) + len(f.shift) + len(f.time) + 16)
	return b.add(typ, key, &f, -1)
}

// oneMultipart reads a multipart/form-data body (already read into body).
func (b *builder) oneMultipart(typ metric.Type, key string, r *http.Request, body []byte) *fieldError {
	r.Body = readCloser{bytes.NewReader(body)}
	if err := r.ParseMultipartForm(b.cfg.maxBody); err != nil {
		return &fieldError{msg: "bad multipart body", field: fBody, index: -1}
	}
	get := func(name string) []byte {
		if vs := r.MultipartForm.Value[name]; len(vs) > 0 {
			return []byte(vs[0])
		}
		return nil
	}
	f := fields{value: get(fValue), rate: get(fSampleRate), tags: get(fTags), shift: get(fShift), time: get(fTime)}
	b.grow(len(key) + len(b.cfg.prefix) + len(body) + 16)
	return b.add(typ, key, &f, -1)
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// one adds a metric whose fields are already split out.
func (b *builder) one(typ metric.Type, key string, f *fields) *fieldError {
	b.grow(len(key) + len(b.cfg.prefix) + 16)
	return b.add(typ, key, f, -1)
}

// jsonMetric is one metric in a JSON body. Every field is kept raw and
// checked by hand, so that an error names the field.
type jsonMetric struct {
	Type       json.RawMessage `json:"type"`
	Key        json.RawMessage `json:"key"`
	Value      json.RawMessage `json:"value"`
	SampleRate json.RawMessage `json:"sampleRate"`
	Tags       json.RawMessage `json:"tags"`
	Shift      json.RawMessage `json:"shift"`
	Time       json.RawMessage `json:"time"`
}

// oneJSON reads {"value":…, "sampleRate":…, "tags":"k=v,…", "shift":…, "time":…}.
func (b *builder) oneJSON(typ metric.Type, key string, body []byte) *fieldError {
	var m jsonMetric
	if e := decodeObject(body, &m, -1); e != nil {
		return e
	}
	if m.Type != nil || m.Key != nil {
		f := fType
		if m.Key != nil {
			f = fKey
		}
		return &fieldError{msg: "type and key come from the URL here; use /batch to name them in the body", field: f, index: -1}
	}
	f, e := m.fields(-1)
	if e != nil {
		return e
	}
	b.grow(len(key) + len(b.cfg.prefix) + len(body) + 16)
	return b.add(typ, key, &f, -1)
}

// batchJSON reads [{"type":…, "key":…, "value":…, "sampleRate":…, "tags":…}, …].
func (b *builder) batchJSON(body []byte) *fieldError {
	if !json.Valid(body) {
		return &fieldError{msg: "body is not valid JSON", field: fBody, index: -1}
	}
	if c := firstByte(body); c != '[' {
		return &fieldError{msg: "/batch takes a JSON array of metrics", field: fBody, index: -1}
	}
	var items []jsonMetric
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&items); err != nil {
		// decode again element by element, to name the entry at fault
		var raws []json.RawMessage
		if json.Unmarshal(body, &raws) != nil {
			return &fieldError{msg: "/batch takes a JSON array of metrics", field: fBody, index: -1}
		}
		for i, raw := range raws {
			var m jsonMetric
			if e := decodeObject(raw, &m, i); e != nil {
				return e
			}
		}
		return &fieldError{msg: "/batch takes a JSON array of metrics", field: fBody, index: -1}
	}
	if len(items) > b.cfg.maxBatch {
		return &fieldError{msg: "more metrics than max_batch (" + strconv.Itoa(b.cfg.maxBatch) + ")", field: fBody, index: -1, code: http.StatusRequestEntityTooLarge}
	}
	b.batch = true
	b.grow(len(body) + len(items)*(len(b.cfg.prefix)+8))
	b.ends = make([]int, 0, len(items))
	for i := range items {
		m := &items[i]
		typ, e := jsonType(m.Type, i)
		if e != nil {
			return e
		}
		key, e := jsonString(m.Key, fKey, i)
		if e != nil {
			return e
		}
		if key == nil {
			return &fieldError{msg: "key is required", field: fKey, index: i}
		}
		f, e := m.fields(i)
		if e != nil {
			return e
		}
		if e := b.add(typ, string(key), &f, i); e != nil {
			return e
		}
	}
	return nil
}

func firstByte(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			return c
		}
	}
	return 0
}

// decodeObject decodes one JSON object strictly: unknown fields are errors.
func decodeObject(raw []byte, m *jsonMetric, index int) *fieldError {
	if !json.Valid(raw) {
		return &fieldError{msg: "body is not valid JSON", field: fBody, index: index}
	}
	if firstByte(raw) != '{' {
		return &fieldError{msg: "a metric is a JSON object", field: fBody, index: index}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(m); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			if u, err := strconv.Unquote(name); err == nil {
				name = u
			}
			return &fieldError{msg: "unknown field", field: name, index: index}
		}
		return &fieldError{msg: "bad JSON object", field: fBody, index: index}
	}
	return nil
}

func (m *jsonMetric) fields(index int) (fields, *fieldError) {
	var f fields
	var e *fieldError
	if f.value, e = jsonScalar(m.Value, fValue, index); e != nil {
		return f, e
	}
	if f.rate, e = jsonScalar(m.SampleRate, fSampleRate, index); e != nil {
		return f, e
	}
	if f.shift, e = jsonScalar(m.Shift, fShift, index); e != nil {
		return f, e
	}
	if f.time, e = jsonScalar(m.Time, fTime, index); e != nil {
		return f, e
	}
	if f.tags, e = jsonString(m.Tags, fTags, index); e != nil {
		return f, e
	}
	return f, nil
}

// jsonScalar returns a number's literal or a string's content; nil for an
// absent field, null or "".
func jsonScalar(raw json.RawMessage, field string, index int) ([]byte, *fieldError) {
	if len(raw) == 0 {
		return nil, nil
	}
	switch c := raw[0]; {
	case c == '"':
		return jsonString(raw, field, index)
	case c == '-' || c >= '0' && c <= '9':
		return raw, nil
	case c == 'n': // null
		return nil, nil
	}
	return nil, &fieldError{msg: "must be a number or a string", field: field, index: index}
}

// jsonString returns a string's content; nil for an absent field, null or "".
func jsonString(raw json.RawMessage, field string, index int) ([]byte, *fieldError) {
	if len(raw) == 0 || raw[0] == 'n' {
		return nil, nil
	}
	if raw[0] != '"' {
		return nil, &fieldError{msg: "must be a string", field: field, index: index}
	}
	if bytes.IndexByte(raw, '\\') < 0 && len(raw) >= 2 {
		// no escapes: the content is the text between the quotes (the
		// decoder has checked it)
		if len(raw) == 2 {
			return nil, nil
		}
		return raw[1 : len(raw)-1 : len(raw)-1], nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, &fieldError{msg: "must be a string", field: field, index: index}
	}
	if s == "" {
		return nil, nil
	}
	return []byte(s), nil
}

func jsonType(raw json.RawMessage, index int) (metric.Type, *fieldError) {
	s, e := jsonString(raw, fType, index)
	if e != nil {
		return 0, e
	}
	switch string(s) {
	case "count":
		return metric.Counter, nil
	case "gauge":
		return metric.Gauge, nil
	case "timing":
		return metric.Timer, nil
	case "set":
		return metric.Set, nil
	case "":
		return 0, &fieldError{msg: "type is required (count, gauge, timing or set)", field: fType, index: index}
	}
	return 0, &fieldError{msg: "unknown type: want count, gauge, timing or set", field: fType, index: index}
}

// grow makes room for n more bytes in the line buffer.
func (b *builder) grow(n int) {
	if b.buf == nil {
		b.buf = make([]byte, 0, n)
	}
}

// add validates one metric and renders it as a line:
//
//	dogstatsd: prefix+key:value|type[|@rate][|#k:v,k2:v2]
//	influx:    prefix+key[,k=v,k2=v2]:value|type[|@rate]
func (b *builder) add(typ metric.Type, key string, f *fields, index int) *fieldError {
	if !validKey(key) {
		return &fieldError{msg: "bad key: must be non-empty UTF-8 without spaces, control characters, ':', '|', '/' or ','", field: fKey, index: index}
	}
	if b.useGrant && !strings.HasPrefix(key, b.grant) {
		return &fieldError{msg: "key outside the token's prefix", field: fKey, index: index, code: http.StatusForbidden}
	}
	buf := append(b.buf, b.cfg.prefix...)
	buf = append(buf, key...)
	var ok bool
	if len(f.tags) > 0 && b.cfg.influx {
		if buf, ok = appendTags(buf, f.tags, true); !ok {
			return tagsError(index)
		}
	}
	buf = append(buf, ':')
	value, field := f.value, fValue
	switch typ {
	case metric.Counter, metric.Set:
		if len(value) == 0 {
			value = one
		}
	case metric.Gauge:
		if len(f.shift) > 0 {
			value, field = f.shift, fShift
		} else if len(value) == 0 {
			value = one
		}
	case metric.Timer:
		if len(f.time) > 0 {
			value, field = f.time, fTime
		} else if len(value) == 0 {
			return &fieldError{msg: "time (milliseconds) is required", field: fTime, index: index}
		}
	}
	switch {
	case typ == metric.Set:
		if !validMember(value) {
			return &fieldError{msg: "bad set member: must be UTF-8 without spaces, control characters, ':' or '|'", field: field, index: index}
		}
		buf = append(buf, value...)
	case field == fShift:
		if value[0] != '-' {
			buf = append(buf, '+')
		}
		if buf, ok = appendNumber(buf, value, false); !ok {
			return &fieldError{msg: "must be a finite number", field: field, index: index}
		}
	default:
		if buf, ok = appendNumber(buf, value, typ == metric.Timer); !ok {
			msg := "must be a finite number"
			if typ == metric.Timer {
				msg = "must be a finite number >= 0"
			}
			return &fieldError{msg: msg, field: field, index: index}
		}
	}
	buf = append(buf, '|')
	buf = append(buf, typ.String()...)
	// statsd-http-proxy sends a rate for counters and timings only; it is
	// forwarded, not applied (nothing is dropped here).
	if len(f.rate) > 0 && (typ == metric.Counter || typ == metric.Timer) {
		r, ok := parseNumber(f.rate)
		if !ok || !(r > 0 && r <= 1) {
			return &fieldError{msg: "must be a number in (0, 1]", field: fSampleRate, index: index}
		}
		if r < 1 {
			buf = append(buf, '|', '@')
			buf, _ = appendNumber(buf, f.rate, true)
		}
	}
	if len(f.tags) > 0 && !b.cfg.influx {
		buf = append(buf, '|', '#')
		if buf, ok = appendTags(buf, f.tags, false); !ok {
			return tagsError(index)
		}
	}
	b.buf = buf
	b.lines++
	if b.batch {
		b.ends = append(b.ends, len(buf))
	}
	return nil
}

var one = []byte{'1'}

func tagsError(index int) *fieldError {
	return &fieldError{msg: "bad tags: want k=v,k2=v2 without spaces, control characters, ':', '|', '#', '@', ',' or '=' in keys and values", field: fTags, index: index}
}

// finish parses the rendered lines into a batch. Validation guarantees they
// parse; an error here is a bug, answered 400 rather than emitted.
func (b *builder) finish() (metric.Batch, *fieldError) {
	if b.lines == 0 {
		return nil, nil
	}
	batch := make(metric.Batch, b.lines)
	if !b.batch {
		if err := codec.Parse(b.buf[:len(b.buf):len(b.buf)], &batch[0]); err != nil {
			return nil, &fieldError{msg: "metric does not parse: " + err.Error(), field: fBody, index: -1}
		}
		return batch, nil
	}
	start := 0
	for i, end := range b.ends {
		if err := codec.Parse(b.buf[start:end:end], &batch[i]); err != nil {
			return nil, &fieldError{msg: "metric does not parse: " + err.Error(), field: fBody, index: i}
		}
		start = end
	}
	return batch, nil
}

// validKey: non-empty UTF-8 without spaces, control characters, ':' (ends
// the name), '|' (starts a section), ',' (starts Influx tags) or '/'.
func validKey(s string) bool {
	if s == "" {
		return false
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c == 0x7f || c == ':' || c == '|' || c == ',' || c == '/':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.ValidString(s)
}

// validMember checks a set member: like a key, but ',' and '/' are fine.
func validMember(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	ascii := true
	for _, c := range s {
		switch {
		case c <= ' ' || c == 0x7f || c == ':' || c == '|':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.Valid(s)
}

func validTagPart(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	ascii := true
	for _, c := range s {
		switch {
		case c <= ' ' || c == 0x7f || c == ':' || c == '|' || c == '#' || c == '@' || c == ',' || c == '=':
			return false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return ascii || utf8.Valid(s)
}

// appendTags renders "k=v,k2=v2" (spaces around pairs allowed) as Influx
// ",k=v,k2=v2" or DogStatsD "k:v,k2:v2".
func appendTags(dst, tags []byte, influx bool) ([]byte, bool) {
	first := true
	for len(tags) > 0 {
		var pair []byte
		var more bool
		pair, tags, more = bytes.Cut(tags, []byte{','})
		pair = bytes.Trim(pair, " ")
		k, v, ok := bytes.Cut(pair, []byte{'='})
		if !ok || !validTagPart(k) || !validTagPart(v) || (more && len(tags) == 0) {
			return dst, false
		}
		switch {
		case influx:
			dst = append(dst, ',')
		case !first:
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, k...)
		if influx {
			dst = append(dst, '=')
		} else {
			dst = append(dst, ':')
		}
		dst = append(dst, v...)
	}
	return dst, true
}

// appendNumber appends tok as a plain decimal ("-12.5") that every StatsD
// server reads: tok must be a finite number (a JSON number, or what a form
// sends); a leading '+' is dropped and exponents are expanded.
func appendNumber(dst, tok []byte, nonNegative bool) ([]byte, bool) {
	if plainDecimal(tok) {
		if nonNegative && tok[0] == '-' && !allZero(tok[1:]) {
			return dst, false
		}
		return append(dst, tok...), true
	}
	f, ok := parseNumber(tok)
	if !ok || (nonNegative && f < 0) {
		return dst, false
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64), true
}

// plainDecimal matches -?[0-9]+(\.[0-9]+)? of at most 64 bytes.
func plainDecimal(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	i := 0
	if b[0] == '-' {
		i = 1
	}
	digits, dot := 0, false
	for ; i < len(b); i++ {
		switch c := b[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot && digits > 0:
			dot, digits = true, 0
		default:
			return false
		}
	}
	return digits > 0
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != '0' && c != '.' {
			return false
		}
	}
	return true
}

// parseNumber parses a decimal number made of [0-9+-.eE] only (no "Inf",
// "NaN", hex or underscores), finite.
func parseNumber(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 64 {
		return 0, false
	}
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, false
	}
	return f, true
}
