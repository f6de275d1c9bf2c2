package crelay

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/metricsrouter/router/agent/aggregate"
	"github.com/metricsrouter/router/agent/rules"
	"github.com/metricsrouter/router/registry"
)

// ConvertOptions are carbon-c-relay's command-line options that change the
// configuration, and what names the source in the output.
type ConvertOptions struct {
	// Command is the command line shown in the header.
	Command string
	// Hostname is carbon-c-relay's -H: the statistics prefix is then
	// written out; without it the prefix's host name maps to {host}.
	Hostname string
	// Submission is -s: no statistics.
	Submission bool
	// AllowedChars (-c), MaxMetricLength (-m) and MaxInputLength (-M)
	// set the listeners' cleansing options; nil: carbon-c-relay's default.
	AllowedChars    *string
	MaxMetricLength *int
	MaxInputLength  *int
	// CA is -C: the CA file carbon-c-relay verifies its servers'
	// certificates against (members with ssl); "" when not given.
	CA string
}

// Output is a converted configuration.
type Output struct {
	TOML string
	// Origin[i] is the source of TOML line i+1 (the zero Pos for lines of
	// no construct), so that the router's complaints about the TOML can
	// name the carbon-c-relay line.
	Origin []Pos
	// Warnings name what the TOML leaves for the operator to fill in (each
	// also a comment in the TOML), one line each, led by the position.
	Warnings []string
}

// Convert renders cfg as router TOML. It fails with every construct the
// router cannot express (Unsupported errors) and every construct
// carbon-c-relay accepts but crashes on or never delivers with.
func Convert(cfg *Config, opt ConvertOptions) (*Output, []*Error) {
	w := &writer{cfg: cfg, opt: opt}
	errs := slices.Clone(cfg.Unsupported)
	w.check(&errs)
	if len(errs) > 0 {
		sortErrors(errs)
		return nil, errs
	}
	if w.statsOn() {
		w.pfx, _ = w.prefix()
	}
	w.header()
	w.agent()
	w.inputs()
	w.outputs()
	w.rules()
	if len(w.errs) > 0 {
		sortErrors(w.errs)
		return nil, w.errs
	}
	return &Output{TOML: w.b.String(), Origin: w.origin, Warnings: w.warnings}, nil
}

// sortErrors orders errors by place of appearance (stable: files in the
// order they were read).
func sortErrors(errs []*Error) {
	order := map[string]int{}
	for _, e := range errs {
		if _, ok := order[e.File]; !ok {
			order[e.File] = len(order)
		}
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		if a.File != b.File {
			return order[a.File] - order[b.File]
		}
		return a.Line - b.Line
	})
}

type writer struct {
	cfg    *Config
	opt    ConvertOptions
	b      strings.Builder
	origin []Pos
	at     Pos // the construct being written
	errs   []*Error
	notes  []string
	pfx    string // the statistics prefix, mapped
	// warnings: see Output.Warnings
	warnings []string
}

// line writes one line of TOML, attributed to w.at.
func (w *writer) line(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	for _, l := range strings.Split(s, "\n") {
		w.b.WriteString(l)
		w.b.WriteByte('\n')
		w.origin = append(w.origin, w.at)
	}
}

func (w *writer) fail(at Pos, unsupported bool, format string, a ...any) {
	w.errs = append(w.errs, &Error{Pos: at, Msg: fmt.Sprintf(format, a...), Unsupported: unsupported})
}

// ---- TOML values

// basic quotes s as a TOML basic string (registry.QuoteTOML).
func basic(s string) string { return registry.QuoteTOML(s) }

// literal quotes an expression (registry.QuoteTOMLLiteral).
func literal(s string) string { return registry.QuoteTOMLLiteral(s) }

