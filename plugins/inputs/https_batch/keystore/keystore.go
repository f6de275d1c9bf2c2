// Package keystore resolves the API keys of the HTTPS batch gateway
// (inputs.https_batch, the Polymur gateway) to key names, from Consul KV, a
// TOML/JSON file or the configuration, and provides the `router keys`
// command (the equivalent of Polymur's pgw-key).
//
// A gateway uses a Store like this:
//
//	st, err := keystore.New(cfg.Keystore, env) // Init: validates, opens nothing
//	err = st.Open(ctx)                         // Run: loads the keys; an error means do not start
//	go st.Run(ctx)                             // keeps them in sync until ctx ends (wait for it)
//	name, ok := keystore.LookupString(st, r.Header.Get("X-Polymur-Key"))
package keystore

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/registry"
)

// Store resolves API keys to key names.
type Store interface {
	// Lookup returns the name of key. It neither modifies nor retains key,
	// takes no lock and does not allocate. Its timing does not depend on how
	// much of key matches a stored key: stored keys are indexed by the
	// SHA-256 of the key and the candidate is compared with
	// crypto/subtle.ConstantTimeCompare.
	Lookup(key []byte) (name string, ok bool)
	// Open loads the keys for the first time (it may use ctx for network
	// I/O). An error means the gateway must not start.
	Open(ctx context.Context) error
	// Run keeps the keys in sync until ctx ends, then returns nil; every
	// goroutine it started has ended by then. It returns at once for the
	// static store. Call it after Open.
	Run(ctx context.Context) error
}

// Store types.
const (
	TypeConsul = "consul"
	TypeFile   = "file"
	TypeStatic = "static"
)

// Defaults.
const (
	DefaultAddress        = "127.0.0.1:8500"
	DefaultPrefix         = "polymur/gateway/keys/"
	DefaultSyncInterval   = 30 * time.Second
	DefaultReloadInterval = 2 * time.Second

	// DevKey and DevName are the single key of dev_mode (Polymur's -dev-mode).
	DevKey  = "123"
	DevName = "dev"
)

// Config is the [inputs.https_batch.keystore] table.
type Config struct {
	// Type selects the store: "consul", "file" or "static".
	Type string `toml:"type"`

	// Address of the Consul agent's HTTP API, "host:port" (or
	// "https://host:port"). Default: $CONSUL_HTTP_ADDR, else 127.0.0.1:8500.
	Address string `toml:"address"`
	// Token is the Consul ACL token (default $CONSUL_HTTP_TOKEN, else none).
	Token string `toml:"token"`
	// Prefix is the KV folder holding one key per name: <prefix><name> = <api key>.
	Prefix string `toml:"prefix"`
	// SyncInterval is the longest time between two full lists of the prefix
	// (a blocking query applies changes within a second in between).
	SyncInterval registry.Duration `toml:"sync_interval"`
	// CacheFile is where the last good key set is saved (JSON, mode 0600);
	// "" = no cache.
	CacheFile string `toml:"cache_file"`
	// StartWithoutConsul: when Consul is unreachable at start, start from
	// cache_file (if it holds at least one key) instead of failing.
	StartWithoutConsul bool `toml:"start_without_consul"`

	// Path of a TOML or JSON file of name -> key, reloaded when it changes.
	Path string `toml:"path"`
	// ReloadInterval is how often the file's size, mtime and inode are
	// checked; a change is loaded once it is the same at two checks in a
	// row, so within one to two intervals.
	ReloadInterval registry.Duration `toml:"reload_interval"`

	// Keys are static name -> key pairs.
	Keys map[string]string `toml:"keys"`
	// DevMode accepts the single key "123", named "dev" (never in production).
	DevMode bool `toml:"dev_mode"`
}

// Errors.
var (
	errNoType = errors.New(`keystore: type is required: "consul", "file" or "static"`)
)

// New validates cfg, applies its defaults and returns the store. It opens
// nothing (router -check calls it). env.Metrics may be nil.
func New(cfg Config, env registry.Env) (Store, error) {
	if err := cfg.normalize(os.LookupEnv); err != nil {
		return nil, err
	}
	b := newBase(cfg, env)
	switch cfg.Type {
	case TypeConsul:
		return newConsul(cfg, b)
	case TypeFile:
		return newFile(cfg, b), nil
	default:
		return newStatic(cfg, b)
	}
}

