package statsd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/metricsrouter/router/registry"
)

func init() {
	registry.AddConverter("go-statsd-proxy", "[-ms] FILE.json", runConvert)
}

const convertUsage = `usage: router convert go-statsd-proxy [-ms] [-strict] FILE.json   ("-" reads standard input)

Prints a router configuration equivalent to a go-statsd-proxy (pdecat fork)
JSON configuration: inputs.statsd on host:port, the nodes as outputs.statsd
targets of a consistent_hash with hash = "statsd" and on_down = "rehash" (or
of a broadcast when "mirror" is true), each with admin = host:managementport,
and [agent] management_addr = managementhost:managementport.

checkInterval is read in seconds, as go-statsd-proxy compares it; -ms reads it
in milliseconds, as Etsy's proxy.js (whose example the value often comes from).

Fields go-statsd-proxy does not know are ignored, as go-statsd-proxy ignores
them, and each is named in a warning on standard error (with the
go-statsd-proxy name of an Etsy proxy.js field that has one, such as
adminport for managementport); -strict makes them an error (exit status 1,
nothing printed).
`

// gspConfig is go-statsd-proxy's JSON configuration. Its struct tags are
// malformed, so encoding/json matches field names case-insensitively; the
// tags here name the same fields and match the same way.
type gspConfig struct {
	Nodes          []gspNode `json:"nodes"`
	Host           string    `json:"host"`
	Port           int       `json:"port"`
	ManagementHost string    `json:"managementhost"`
	ManagementPort int       `json:"managementport"`
	CheckInterval  int       `json:"checkInterval"`
	Mirror         bool      `json:"mirror"`
}

type gspNode struct {
	Host           string `json:"host"`
	Port           int    `json:"port"`
	ManagementPort int    `json:"managementport"`
}

// runConvert is `router convert go-statsd-proxy args...` (args after the
// format name).
func runConvert(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("router convert go-statsd-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, convertUsage) }
	ms := fs.Bool("ms", false, "read checkInterval in milliseconds (Etsy proxy.js) instead of seconds (go-statsd-proxy)")
	strict := fs.Bool("strict", false, "refuse fields go-statsd-proxy does not know instead of ignoring them")
	if code, ok := registry.ParseConverterArgs(fs, args); !ok {
		return code
	}
	file := fs.Arg(0)
	var data []byte
	var err error
	if file == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		fmt.Fprintf(stderr, "router convert: %v\n", err)
		return 1
	}
	out, ignored, err := ConvertGoStatsdProxy(data, file, *ms, os.Hostname)
	if err != nil {
		fmt.Fprintf(stderr, "router convert: %s: %v\n", file, err)
		return 1
	}
	if *strict && len(ignored) > 0 {
		for _, f := range ignored {
			// refused, not ignored
			fmt.Fprintf(stderr, "router convert: %s: %s\n", file, strings.Replace(f, ", ignored", "", 1))
		}
		fields := "fields"
		if len(ignored) == 1 {
			fields = "field"
		}
		fmt.Fprintf(stderr, "router convert: %s: %d unknown %s (-strict)\n", file, len(ignored), fields)
		return 1
	}
	for _, f := range ignored {
		fmt.Fprintf(stderr, "router convert: warning: %s: %s\n", file, f)
	}
	_, _ = io.WriteString(stdout, out)
	return 0
}

// ConvertGoStatsdProxy turns a go-statsd-proxy JSON configuration into router
// TOML. name is the source shown in the header comment. checkInterval is in
// seconds unless ms is set. An empty host means os.Hostname() in
// go-statsd-proxy; hostname supplies it. ignored describes each field
// go-statsd-proxy does not know, in file order (see ignoredFields); the
// TOML's header names them too.
func ConvertGoStatsdProxy(data []byte, name string, ms bool, hostname func() (string, error)) (toml string, ignored []string, err error) {
	var c gspConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return "", nil, fmt.Errorf("not a go-statsd-proxy JSON configuration: %w", err)
	}
	if len(c.Nodes) == 0 {
		return "", nil, errors.New("no nodes")
	}
	ignored = ignoredFields(data)
	toml, err = convert(&c, name, ms, hostname, ignored)
	if err != nil {
		return "", nil, err
	}
	return toml, ignored, nil
}