// array renders strings with q.
func array(ss []string, q func(string) string) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = q(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// comment keeps s on one comment line of valid UTF-8.
func comment(s string) string { return registry.TOMLComment(s) }

func (p Pos) String() string { return fmt.Sprintf("%s:%d", comment(p.File), p.Line) }

// quoteIdent is carbon-c-relay's router_quoteident: an identifier with a
// character outside its unquoted set is written in double quotes (with no
// escaping).
func quoteIdent(s string) string {
	const odd = "[](){}|\\^?*$%<>:/,._+-"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(odd, c) >= 0 {
			continue
		}
		if i > 1 && c == ' ' && s[i-1] == '\\' {
			continue
		}
		return `"` + s + `"`
	}
	return s
}

// ---- checks before writing

// check collects what carbon-c-relay accepts that cannot be converted.
func (w *writer) check(errs *[]*Error) {
	cfg := w.cfg
	unsup := func(at Pos, format string, a ...any) {
		*errs = append(*errs, &Error{Pos: at, Msg: fmt.Sprintf(format, a...), Unsupported: true})
	}
	refuse := func(at Pos, format string, a ...any) {
		*errs = append(*errs, &Error{Pos: at, Msg: fmt.Sprintf(format, a...)})
	}
	utf := func(at Pos, what, s string) bool {
		if !utf8.ValidString(s) {
			unsup(at, "%s %q is not valid UTF-8: not supported by router (TOML holds UTF-8 text only)", what, s)
			return false
		}
		return true
	}
	if len(cfg.Clusters) == 0 {
		unsup(Pos{File: cfg.File}, "a configuration without clusters is not supported by router (it needs an output; carbon-c-relay drops every metric)")
	}
	for _, r := range cfg.Listeners {
		utf(r.Pos, "listen path", r.Path)
		utf(r.Pos, "listen host", r.Host)
		utf(r.Pos, "certificate", r.PEM)
	}
	if w.opt.CA != "" && !utf8.ValidString(w.opt.CA) {
		unsup(Pos{File: cfg.File}, "-C %q is not valid UTF-8: not supported by router (TOML holds UTF-8 text only)", w.opt.CA)
	}
	for _, c := range cfg.Clusters {
		utf(c.Pos, "cluster name", c.Name)
		seen := map[*server]bool{}
		for _, m := range c.Members {
			if m.Proto == "file" {
				utf(m.Pos, "file", m.Path)
			} else {
				utf(m.Pos, "host", m.Host)
				utf(m.Pos, "instance", m.Instance)
			}
			if m.Proto != "file" && m.Host == "" {
				refuse(m.Pos, "cluster %s: member '[]' has an empty host: carbon-c-relay accepts it but never connects", c.Name)
			}
			if m.Syslog {
				unsup(m.Pos, "cluster %s: type syslog is not supported by router yet", c.Name)
			}
			if m.Proto == "udp" && (m.Transport != "plain" || m.SSL) {
				unsup(m.Pos, "cluster %s: %s over proto udp is not supported by router (transport and ssl are stream options)", c.Name, strings.TrimPrefix(transportClause(m.Transport, m.SSL), " "))
			}
			if m.Host == "mtls" && m.Proto != "file" {
				unsup(m.Pos, "cluster %s: member mtls: carbon-c-relay 3.7 has no mtls clause (3.8 has) and reads mtls and the words after it as more servers: not supported by router", c.Name)
			}
			if c.UseAll && m.Proto != "file" {
				if _, ok := numericAddr(m.Host); !ok || m.expandedFrom != "" {
					name := m.Host
					if m.expandedFrom != "" {
						name = m.expandedFrom
					}
					unsup(m.Pos, "cluster %s: useall (a destination per address %s resolves to) is not supported by router yet", c.Name, name)
				}
			}
			if seen[m.srv] {
				unsup(m.Pos, "cluster %s: %s is listed twice (carbon-c-relay then sends to it twice): not supported by router yet", c.Name, m.srv)
			}
			seen[m.srv] = true
			if c.Type.Hashing() {
				if a, ok := numericAddr(m.Host); ok && a.Is4() && a.String() != m.Host && !strings.Contains(m.Host, ":") {
					unsup(m.Pos, "cluster %s: %s: carbon-c-relay hashes the address as written and connects to %s; the router hashes what it connects to: not supported by router yet (writing %s moves metrics)", c.Name, m.Host, a, a)
				}
			}
		}
	}
	for _, r := range cfg.Rules {
		for _, e := range r.Exprs {
			utf(r.Pos, "expression", e)
		}
		utf(r.Pos, "expression", r.Validate)
		utf(r.Pos, "replacement", r.Into)
		switch r.Kind {
		case Match:
			if !r.HasSend && r.Validate == "" {
				refuse(r.Pos, "match without send to or validate: carbon-c-relay accepts it but crashes on the first metric; remove it")
			}
		case Rewrite:
			if r.Exprs[0] == "*" {
				refuse(r.Pos, `rewrite "*": carbon-c-relay accepts it but crashes; use rewrite ^(.*)$`)
			}
		}
	}
	st := cfg.Stats
	if w.statsOn() {
		if st.ResetPos != nil {
			unsup(*st.ResetPos, "statistics reset counters after interval is not supported by router yet (its counters are cumulative)")
		}
		if _, err := w.prefix(); err != nil {
			at := Pos{File: cfg.File}
			if st.PrefixPos != nil {
				at = *st.PrefixPos
			}
			unsup(at, "statistics prefix with %s: %v", st.Prefix, err)
		}
	}
}