// normalize validates c and fills in the defaults of its type.
func (c *Config) normalize(lookup func(string) (string, bool)) error {
	// keys of the other types must not be set: a mistyped type would
	// otherwise silently ignore them.
	consulSet := c.Address != "" || c.Token != "" || c.Prefix != "" || c.SyncInterval != 0 ||
		c.CacheFile != "" || c.StartWithoutConsul
	fileSet := c.Path != "" || c.ReloadInterval != 0
	staticSet := c.Keys != nil || c.DevMode
	misplaced := func(keys string, want string) error {
		return fmt.Errorf("keystore: %s apply only to type = %q (type is %q)", keys, want, c.Type)
	}
	switch c.Type {
	case "":
		return errNoType
	case TypeConsul:
		if fileSet {
			return misplaced("path and reload_interval", TypeFile)
		}
		if staticSet {
			return misplaced("keys and dev_mode", TypeStatic)
		}
		if c.Address == "" {
			c.Address = DefaultAddress
			if v, ok := lookup("CONSUL_HTTP_ADDR"); ok && v != "" {
				c.Address = v
			}
		}
		if c.Token == "" {
			if v, ok := lookup("CONSUL_HTTP_TOKEN"); ok {
				c.Token = v
			}
		}
		p, err := normalizePrefix(c.Prefix)
		if err != nil {
			return err
		}
		c.Prefix = p
		if c.SyncInterval == 0 {
			c.SyncInterval = registry.Duration(DefaultSyncInterval)
		}
		if c.SyncInterval.D() < time.Second {
			return fmt.Errorf("keystore: sync_interval = %q is too short (at least 1s)", c.SyncInterval)
		}
		if c.SyncInterval.D() > 10*time.Minute {
			return fmt.Errorf("keystore: sync_interval = %q is too long (at most 10m, Consul's longest blocking query)", c.SyncInterval)
		}
		if c.StartWithoutConsul && c.CacheFile == "" {
			return errors.New("keystore: start_without_consul = true needs cache_file")
		}
	case TypeFile:
		if consulSet {
			return misplaced("address, token, prefix, sync_interval, cache_file and start_without_consul", TypeConsul)
		}
		if staticSet {
			return misplaced("keys and dev_mode", TypeStatic)
		}
		if c.Path == "" {
			return errors.New(`keystore: type = "file" needs path`)
		}
		if _, err := formatOf(c.Path); err != nil {
			return err
		}
		if c.ReloadInterval == 0 {
			c.ReloadInterval = registry.Duration(DefaultReloadInterval)
		}
		if c.ReloadInterval.D() < 100*time.Millisecond {
			return fmt.Errorf("keystore: reload_interval = %q is too short (at least 100ms)", c.ReloadInterval)
		}
	case TypeStatic:
		if consulSet {
			return misplaced("address, token, prefix, sync_interval, cache_file and start_without_consul", TypeConsul)
		}
		if fileSet {
			return misplaced("path and reload_interval", TypeFile)
		}
		if c.DevMode && len(c.Keys) > 0 {
			return errors.New("keystore: use either keys or dev_mode, not both")
		}
		if !c.DevMode && len(c.Keys) == 0 {
			return errors.New(`keystore: type = "static" needs keys = { name = "key", ... } (or dev_mode = true)`)
		}
	default:
		return fmt.Errorf("keystore: unknown type %q (want \"consul\", \"file\" or \"static\")", c.Type)
	}
	return nil
}

// normalizePrefix returns the Consul KV prefix without a leading and with a
// trailing slash; "" gives the default.
func normalizePrefix(p string) (string, error) {
	if p == "" {
		return DefaultPrefix, nil
	}
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return "", errors.New("keystore: prefix must not be the KV root")
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p, nil
}

// entry is one stored key.
type entry struct {
	key  []byte
	name string
}

// keySet is an immutable set of keys, indexed by the SHA-256 of the key.
type keySet struct {
	byHash map[[sha256.Size]byte]entry
	pairs  []pair // by name, for comparisons and the cache file
}

// pair is a name and its key, as read from a source.
type pair struct {
	name, key string
}

// skipped is a source entry that did not make it into a keySet.
type skipped struct {
	name, reason string
}

var emptySet = &keySet{byHash: map[[sha256.Size]byte]entry{}}

// lookup is the constant-time lookup of Store.Lookup.
func (s *keySet) lookup(key []byte) (string, bool) {
	h := sha256.Sum256(key)
	e, ok := s.byHash[h]
	if !ok {
		return "", false
	}
	// A SHA-256 match is already a key match; the constant-time compare only
	// guards against a collision without leaking where the bytes differ.
	if subtle.ConstantTimeCompare(e.key, key) != 1 {
		return "", false
	}
	return e.name, true
}

// buildSet makes a keySet of pairs: names are cleaned by the caller, values
// are trimmed here. Empty keys and a key already held by an earlier name
// (in name order) are skipped and reported.
func buildSet(pairs []pair) (*keySet, []skipped) {
	sorted := slices.Clone(pairs)
	slices.SortFunc(sorted, func(a, b pair) int { return strings.Compare(a.name, b.name) })
	s := &keySet{byHash: make(map[[sha256.Size]byte]entry, len(sorted)), pairs: make([]pair, 0, len(sorted))}
	var skip []skipped
	names := make(map[string]bool, len(sorted))
	for _, p := range sorted {
		key := strings.TrimSpace(p.key)
		switch {
		case key == "":
			skip = append(skip, skipped{p.name, "empty key"})
			continue
		case names[p.name]:
			skip = append(skip, skipped{p.name, "name given twice"})
			continue
		}
		h := sha256.Sum256([]byte(key))
		if prev, dup := s.byHash[h]; dup {
			skip = append(skip, skipped{p.name, "same key as " + prev.name})
			continue
		}
		names[p.name] = true
		s.byHash[h] = entry{key: []byte(key), name: p.name}
		s.pairs = append(s.pairs, pair{p.name, key})
	}
	return s, skip
}