// convert writes the TOML of c; ignored are noted in its header.
func convert(c *gspConfig, name string, ms bool, hostname func() (string, error), ignored []string) (string, error) {
	var notes []string
	host := func(h, what string) (string, error) {
		if h != "" {
			return h, nil
		}
		hn, err := hostname()
		if err != nil {
			return "", fmt.Errorf("%s: empty host, and no hostname: %w", what, err)
		}
		notes = append(notes, fmt.Sprintf("%s: host was empty; go-statsd-proxy uses the hostname (%s)", what, hn))
		return hn, nil
	}
	port := func(p, def int, what string) (int, error) {
		if p == 0 {
			return def, nil
		}
		if p < 1 || p > 65535 {
			return 0, fmt.Errorf("%s: port %d out of range", what, p)
		}
		return p, nil
	}
	lh, err := host(c.Host, "host")
	if err != nil {
		return "", err
	}
	lp, err := port(c.Port, 8125, "port")
	if err != nil {
		return "", err
	}
	mh := c.ManagementHost
	if mh == "" {
		mh = "127.0.0.1"
	}
	mp, err := port(c.ManagementPort, 8126, "managementport")
	if err != nil {
		return "", err
	}
	if c.CheckInterval < 0 {
		return "", fmt.Errorf("checkInterval %d: negative", c.CheckInterval)
	}
	var interval time.Duration
	switch {
	case ms:
		interval = time.Duration(c.CheckInterval) * time.Millisecond
		if interval < 10*time.Millisecond {
			notes = append(notes, fmt.Sprintf("checkInterval %d ms raised to 10ms, the shortest check_interval", c.CheckInterval))
			interval = 10 * time.Millisecond
		}
	default:
		interval = time.Duration(c.CheckInterval) * time.Second
		if c.CheckInterval == 0 {
			// go-statsd-proxy then checks whenever a second has passed
			interval = time.Second
		}
		if c.CheckInterval >= 60 {
			notes = append(notes, fmt.Sprintf("checkInterval %d is seconds in go-statsd-proxy (%s between checks); if milliseconds were meant (Etsy proxy.js), convert again with -ms", c.CheckInterval, interval))
		}
	}
	type node struct{ addr, admin string }
	nodes := make([]node, len(c.Nodes))
	seen := map[string]bool{}
	for i, n := range c.Nodes {
		what := fmt.Sprintf("nodes[%d]", i)
		h, err := host(n.Host, what)
		if err != nil {
			return "", err
		}
		if n.Port == 0 {
			return "", fmt.Errorf("%s: no port", what)
		}
		p, err := port(n.Port, 0, what)
		if err != nil {
			return "", err
		}
		nodes[i].addr = net.JoinHostPort(h, strconv.Itoa(p))
		if seen[nodes[i].addr] {
			return "", fmt.Errorf("%s: %s listed twice", what, nodes[i].addr)
		}
		seen[nodes[i].addr] = true
		if n.ManagementPort != 0 {
			ap, err := port(n.ManagementPort, 0, what+".managementport")
			if err != nil {
				return "", err
			}
			nodes[i].admin = net.JoinHostPort(h, strconv.Itoa(ap))
		}
	}

	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	flags := ""
	if ms {
		flags = " -ms"
	}
	w("# Converted from the go-statsd-proxy configuration %s by\n", tomlComment(name))
	w("#   router convert go-statsd-proxy%s %s\n", flags, tomlComment(name))
	w("# Run it with: router -config THIS_FILE.toml (check it first with -check).\n")
	if !c.Mirror {
		w("#\n")
		w("# Placement: the Etsy statsd proxy.js ring (node hashring 3.2.0), not go-statsd-proxy's\n")
		w("# one-point-per-node ring, so metrics move between backends once: run the backends with\n")
		w("# deleteIdleStats = true while they settle (Etsy docs/cluster_proxy.md).\n")
	}
	if c.Mirror {
		w("# Health: nodes with a managementport are checked (shown by /healthz and the management\n")
		w("# command \"status\"), but a mirror sends to every node, as go-statsd-proxy does.\n")
	} else {
		w("# Health: every check_interval a node's admin port gets \"health\"; a reply without \"up\",\n")
		w("# an error or a timeout takes the node out, the first good reply puts it back\n")
		w("# (go-statsd-proxy never re-added a node). A node without managementport is always up.\n")
	}
	for _, n := range notes {
		w("# NOTE: %s\n", tomlComment(n))
	}
	for _, f := range ignored {
		w("# IGNORED: %s\n", tomlComment(f))
	}
	w("\n[agent]\n")
	w("  ## go-statsd-proxy's management interface (ping, stats, memstats; also Etsy's commands).\n")
	w("  management_addr = %s\n", tomlString(net.JoinHostPort(mh, strconv.Itoa(mp))))
	w("\n[[inputs.statsd]]\n")
	w("  listen = %s\n", tomlString(net.JoinHostPort(lh, strconv.Itoa(lp))))
	w("  protocol = \"udp\"\n")
	w("  ## go-statsd-proxy read 512 bytes per datagram; this reads up to 64 KiB, many per call.\n")
	w("  read_buffer = 8388608\n")
	dist := "consistent_hash"
	if c.Mirror {
		dist = "broadcast"
		w("\n## mirror = true: every metric to every node.\n")
		w("[[outputs.broadcast]]\n")
		w("  id = \"statsd-mirror\"\n")
	} else {
		w("\n[[outputs.consistent_hash]]\n")
		w("  id = \"statsd\"\n")
		w("  hash = \"statsd\"\n")
		w("  on_down = \"rehash\"\n")
	}
	for _, n := range nodes {
		w("\n  [[outputs.%s.to.statsd]]\n", dist)
		w("    address = %s\n", tomlString(n.addr))
		if n.admin != "" {
			w("    admin = %s\n", tomlString(n.admin))
			w("    check_interval = %s\n", tomlString(formatDuration(interval)))
		}
	}
	return b.String(), nil
}

