package registry

import (
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/rs/zerolog"
)

// Helpers for plugins' Init: they check one configuration key and return an
// error that names it, in the form the config loader reports.

// CheckHostPort checks that addr (the value of key) is "host:port".
func CheckHostPort(key, addr string) error {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("%s %q: %w", key, addr, err)
	}
	return nil
}

// CheckOneOf checks that v (the value of key) is one of allowed.
func CheckOneOf(key, v string, allowed ...string) error {
	if slices.Contains(allowed, v) {
		return nil
	}
	return fmt.Errorf("%s %q: want %s", key, v, quoteOr(allowed))
}

// quoteOr renders ["a", "b", "c"] as `"a", "b" or "c"`.
func quoteOr(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = fmt.Sprintf("%q", v)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// WarnLaxFile logs a warning when the secret file at path (an API key file,
// a TLS private key) can be read or written by its group or by others, and
// reports whether it did. what names the setting, e.g. "tls_key".
func WarnLaxFile(log zerolog.Logger, what, path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false // reported by whoever reads it
	}
	perm := fi.Mode().Perm()
	if perm&0o066 == 0 {
		return false
	}
	log.Warn().Str("setting", what).Str("path", path).Str("mode", perm.String()).
		Msg("secret file open to group or others: chmod 600")
	return true
}
