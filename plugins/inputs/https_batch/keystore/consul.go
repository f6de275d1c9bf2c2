package keystore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

const (
	// requestTimeout bounds a Consul request that does not block.
	requestTimeout = 10 * time.Second
	// minQueryGap rate-limits the blocking query loop (Consul's advice: a
	// burst of KV writes must not turn it into a busy loop).
	minQueryGap = 100 * time.Millisecond
	// downLogEvery is how often "consul still unreachable" is logged.
	downLogEvery = time.Minute
	// backoffMin and backoffMax bound the wait after a failed request.
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
)

// consulStore keeps the keys of a Consul KV prefix: <prefix><name> = <key>.
//
// Run is one loop of blocking queries on the prefix (a recursive KV list with
// ?index=&wait=sync_interval): each answer is the whole prefix, so a change
// applies as soon as Consul reports it, and a full list arrives at least every
// sync_interval even when nothing changes.
type consulStore struct {
	*base
	cfg       Config
	client    *api.Client
	transport *http.Transport
	up        atomic.Bool
	cacheErrs *atomic.Uint64

	// used by Open, then by Run only
	index       uint64
	cacheDirty  bool
	down        bool
	downSince   time.Time
	lastDownLog time.Time
	failures    int
}

func newConsul(cfg Config, b *base) (*consulStore, error) {
	client, tr, err := newConsulClient(cfg.Address, cfg.Token)
	if err != nil {
		return nil, err
	}
	s := &consulStore{base: b, cfg: cfg, client: client, transport: tr}
	s.cacheErrs = b.metrics.Counter("keystore_cache_errors_total", "Failed writes of cache_file.")
	b.metrics.Gauge("keystore_consul_up", "1 if the last request to Consul succeeded, else 0.", func() float64 {
		if s.up.Load() {
			return 1
		}
		return 0
	})
	return s, nil
}

// newConsulClient builds a consul/api client for address (with an optional
// http:// or https:// scheme) and token, otherwise configured like
// api.DefaultConfig (CONSUL_HTTP_SSL, CONSUL_CACERT... are honoured).
func newConsulClient(address, token string) (*api.Client, *http.Transport, error) {
	cc := api.DefaultConfig()
	cc.Address = address
	if token != "" {
		cc.Token = token
	}
	tr := cc.Transport
	client, err := api.NewClient(cc)
	if err != nil {
		return nil, nil, fmt.Errorf("keystore: consul client for %q: %w", address, err)
	}
	return client, tr, nil
}

// Open implements Store: one list of the prefix. If Consul cannot be reached
// it fails, unless start_without_consul allows starting from cache_file.
func (s *consulStore) Open(ctx context.Context) error {
	kvs, idx, err := s.list(ctx, 0, 0)
	if err == nil {
		s.applyList(kvs, idx)
		if len(s.cur.Load().pairs) == 0 {
			s.log.Warn().Str("addr", s.cfg.Address).Str("prefix", s.cfg.Prefix).Msg("no api key in consul: every request will be refused until one is added")
		}
		if s.cfg.CacheFile != "" {
			if err := s.saveCache(); err != nil {
				return fmt.Errorf("keystore: cache_file: %w", err)
			}
		}
		return nil
	}
	s.up.Store(false)
	s.errs.Add(1)
	s.transport.CloseIdleConnections()
	if ctx.Err() != nil {
		return fmt.Errorf("keystore: consul %s: %w", s.cfg.Address, ctx.Err())
	}
	if !s.cfg.StartWithoutConsul {
		hint := ""
		if s.cfg.CacheFile != "" {
			hint = " (start_without_consul = true would start from cache_file)"
		}
		return fmt.Errorf("keystore: consul %s unreachable, not starting%s: %w", s.cfg.Address, hint, err)
	}
	set, skip, mtime, cerr := s.loadCache()
	switch {
	case errors.Is(cerr, os.ErrNotExist):
		return fmt.Errorf("keystore: consul %s unreachable and no cache_file %s from a previous run: %w", s.cfg.Address, s.cfg.CacheFile, err)
	case cerr != nil:
		return fmt.Errorf("keystore: consul %s unreachable (%w) and cache_file unusable: %w", s.cfg.Address, err, cerr)
	case len(set.pairs) == 0:
		return fmt.Errorf("keystore: consul %s unreachable and cache_file %s holds no key: %w", s.cfg.Address, s.cfg.CacheFile, err)
	}
	s.swap(set, skip, "cache")
	s.lastSync.Store(mtime.UnixNano())
	s.down, s.downSince, s.lastDownLog, s.failures = true, time.Now(), time.Now(), 1
	s.log.Warn().Err(err).Str("addr", s.cfg.Address).Str("path", s.cfg.CacheFile).Int("count", len(set.pairs)).
		Msg("consul unreachable; starting with the keys of the cache file")
	return nil
}