// ---- the statistics prefix

// statsOn reports whether carbon-c-relay sends statistics: not in
// submission mode (-s), not when they are sent to the blackhole only.
func (w *writer) statsOn() bool {
	st := w.cfg.Stats
	return !w.opt.Submission && !(st.HasSend && st.Blackhole && len(st.SendTo) == 0)
}

// replacement runs carbon-c-relay 3.7's replacement language
// (router_rewrite_metric) through the rules engine's reader: lit receives
// the characters it copies, ref the group references it inserts (n > 0), in
// order. It reports whether a "g" came right after a backslash (and flags),
// which 3.7 copies as "g" and 3.8 (and the router) read as a group
// reference \gN or \g{N}.
func replacement(repl string, lit func(c byte), ref func(n int, lower, upper, dots bool)) (gEscape bool) {
	return rules.WalkReplacement(repl, false, lit, ref)
}

// expandReplacement is replacement's result, with what ref returns for
// each reference.
func expandReplacement(repl string, ref func(n int, lower, upper, dots bool) string) string {
	var b strings.Builder
	replacement(repl, func(c byte) { b.WriteByte(c) }, func(n int, lo, up, dots bool) { b.WriteString(ref(n, lo, up, dots)) })
	return b.String()
}

// routerInto writes a carbon-c-relay 3.7 replacement in the router's
// replacement language. They differ only on "\g", which 3.7 copies as "g";
// a replacement with one is rewritten with every reference as \g{N}.
func routerInto(repl string) (string, bool) {
	var b strings.Builder
	g := replacement(repl, func(c byte) { b.WriteByte(c) }, func(n int, lo, up, dots bool) {
		b.WriteByte('\\')
		switch {
		case lo:
			b.WriteByte('_')
		case up:
			b.WriteByte('^')
		}
		if dots {
			b.WriteByte('.')
		}
		fmt.Fprintf(&b, "g{%d}", n)
	})
	if !g {
		return repl, false
	}
	return b.String(), true
}