// equal tells whether s and o hold the same names and keys.
func (s *keySet) equal(o *keySet) bool { return slices.Equal(s.pairs, o.pairs) }

// diff counts the names added to and removed from (or changed since) old.
func (s *keySet) diff(old *keySet) (added, removed int) {
	oldKeys := make(map[string]string, len(old.pairs))
	for _, p := range old.pairs {
		oldKeys[p.name] = p.key
	}
	for _, p := range s.pairs {
		if k, ok := oldKeys[p.name]; !ok || k != p.key {
			added++
		}
		delete(oldKeys, p.name)
	}
	return added, len(oldKeys)
}

// validSourceName reports whether a name read from a store can be used:
// non-empty, no '/', no space or control character (with key_prefix the
// name becomes part of a metric path).
func validSourceName(name string) (reason string, ok bool) {
	if name == "" {
		return "empty name", false
	}
	if strings.Contains(name, "/") {
		return "nested path", false
	}
	for _, c := range name {
		if c <= ' ' || c == 0x7f {
			return "space or control character in name", false
		}
	}
	return "", true
}

// base is what every store shares: the current set, logging and metrics.
type base struct {
	cur      atomic.Pointer[keySet]
	log      zerolog.Logger
	syncs    *atomic.Uint64
	errs     *atomic.Uint64
	lastSync atomic.Int64 // unix nanoseconds of the last good load, 0 = never
	skipped  atomic.Int64
	metrics  registry.Metrics
	lastSkip []skipped // of the last swap; only the loading goroutine uses it
}

func newBase(cfg Config, env registry.Env) *base {
	m := env.Metrics
	if m == nil {
		m = nopMetrics{}
	}
	b := &base{log: env.Log, metrics: m}
	b.cur.Store(emptySet)
	m.Gauge("keystore_keys", "API keys the gateway accepts now.", func() float64 {
		return float64(len(b.cur.Load().pairs))
	})
	m.Gauge("keystore_skipped_entries", "Entries of the key source left out of the current set (empty or nested name, empty key, key held by another name).", func() float64 {
		return float64(b.skipped.Load())
	})
	if cfg.Type != TypeStatic {
		b.syncs = m.Counter("keystore_syncs_total", "Successful loads of the whole key set (Consul list, file read).")
		b.errs = m.Counter("keystore_sync_errors_total", "Failed loads of the key set (Consul unreachable or refusing, broken file); the last good set stays.")
		m.Gauge("keystore_last_sync_age_seconds", "Seconds since the key set was last loaded successfully (from the cache file's time when started from it; -1 before any load).", func() float64 {
			t := b.lastSync.Load()
			if t == 0 {
				return -1
			}
			return time.Since(time.Unix(0, t)).Seconds()
		})
	}
	return b
}

// Lookup implements Store.
func (b *base) Lookup(key []byte) (string, bool) { return b.cur.Load().lookup(key) }

// swap installs s if it differs from the current set and reports the change.
func (b *base) swap(s *keySet, skip []skipped, source string) bool {
	b.skipped.Store(int64(len(skip)))
	if !slices.Equal(skip, b.lastSkip) {
		for _, sk := range skip {
			b.log.Warn().Str("name", sk.name).Str("reason", sk.reason).Str("source", source).Msg("api key entry skipped")
		}
		b.lastSkip = skip
	}
	old := b.cur.Load()
	if old != emptySet && s.equal(old) {
		return false
	}
	b.cur.Store(s)
	b.warnWeak(s, old, source)
	added, removed := s.diff(old)
	b.log.Info().Int("count", len(s.pairs)).Int("added", added).Int("removed", removed).Str("source", source).Msg("api keys refreshed")
	return true
}

// synced records a good load at t.
func (b *base) synced(t time.Time) {
	b.lastSync.Store(t.UnixNano())
	if b.syncs != nil {
		b.syncs.Add(1)
	}
}

// LookupString is st.Lookup on a string without copying it (Lookup neither
// modifies nor retains its argument), e.g. on the X-Polymur-Key header.
func LookupString(st Store, key string) (string, bool) {
	if key == "" {
		return st.Lookup(nil)
	}
	return st.Lookup(unsafe.Slice(unsafe.StringData(key), len(key)))
}

type nopMetrics struct{}

func (nopMetrics) Counter(string, string) *atomic.Uint64 { return new(atomic.Uint64) }
func (nopMetrics) Gauge(string, string, func() float64)  {}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, synced and renamed over path, with the given mode.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return fail(err)
	}
	if _, err := f.Write(data); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

var (
	_ Store = (*consulStore)(nil)
	_ Store = (*fileStore)(nil)
	_ Store = (*staticStore)(nil)
)