// Run implements Store.
func (s *consulStore) Run(ctx context.Context) error {
	defer s.transport.CloseIdleConnections()
	wait := s.cfg.SyncInterval.D()
	backoff := backoffMin
	var last time.Time
	for {
		if d := minQueryGap - time.Since(last); d > 0 && !sleep(ctx, d) {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		last = time.Now()
		kvs, idx, err := s.list(ctx, s.index, wait)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.failed(err)
			s.index = 0 // the next list does not block: Consul may have restarted
			// full jitter, so that many gateways do not come back in step
			if !sleep(ctx, backoffMin/2+rand.N(backoff)) {
				return nil
			}
			backoff = min(2*backoff, backoffMax, wait)
			continue
		}
		backoff = backoffMin
		s.applyList(kvs, idx)
		if s.cacheDirty {
			if err := s.saveCache(); err != nil {
				s.cacheErrs.Add(1)
				s.log.Error().Err(err).Str("path", s.cfg.CacheFile).Msg("cannot write the key cache file")
			}
		}
	}
}

// list lists the prefix; with index > 0 it is a blocking query that returns
// when the prefix changes after index or after wait.
func (s *consulStore) list(ctx context.Context, index uint64, wait time.Duration) (api.KVPairs, uint64, error) {
	timeout := requestTimeout
	if index > 0 {
		timeout += wait + wait/16 // Consul adds up to wait/16 of jitter
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q := &api.QueryOptions{WaitIndex: index}
	if index > 0 {
		q.WaitTime = wait
	}
	kvs, meta, err := s.client.KV().List(s.cfg.Prefix, q.WithContext(ctx))
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", s.cfg.Prefix, err)
	}
	return kvs, meta.LastIndex, nil
}

// applyList installs the listed keys and moves the blocking index on.
func (s *consulStore) applyList(kvs api.KVPairs, idx uint64) {
	var pairs []pair
	var skip []skipped
	for _, kv := range kvs {
		name := strings.TrimPrefix(kv.Key, s.cfg.Prefix)
		if reason, ok := validSourceName(name); !ok {
			skip = append(skip, skipped{name, reason})
			continue
		}
		pairs = append(pairs, pair{name, string(kv.Value)})
	}
	set, skip2 := buildSet(pairs)
	prev := len(s.cur.Load().pairs)
	if s.swap(set, append(skip, skip2...), "consul") {
		s.cacheDirty = s.cfg.CacheFile != ""
		if len(set.pairs) == 0 && prev > 0 {
			s.log.Warn().Str("addr", s.cfg.Address).Str("prefix", s.cfg.Prefix).Int("dropped", prev).Msg("consul holds no api key any more: every request will be refused")
		}
	}
	s.synced(time.Now())
	s.up.Store(true)
	if s.down {
		s.log.Info().Str("addr", s.cfg.Address).Dur("elapsed_ms", time.Since(s.downSince)).Int("attempt", s.failures).Msg("consul reachable again")
		s.down, s.failures = false, 0
	}
	// Consul's rules for blocking indexes: reset when it goes backwards
	// (restart, snapshot restore), never wait on 0.
	switch {
	case idx < s.index:
		s.index = 0
	case idx == 0:
		s.index = 1
	default:
		s.index = idx
	}
}

// failed records a failed request; it logs the first failure and then once
// a minute while Consul stays unreachable.
func (s *consulStore) failed(err error) {
	s.up.Store(false)
	s.errs.Add(1)
	s.failures++
	now := time.Now()
	n := len(s.cur.Load().pairs)
	if !s.down {
		s.down, s.downSince, s.lastDownLog = true, now, now
		s.log.Warn().Err(err).Str("addr", s.cfg.Address).Int("count", n).Msg("consul unreachable; keeping the last good keys")
		return
	}
	if now.Sub(s.lastDownLog) >= downLogEvery {
		s.lastDownLog = now
		s.log.Warn().Err(err).Str("addr", s.cfg.Address).Int("count", n).Int("attempt", s.failures).
			Dur("elapsed", now.Sub(s.downSince)).Msg("consul still unreachable; keeping the last good keys")
	}
}

// saveCache writes the current set to cache_file as JSON name -> key (the
// format of a JSON key file), atomically and with mode 0600.
func (s *consulStore) saveCache() error {
	kf := &keysFile{format: formatJSON, pairs: s.cur.Load().pairs}
	data, err := kf.render()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(s.cfg.CacheFile, data, 0o600); err != nil {
		return err
	}
	s.cacheDirty = false
	return nil
}

// loadCache reads cache_file and returns its set and modification time.
func (s *consulStore) loadCache() (*keySet, []skipped, time.Time, error) {
	fi, err := os.Stat(s.cfg.CacheFile)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	data, err := os.ReadFile(s.cfg.CacheFile)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	kf, err := parseKeysFile(data, formatJSON)
	if err != nil {
		return nil, nil, time.Time{}, fmt.Errorf("%s: %w", s.cfg.CacheFile, err)
	}
	set, skip := buildSet(kf.pairs)
	return set, append(kf.skip, skip...), fi.ModTime(), nil
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
