package registry

import (
	"fmt"
	"net"
	"slices"
	"strings"
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
