package keystore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/metricsrouter/router/registry"
)

// Key file formats, chosen by the file's extension.
const (
	formatTOML = "toml"
	formatJSON = "json"
)

func formatOf(path string) (string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".toml":
		return formatTOML, nil
	case ".json":
		return formatJSON, nil
	}
	return "", fmt.Errorf("keystore: key file %q: name it *.toml or *.json (the extension gives the format)", path)
}

// keysFile is a parsed key file: its pairs, and how to write it back.
type keysFile struct {
	format string
	table  bool   // keys under [keys] (TOML) or "keys": {...} (JSON)
	header string // TOML: the comment lines the file starts with
	pairs  []pair
	skip   []skipped
}

// parseKeysFile reads name -> key pairs: top-level `name = "key"` pairs or a
// [keys] table in TOML; {"name": "key"} or {"keys": {...}} in JSON.
func parseKeysFile(data []byte, format string) (*keysFile, error) {
	kf := &keysFile{format: format}
	top := map[string]any{}
	switch format {
	case formatTOML:
		if _, err := toml.Decode(string(data), &top); err != nil {
			var pe toml.ParseError
			if errors.As(err, &pe) {
				return nil, fmt.Errorf("line %d: %s", pe.Position.Line, pe.Message)
			}
			return nil, err
		}
		kf.header = leadingComments(data)
	default:
		if len(bytes.TrimSpace(data)) > 0 {
			d := json.NewDecoder(bytes.NewReader(data))
			d.UseNumber()
			if err := d.Decode(&top); err != nil {
				return nil, fmt.Errorf("json: %w", err)
			}
			if d.More() {
				return nil, errors.New("json: more than one value")
			}
		}
	}
	if inner, ok := top["keys"].(map[string]any); ok {
		if len(top) > 1 {
			return nil, errors.New(`with a "keys" table, no other top-level key is allowed`)
		}
		kf.table = true
		top = inner
	}
	for name, v := range top {
		key, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%q: the key must be a string", name)
		}
		if reason, ok := validSourceName(name); !ok {
			kf.skip = append(kf.skip, skipped{name, reason})
			continue
		}
		kf.pairs = append(kf.pairs, pair{name, key})
	}
	sort.Slice(kf.pairs, func(i, j int) bool { return kf.pairs[i].name < kf.pairs[j].name })
	sort.Slice(kf.skip, func(i, j int) bool { return kf.skip[i].name < kf.skip[j].name })
	return kf, nil
}

// leadingComments returns the comment and blank lines a TOML file starts with.
func leadingComments(data []byte) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(data), "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			break
		}
		b.WriteString(line)
	}
	h := strings.TrimRight(b.String(), "\n")
	if h == "" {
		return ""
	}
	return h + "\n\n"
}

// render writes the file back in its format, names sorted. Comments other
// than the leading ones are not kept.
func (kf *keysFile) render() ([]byte, error) {
	m := make(map[string]string, len(kf.pairs))
	for _, p := range kf.pairs {
		m[p.name] = p.key
	}
	var v any = m
	if kf.table {
		v = map[string]map[string]string{"keys": m}
	}
	var buf bytes.Buffer
	if kf.format == formatJSON {
		enc := json.NewEncoder(&buf)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	buf.WriteString(kf.header)
	enc := toml.NewEncoder(&buf)
	enc.Indent = ""
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fileStore reads keys from a TOML or JSON file and reloads it when it
// changes (size, mtime or inode, polled).
type fileStore struct {
	*base
	path     string
	format   string
	interval time.Duration

	last       os.FileInfo // stat before the last load attempt
	pending    os.FileInfo // a changed stat seen at the previous poll, not loaded yet
	statFailed bool
}

func newFile(cfg Config, b *base) *fileStore {
	format, _ := formatOf(cfg.Path) // checked by normalize
	return &fileStore{base: b, path: cfg.Path, format: format, interval: cfg.ReloadInterval.D()}
}

// Open implements Store: a missing or broken file is an error.
func (s *fileStore) Open(context.Context) error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("keystore: key file: %w", err)
	}
	s.last = fi
	registry.WarnLaxFile(s.log, "keystore.path", s.path)
	if err := s.load(); err != nil {
		if s.errs != nil {
			s.errs.Add(1)
		}
		return fmt.Errorf("keystore: key file %s: %w", s.path, err)
	}
	if len(s.cur.Load().pairs) == 0 {
		s.log.Warn().Str("path", s.path).Msg("key file holds no key: every request will be refused until one is added")
	}
	return nil
}

func (s *fileStore) load() error {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return err
	}
	kf, err := parseKeysFile(data, s.format)
	if err != nil {
		return err
	}
	set, skip := buildSet(kf.pairs)
	s.swap(set, append(kf.skip, skip...), "file")
	s.synced(time.Now())
	return nil
}

// Run implements Store: it polls the file every reload_interval and loads it
// once a change has settled (the same size, mtime and inode at two polls in
// a row), so that a file being written in place (truncated, then written) is
// not read half-way. A broken file keeps the last good keys.
func (s *fileStore) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.poll()
		}
	}
}

func sameStat(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

func (s *fileStore) poll() {
	fi, err := os.Stat(s.path)
	if err != nil {
		s.pending = nil
		if !s.statFailed {
			s.statFailed = true
			s.errs.Add(1)
			s.log.Warn().Err(err).Str("path", s.path).Int("count", len(s.cur.Load().pairs)).Msg("key file unreadable; keeping the last good keys")
		}
		return
	}
	if !s.statFailed && sameStat(fi, s.last) {
		s.pending = nil
		return
	}
	if !sameStat(fi, s.pending) {
		s.pending = fi // changed: load at the next poll if it stays so
		return
	}
	s.pending = nil
	s.statFailed = false
	s.last = fi
	if err := s.load(); err != nil {
		s.errs.Add(1)
		s.log.Warn().Err(err).Str("path", s.path).Int("count", len(s.cur.Load().pairs)).Msg("key file broken; keeping the last good keys")
	}
}
