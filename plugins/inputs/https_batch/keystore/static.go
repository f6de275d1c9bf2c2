package keystore

import (
	"context"
	"fmt"
)

// staticStore holds the keys of the configuration (or dev_mode's "123").
type staticStore struct {
	*base
	set  *keySet
	skip []skipped
	dev  bool
}

func newStatic(cfg Config, b *base) (*staticStore, error) {
	var pairs []pair
	if cfg.DevMode {
		pairs = []pair{{DevName, DevKey}}
	}
	for name, key := range cfg.Keys {
		if reason, ok := validSourceName(name); !ok {
			return nil, fmt.Errorf("keystore: keys: %s: %q", reason, name)
		}
		pairs = append(pairs, pair{name, key})
	}
	set, skip := buildSet(pairs)
	return &staticStore{base: b, set: set, skip: skip, dev: cfg.DevMode}, nil
}

// Open implements Store.
func (s *staticStore) Open(context.Context) error {
	if s.dev {
		s.log.Warn().Msg("DEV MODE: the api key \"123\" (name \"dev\") is accepted; never use dev_mode in production")
	}
	s.swap(s.set, s.skip, "config")
	return nil
}

// Run implements Store: static keys never change.
func (s *staticStore) Run(context.Context) error { return nil }