// prefix maps the statistics prefix: with -H, carbon-c-relay's own
// expansion on that host name; without, a reference to the host name
// becomes {host}, with notes where that is exact only for some names.
func (w *writer) prefix() (string, error) {
	pfx := w.cfg.Stats.Prefix
	var err error
	if h := w.opt.Hostname; h != "" {
		short, domain, _ := strings.Cut(h, ".")
		if strings.Contains(h, ".") {
			domain = "." + domain
		}
		out := expandReplacement(pfx, func(n int, lo, up, dots bool) string {
			var g string
			switch n {
			case 1:
				g = h
			case 2:
				g = short
			case 3:
				if err == nil {
					err = fmt.Errorf(`\3 (the domain) is read past carbon-c-relay's match array, so what it inserts is undefined: not supported by router`)
				}
				g = domain
			default:
				return ""
			}
			return caseDots(g, lo, up, dots)
		})
		if strings.Contains(out, "{host}") && err == nil {
			err = fmt.Errorf("the prefix %q holds {host}, which the router would replace: not supported by router", out)
		}
		return out, err
	}
	var notes []string
	note := func(s string) {
		if !slices.Contains(notes, s) {
			notes = append(notes, s)
		}
	}
	out := expandReplacement(pfx, func(n int, lo, up, dots bool) string {
		switch {
		case n == 3:
			if err == nil {
				err = fmt.Errorf(`\3 (the domain) is read past carbon-c-relay's match array, so what it inserts is undefined: not supported by router`)
			}
			return ""
		case n > 3:
			return ""
		case up:
			if err == nil {
				err = fmt.Errorf(`the upper-cased host name (\^%d) is not supported by router yet; convert with -H HOSTNAME to write it out`, n)
			}
			return ""
		}
		if n == 1 {
			how := "\\1, the full host name"
			if dots {
				how = "\\.1, the full host name with dots as '_'"
			}
			note("carbon-c-relay's statistics prefix has " + how + "; {host} is the name up to its first dot: the same unless the relay's host name includes its domain (convert with -H HOSTNAME to write it out)")
		}
		if lo {
			note("carbon-c-relay's statistics prefix has the host name lower-cased; {host} keeps its case: the same for a lower-case host name (convert with -H HOSTNAME to write it out)")
		}
		return "{host}"
	})
	if lit := expandReplacement(pfx, func(int, bool, bool, bool) string { return "" }); err == nil && strings.Contains(lit, "{host}") {
		err = fmt.Errorf("the prefix holds {host}, which the router would replace: not supported by router")
	}
	w.notes = notes
	return out, err
}

func caseDots(s string, lo, up, dots bool) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case dots && c == '.':
			b[i] = '_'
		case lo && c >= 'A' && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case up && c >= 'a' && c <= 'z':
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// ---- sections

func (w *writer) header() {
	w.line("# Converted from the carbon-c-relay configuration %s by", comment(w.cfg.File))
	w.line("#   %s", comment(w.opt.Command))
	w.line("# Run it with: router -config THIS_FILE.toml (check it first with -check).")
	w.line("# Every [[rules]] table and output names the carbon-c-relay statement it comes from.")
	for _, n := range w.notes {
		w.line("# NOTE: %s", comment(n))
	}
}

func (w *writer) agent() {
	st := w.cfg.Stats
	w.line("")
	w.line("[agent]")
	if w.opt.Submission {
		w.line("  ## carbon-c-relay -s (submission mode) sends no statistics.")
		seen := map[Pos]bool{}
		for _, at := range []*Pos{st.IntervalPos, st.PrefixPos, st.ResetPos, st.SendPos} {
			if at != nil && !seen[*at] {
				seen[*at] = true
				w.line("  # %s: a statistics setting carbon-c-relay -s ignores", at)
			}
		}
		w.line(`  metrics_flush = "0s"`)
		return
	}
	if st.HasSend && st.Blackhole && len(st.SendTo) == 0 {
		w.at = *st.SendPos
		w.line("  # %s: statistics send to blackhole: no statistics", st.SendPos)
		w.line(`  metrics_flush = "0s"`)
		w.at = Pos{}
		return
	}
	pfx := w.pfx
	w.line("  ## carbon-c-relay statistics: every %d seconds, prefix %s", st.Interval, comment(st.Prefix))
	if st.IntervalPos != nil {
		w.at = *st.IntervalPos
		w.line("  # %s", st.IntervalPos)
	}
	w.line("  metrics_flush = %s", basic(strconv.Itoa(st.Interval)+"s"))
	w.at = Pos{}
	if st.PrefixPos != nil {
		w.at = *st.PrefixPos
		w.line("  # %s", st.PrefixPos)
	}
	w.line("  metrics_prefix = %s", basic(pfx))
	w.at = Pos{}
	if st.HasSend {
		w.at = *st.SendPos
		w.line("  # %s: statistics go to these outputs only, past the rules", st.SendPos)
		if st.Blackhole {
			w.line(`  # ("blackhole" among the destinations sends nothing; left out)`)
		}
		w.line("  metrics_send_to = %s", array(st.SendTo, basic))
		w.at = Pos{}
	}
	if st.StopPos != nil {
		w.at = *st.StopPos
		w.line("  # %s: stop after the statistics destinations: the statistics never reach the rules then (metrics_send_to does the same)", st.StopPos)
		w.at = Pos{}
	}
}

