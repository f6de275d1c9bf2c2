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
	return &staticStore{base: b, set: set, skip: skip}, nil
}

// Open implements Store. The dev_mode key, like any published or short key,
// is logged as a warning (see warnWeak).
func (s *staticStore) Open(context.Context) error {
	s.swap(s.set, s.skip, "config")
	return nil
}

// Run implements Store: static keys never change.
func (s *staticStore) Run(context.Context) error { return nil }