// gspFields are the fields go-statsd-proxy reads (statsdproxy/config.go:
// ProxyConfig, and StatsdConfigNode for each of nodes), lower case: its JSON
// decoding matches them case-insensitively and skips any other.
var (
	gspFields     = []string{"host", "port", "managementhost", "managementport", "checkinterval", "nodes", "mirror"}
	gspNodeFields = []string{"host", "port", "managementport"}
)

// proxyJSFields are Etsy statsd proxy.js fields (proxyConfig.js; statsd 0.9.0
// proxy.js, lib/mgmt_server.js, servers/udp.js) that go-statsd-proxy spells
// differently, lower case, with its name for them. The node field adminport
// is the one whose loss matters most: without managementport a node is never
// health checked.
var (
	proxyJSFields = map[string]string{
		"mgmt_port":    "managementport",
		"mgmt_address": "managementhost",
		"address":      "host",
	}
	proxyJSNodeFields = map[string]string{
		"adminport": "managementport",
	}
)

// ignoredFields describes, in file order, each field of a go-statsd-proxy
// configuration (data, already decoded without error) that go-statsd-proxy
// ignores, at the top level and in each node: "nodes[0].adminport: unknown
// to go-statsd-proxy, ignored; did you mean managementport?". The value of
// an unknown field is not looked into.
func ignoredFields(data []byte) []string {
	var out []string
	unknown := func(path, key string, known []string, hints map[string]string) bool {
		for _, k := range known {
			if strings.EqualFold(k, key) {
				return false
			}
		}
		msg := path + jsonKey(key) + ": unknown to go-statsd-proxy, ignored"
		if h, ok := hints[strings.ToLower(key)]; ok {
			msg += "; did you mean " + h + "?"
		}
		out = append(out, msg)
		return true
	}
	top, _ := jsonObject(data)
	for _, f := range top {
		if unknown("", f.key, gspFields, proxyJSFields) || !strings.EqualFold(f.key, "nodes") {
			continue
		}
		var nodes []json.RawMessage
		_ = json.Unmarshal(f.value, &nodes)
		for i, n := range nodes {
			fields, _ := jsonObject(n)
			for _, nf := range fields {
				unknown(fmt.Sprintf("nodes[%d].", i), nf.key, gspNodeFields, proxyJSNodeFields)
			}
		}
	}
	return out
}

// jsonField is one member of a JSON object.
type jsonField struct {
	key   string
	value json.RawMessage
}

// jsonObject returns the members of a JSON object in document order; nil if
// data is not an object (null, for instance).
func jsonObject(data []byte) ([]jsonField, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, err
	}
	var fields []jsonField
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return fields, err
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return fields, err
		}
		fields = append(fields, jsonField{key, v})
	}
	return fields, nil
}

// jsonKey shows a field name as written, or quoted when it holds more than
// letters, digits, '_' and '-'.
func jsonKey(k string) string {
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return strconv.Quote(k)
		}
	}
	if k == "" {
		return `""`
	}
	return k
}

// formatDuration writes d as time.ParseDuration reads it, without zero units
// ("1s", "16m40s", "250ms").
func formatDuration(d time.Duration) string { return registry.FormatDuration(d) }

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string { return registry.QuoteTOML(s) }

// tomlComment keeps s on one comment line.
func tomlComment(s string) string { return registry.TOMLComment(s) }