func (w *writer) inputs() {
	for _, r := range w.cfg.Listeners {
		w.at = r.Pos
		w.line("")
		w.line("[[inputs.graphite]]")
		if r.Default {
			w.line("  # %s: carbon-c-relay's default listener (the configuration has no listen statement)", comment(r.File))
		} else {
			w.line("  # %s", r.Pos)
		}
		switch r.Proto {
		case "unix":
			w.line("  listen = %s", basic(r.Path))
		default:
			w.line("  listen = %s", basic(hostPort(r.Host, r.Port)))
		}
		w.line("  protocol = %s", basic(r.Proto))
		w.line("  cleanse = true")
		if w.opt.AllowedChars != nil {
			w.line("  allowed_chars = %s", basic(*w.opt.AllowedChars))
		}
		if w.opt.MaxInputLength != nil {
			w.line("  max_input_length = %d", *w.opt.MaxInputLength)
			if *w.opt.MaxInputLength > 65536 {
				w.line("  max_line_length = %d", *w.opt.MaxInputLength)
			}
		}
		if w.opt.MaxMetricLength != nil {
			w.line("  max_metric_length = %d", *w.opt.MaxMetricLength)
		}
		if r.Transport != "plain" {
			w.line("  transport = %s", basic(r.Transport))
		}
		if r.SSL {
			w.line("  # ssl %s: carbon-c-relay reads the certificate and its key from this one PEM file and asks for no client certificate", comment(r.PEM))
			if !strings.HasPrefix(r.PEM, "/") {
				w.line("  # a relative path is read from the directory the router runs in, as it was from carbon-c-relay's")
			}
			w.line("  tls_cert = %s", basic(r.PEM))
			w.line("  tls_key = %s", basic(r.PEM))
		}
	}
	w.at = Pos{}
}

// transportClause is a member's transport clause as carbon-c-relay writes
// it, with a leading space; "" for the default.
func transportClause(transport string, ssl bool) string {
	var s string
	if transport != "plain" || ssl {
		s = " transport " + transport
	}
	if ssl {
		s += " ssl"
	}
	return s
}

// link writes a member's transport and ssl clauses as the keys of its
// outputs.graphite, at indent.
func (w *writer) link(indent string, c *Cluster, m *Member) {
	at := w.at
	w.at = m.Pos
	defer func() { w.at = at }()
	if m.Transport != "plain" {
		w.line("%stransport = %s", indent, basic(m.Transport))
	}
	if !m.SSL {
		return
	}
	w.line("%s# ssl: carbon-c-relay verifies the server's certificate chain only; the router also wants %s named in it (tls_server_name names another)", indent, comment(m.Host))
	w.line("%stls_enable = true", indent)
	if w.opt.CA != "" {
		w.line("%stls_ca = %s   # carbon-c-relay -C", indent, basic(w.opt.CA))
		return
	}
	w.line(`%s# tls_ca = "/path/to/ca.pem"   # FILL IN: the CA file of carbon-c-relay's -C (or convert with -C CA); the router trusts the system's CAs until then`, indent)
	msg := fmt.Sprintf("%s: cluster %s: ssl: fill in tls_ca with the CA file of carbon-c-relay's -C (or convert with -C CA); until then the router trusts the system's CAs", c.Pos, comment(c.Name))
	if !slices.Contains(w.warnings, msg) {
		w.warnings = append(w.warnings, msg)
	}
}

