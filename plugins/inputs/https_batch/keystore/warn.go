package keystore

import (
	"slices"
	"strings"
)

// MinKeyLength is the shortest API key the gateway accepts without a
// warning: `router keys` makes keys of 32 hex digits (128 bits), Polymur's
// pgw-key made 24.
const MinKeyLength = 16

// wellKnown are keys published in documentation and examples (Polymur's
// READMEs, this project's samples): anyone may try them.
var wellKnown = []string{
	DevKey,                             // Polymur's -dev-mode, our dev_mode and etc/keys/example.toml
	"test-key",                         // Polymur's README (curl registration)
	"19d2d0f0130a9c9a6f97bdb0",         // Polymur's README (pgw-key output)
	"0123456789abcdef0123456789abcdef", // this project's sample.toml and README
}

// weakReason says why key must not guard a gateway that others can reach,
// or "" if nothing is known against it.
func weakReason(key string) string {
	switch {
	case key == DevKey:
		return "the dev_mode key, published"
	case slices.Contains(wellKnown, key):
		return "an example key, published"
	case len(key) < MinKeyLength:
		return "shorter than 16 characters"
	}
	return ""
}

// warnWeak logs, once per name, the keys of s that are published or short
// and were not already so in old: at start every such key, later only those
// added or changed. The key itself is never logged.
func (b *base) warnWeak(s, old *keySet, source string) {
	for _, p := range s.pairs {
		reason := weakReason(p.key)
		if reason == "" {
			continue
		}
		i, found := slices.BinarySearchFunc(old.pairs, p.name, func(q pair, name string) int { return strings.Compare(q.name, name) })
		if found && old.pairs[i].key == p.key {
			continue
		}
		b.log.Warn().Str("name", p.name).Str("reason", reason).Str("source", source).
			Msg("weak api key accepted: anyone who knows it can send metrics")
	}
}
