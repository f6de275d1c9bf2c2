package registry

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
)

// Helpers for plugins' Init: they check one configuration key and return an
// error that names it, in the form the config loader reports.

// CheckHostPort checks that addr (the value of key) is "host:port" with a
// port from 0 to 65535 or a service name the system knows ("http"): an
// address to listen on (0: any free port).
func CheckHostPort(key, addr string) error {
	_, err := checkPort(key, addr, 0)
	return err
}

// CheckAddress checks that addr (the value of key) is "host:port" to
// connect to: a port from 1 to 65535, or a service name the system knows.
func CheckAddress(key, addr string) error {
	_, err := checkPort(key, addr, 1)
	return err
}

// checkPort returns the port of addr, a number from low to 65535 or a
// service name.
func checkPort(key, addr string, low int) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return 0, fmt.Errorf("%s %q: %s (want host:port)", key, addr, ae.Err)
		}
		return 0, fmt.Errorf("%s %q: %w", key, addr, err)
	}
	if p == "" {
		return 0, fmt.Errorf("%s %q: no port (want host:port)", key, addr)
	}
	if p[0] >= '0' && p[0] <= '9' {
		n, err := strconv.Atoi(p)
		if err != nil || n < low || n > 65535 {
			return 0, fmt.Errorf("%s %q: port %s: want %d-65535", key, addr, p, low)
		}
		return n, nil
	}
	n, err := net.LookupPort("tcp", p)
	if err != nil {
		return 0, fmt.Errorf("%s %q: port %q is neither a number nor a service name this system knows (/etc/services)", key, addr, p)
	}
	return n, nil
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