// hostPort joins host and port; numeric IPv4 addresses in inet_aton's
// other forms ("127.1") are written as carbon-c-relay reads them.
func hostPort(host string, port int) string {
	if a, ok := numericAddr(host); ok && a.Is4() && !strings.Contains(host, ":") {
		host = a.String()
	}
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + strconv.Itoa(port)
	}
	return host + ":" + strconv.Itoa(port)
}

func (w *writer) outputs() {
	for _, c := range w.cfg.Clusters {
		w.at = c.Pos
		w.line("")
		switch c.Type {
		case FileLog, FileLogIP:
			files := make([]string, len(c.Members))
			for i, m := range c.Members {
				files[i] = m.Path
			}
			w.line("[[outputs.file]]")
			w.line("  # %s: cluster %s %s", c.Pos, comment(quoteIdent(c.Name)), c.Type)
			w.line("  id = %s", basic(c.Name))
			if slices.ContainsFunc(files, func(f string) bool { return !strings.HasPrefix(f, "/") }) {
				w.line("  # a relative path is read from the directory the router runs in, as it was from carbon-c-relay's")
			}
			w.line("  files = %s", array(files, basic))
			w.line("  ip = %t", c.Type == FileLogIP)
			continue
		case Forward:
			if len(c.Members) == 1 {
				m := c.Members[0]
				w.line("[[outputs.graphite]]")
				w.line("  # %s: cluster %s forward", c.Pos, comment(quoteIdent(c.Name)))
				w.instanceNote("  ", m)
				w.line("  id = %s", basic(c.Name))
				w.line("  address = %s", basic(hostPort(m.Host, m.Port)))
				if m.Proto == "udp" {
					w.line(`  protocol = "udp"`)
				}
				w.link("  ", c, m)
				continue
			}
			w.line("[[outputs.broadcast]]")
			w.line("  # %s: cluster %s forward: every metric to every member", c.Pos, comment(quoteIdent(c.Name)))
		case AnyOf:
			w.line("[[outputs.any_of]]")
			w.line("  # %s: cluster %s any_of", c.Pos, comment(quoteIdent(c.Name)))
		case Failover:
			w.line("[[outputs.failover]]")
			w.line("  # %s: cluster %s failover", c.Pos, comment(quoteIdent(c.Name)))
		default:
			w.line("[[outputs.consistent_hash]]")
			w.line("  # %s: cluster %s %s replication %d%s", c.Pos, comment(quoteIdent(c.Name)), c.Type, c.Replication, map[bool]string{true: " dynamic", false: ""}[c.Dynamic])
		}
		if c.UseAll {
			w.line("  # useall: every member is an address, there is nothing to expand")
		}
		dist := map[ClusterType]string{Forward: "broadcast", AnyOf: "any_of", Failover: "failover", CarbonCh: "consistent_hash", Fnv1aCh: "consistent_hash", JumpCh: "consistent_hash"}[c.Type]
		w.line("  id = %s", basic(c.Name))
		switch c.Type {
		case CarbonCh:
			w.line(`  hash = "carbon_ch"`)
			w.line(`  collision = "first"   # carbon-c-relay's tie rule`)
		case Fnv1aCh:
			w.line(`  hash = "fnv1a_ch"`)
			w.line(`  flavour = "crelay"`)
		case JumpCh:
			w.line(`  hash = "jump_fnv1a_ch"`)
		}
		if c.Type.Hashing() {
			w.line("  replication = %d", c.Replication)
			if c.Dynamic {
				w.line(`  on_down = "rehash"   # dynamic`)
			} else {
				w.line(`  on_down = "queue"`)
			}
		}
		// the destinations shorthand when every member fits it
		short := true
		for _, m := range c.Members {
			if m.Proto != "tcp" || m.Transport != "plain" || m.SSL || (c.Type.Hashing() && strings.Contains(m.Instance, ":")) {
				short = false
			}
		}
		if short {
			dests := make([]string, len(c.Members))
			for i, m := range c.Members {
				dests[i] = hostPort(m.Host, m.Port)
				if c.Type.Hashing() && m.HasInst {
					dests[i] += ":" + m.Instance
				}
				if !c.Type.Hashing() {
					w.instanceNote("  ", m)
				}
			}
			w.line(`  protocol = "graphite"`)
			w.line("  destinations = %s", array(dests, basic))
			continue
		}
		for _, m := range c.Members {
			w.at = m.Pos
			w.line("")
			w.line("  [[outputs.%s.to.graphite]]", dist)
			w.line("    # %s", m.Pos)
			w.line("    address = %s", basic(hostPort(m.Host, m.Port)))
			if m.Proto == "udp" {
				w.line(`    protocol = "udp"`)
			}
			if c.Type.Hashing() && m.HasInst {
				w.line("    instance = %s", basic(m.Instance))
			} else {
				w.instanceNote("    ", m)
			}
			w.link("    ", c, m)
		}
	}
	w.at = Pos{}
}

// instanceNote says where an instance of a non-hashing cluster went.
func (w *writer) instanceNote(indent string, m *Member) {
	if m.HasInst {
		w.line("%s# %s: instance %s left out: only hash clusters use it", indent, m.Pos, comment(m.Instance))
	}
}

func (w *writer) rules() {
	n := 0
	for _, r := range w.cfg.Rules {
		switch r.Kind {
		case Match:
			groups := [][]string{r.Exprs}
			if len(r.Exprs) > 1 && slices.Contains(r.Exprs, "*") {
				// "*" must stand alone in a rule: one rule per expression,
				// as carbon-c-relay has one route per expression
				groups = nil
				for _, e := range r.Exprs {
					groups = append(groups, []string{e})
				}
			}
			for _, g := range groups {
				n++
				w.matchRule(r, g, len(groups) > 1)
			}
		case Rewrite:
			n++
			w.at = r.Pos
			w.line("")
			w.line("[[rules]]")
			w.line("  # %s", r.Pos)
			w.line("  rewrite = %s", literal(r.Exprs[0]))
			into, changed := routerInto(r.Into)
			if changed {
				w.line("  # carbon-c-relay 3.7 copies \\g as \"g\"; the router reads it as a group: written")
				w.line("  # with every group as \\g{N} (the replacement was %s)", comment(r.Into))
			}
			w.line("  into = %s", literal(into))
			w.checkRule(r.Pos, rules.Spec{Rewrite: r.Exprs[0], Into: &into})
		case Aggregate:
			n++
			w.aggregateRule(r)
		}
	}
	if n == 0 {
		w.at = Pos{}
		w.line("")
		w.line("[[rules]]")
		w.line("  # %s: no match or rewrite statement: carbon-c-relay sends every metric nowhere", comment(w.cfg.File))
		w.line(`  match = "*"`)
		w.line(`  send_to = ["blackhole"]`)
	}
	w.at = Pos{}
}

func (w *writer) matchRule(r *Rule, exprs []string, split bool) {
	w.at = r.Pos
	w.line("")
	w.line("[[rules]]")
	w.line("  # %s", r.Pos)
	if split {
		w.line(`  # (one of the statement's expressions: "*" stands alone in a rule)`)
	}
	spec := rules.Spec{Match: exprs, Validate: r.Validate}
	if len(exprs) == 1 {
		w.line("  match = %s", literal(exprs[0]))
	} else {
		w.line("  match = %s", array(exprs, literal))
	}
	if r.Validate != "" {
		w.line("  validate = %s", literal(r.Validate))
		spec.Else = "drop"
		if r.ElseLog {
			spec.Else = "log"
		}
		w.line("  else = %s", basic(spec.Else))
	}
	if r.RouteUsing != "" {
		into, changed := routerInto(r.RouteUsing)
		if changed {
			w.line("  # carbon-c-relay 3.7 copies \\g as \"g\"; written with every group as \\g{N} (it was %s)", comment(r.RouteUsing))
		}
		spec.RouteUsing = into
		w.line("  route_using = %s", literal(into))
	}
	if r.HasSend {
		spec.SendTo = r.SendTo
		if len(r.SendTo) == 0 {
			spec.SendTo = []string{"blackhole"}
		} else if r.Blackhole {
			w.line(`  # "blackhole" among the destinations sends nothing (carbon-c-relay only counts the metric); left out`)
		}
		w.line("  send_to = %s", array(spec.SendTo, basic))
	}
	if r.Stops {
		spec.Stop = true
		if !r.Stop && len(r.SendTo) > 0 {
			w.line("  # the first destination is the blackhole: carbon-c-relay stops")
		}
		w.line("  stop = true")
	} else if r.Stop {
		w.line("  # stop without send to: carbon-c-relay ignores it")
	}
	w.checkRule(r.Pos, spec)
}

// aggregateRule writes an aggregate statement as a rule with
// [rules.aggregate].
func (w *writer) aggregateRule(r *Rule) {
	w.at = r.Pos
	w.line("")
	w.line("[[rules]]")
	w.line("  # %s", r.Pos)
	spec := rules.Spec{Match: r.Exprs, Aggregate: &aggregate.Spec{Every: registry.Duration(time.Duration(r.Every) * time.Second),
		Expire: registry.Duration(time.Duration(r.Expire) * time.Second), Timestamp: r.Timestamp}}
	if len(r.Exprs) == 1 {
		w.line("  match = %s", literal(r.Exprs[0]))
	} else {
		w.line("  match = %s", array(r.Exprs, literal))
	}
	if r.HasSend {
		spec.SendTo = r.SendTo
		w.line("  send_to = %s", array(r.SendTo, basic))
	} else {
		w.line("  # no send to: the aggregates re-enter the rules from the top, as in carbon-c-relay")
	}
	if r.Stop {
		spec.Stop = true
		w.line("  stop = true")
	}
	w.line("  [rules.aggregate]")
	w.line("    every = %s", basic(fmt.Sprintf("%ds", r.Every)))
	w.line("    expire = %s", basic(fmt.Sprintf("%ds", r.Expire)))
	w.line("    timestamp = %s", basic(r.Timestamp))
	w.line("    compute = [")
	for _, c := range r.Computes {
		typ := c.Type
		if typ == "percentile" {
			typ = fmt.Sprintf("percentile%d", c.Pct)
		}
		into, changed := routerInto(c.Metric)
		if changed {
			w.line("      # carbon-c-relay 3.7 copies \\g as \"g\"; written with every group as \\g{N} (it was %s)", comment(c.Metric))
		}
		w.line("      { type = %s, write_to = %s },", basic(typ), literal(into))
		spec.Aggregate.Compute = append(spec.Aggregate.Compute, aggregate.ComputeSpec{Type: typ, WriteTo: into})
	}
	w.line("    ]")
	w.checkRule(r.Pos, spec)
}

// checkRule compiles spec as the router will, and fails the conversion
// with the router's reason when it refuses it.
func (w *writer) checkRule(at Pos, spec rules.Spec) {
	if _, err := rules.Compile([]rules.Spec{spec}, func(string) bool { return true }); err != nil {
		msg := err.Error()
		if i := strings.Index(msg, ": "); i >= 0 && strings.HasPrefix(msg, "rule ") {
			msg = msg[i+2:]
		}
		w.fail(at, true, "%s is not supported by router yet (%s)", describe(spec), msg)
	}
}

func describe(s rules.Spec) string {
	if s.Aggregate != nil {
		return "aggregate " + strings.Join(s.Match, " ")
	}
	if s.Rewrite != "" {
		return "rewrite " + s.Rewrite
	}
	if s.Validate != "" {
		return "match " + strings.Join(s.Match, " ") + " validate " + s.Validate
	}
	return "match " + strings.Join(s.Match, " ")
}
