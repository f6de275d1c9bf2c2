package crelay

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/metricsrouter/router/plugins/outputs/consistent_hash/hashring"
)

// Error is a problem at a place in a configuration. Unsupported marks a
// construct carbon-c-relay accepts that the router cannot express yet; the
// others are errors carbon-c-relay reports too (or constructs it accepts
// and then crashes on).
type Error struct {
	Pos
	Msg         string
	Unsupported bool
}

// IsUnsupported implements registry.ConvertError.
func (e *Error) IsUnsupported() bool { return e.Unsupported }

func (e *Error) Error() string {
	if e.Line <= 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Options are what carbon-c-relay takes from its command line and its
// environment that changes what a configuration means.
type Options struct {
	// Dir is the directory carbon-c-relay runs in: relative paths (the
	// configuration file, include statements) are read from there. "" is
	// the current directory.
	Dir string
	// Port is the port of the default listeners (-p; 0 = 2003).
	Port int
	// Lookup resolves a host name as carbon-c-relay would on its machine
	// (the first address is the one it uses), for the checks that depend
	// on it: a listener's host must resolve; two names of one address, or
	// a name and its address, are one server; a name that does not
	// resolve is compared by name only, port aside. nil: every name is
	// taken to resolve to addresses of its own.
	Lookup func(host string) ([]netip.Addr, bool)
	// ProbePaths checks, as carbon-c-relay does, that every file of a file
	// cluster and every unix socket path can be opened for writing
	// (creating it, and removing it again if it did not exist).
	ProbePaths bool
}

// maxIncludeDepth bounds nested includes (carbon-c-relay has no bound and
// recurses until it fails).
const maxIncludeDepth = 64

// Parse reads the configuration file path (a glob is read as
// carbon-c-relay reads one, as every file it matches in turn) and the files
// it includes (relative include paths from Options.Dir). The first error carbon-c-relay would report ends it (an
// *Error); constructs the router cannot express are collected in
// Config.Unsupported.
func Parse(path string, opt Options) (*Config, error) {
	p := newParser(path, opt)
	if err := p.readConfig(path, Pos{File: path}, ""); err != nil {
		return nil, err
	}
	p.defaults(path)
	return p.cfg, nil
}

func newParser(path string, opt Options) *parser {
	p := &parser{cfg: &Config{File: path}, opt: opt, clusters: map[string]*Cluster{"blackhole": nil}}
	p.cfg.Stats.Interval = 60
	p.cfg.Stats.Prefix = `carbon.relays.\.1`
	return p
}

// defaults adds carbon-c-relay's listeners when there are none.
func (p *parser) defaults(path string) {
	if len(p.cfg.Listeners) == 0 {
		port := p.opt.Port
		if port == 0 {
			port = 2003
		}
		p.cfg.Listeners = []*Receptor{
			{Pos: Pos{File: path}, Proto: "tcp", Port: port, Default: true, Transport: "plain"},
			{Pos: Pos{File: path}, Proto: "udp", Port: port, Default: true, Transport: "plain"},
			{Pos: Pos{File: path}, Proto: "unix", Path: fmt.Sprintf("/tmp/.s.carbon-c-relay.%d", port), Default: true, Transport: "plain"},
		}
	}
}

type parser struct {
	cfg      *Config
	opt      Options
	clusters map[string]*Cluster // by name; "blackhole" is carbon-c-relay's own
	servers  []*server
	stack    []fs.FileInfo // the files being read, for include loops
	names    []string
	// the file being read
	file string
	lx   *lexer
	la   token
	have bool
}

// osPath is where path is read from: relative to dir.
func osPath(dir, path string) string {
	if dir == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// readConfig is router_readconfig: a glob pattern reads every file it
// matches, in order; a file is parsed in place. at is the include
// statement (or the command line); a relative path is read from dir.
func (p *parser) readConfig(path string, at Pos, dir string) error {
	if isGlob(path) {
		matches, err := glob(path, func(s string) string { return osPath(dir, s) })
		if err != nil {
			return &Error{Pos: at, Msg: fmt.Sprintf("unable to match any files from pattern '%s': %v", path, err)}
		}
		if len(matches) == 0 {
			return &Error{Pos: at, Msg: fmt.Sprintf("pattern '%s' did not match any files (carbon-c-relay fails on this)", path)}
		}
		for _, m := range matches {
			if err := p.readConfig(m, at, dir); err != nil {
				return err
			}
		}
		return nil
	}
	st, err := os.Stat(osPath(dir, path))
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &Error{Pos: at, Msg: fmt.Sprintf("unable to stat file '%s': %v", path, err)}
	}
	if !st.Mode().IsRegular() {
		return &Error{Pos: at, Msg: fmt.Sprintf("cannot open non-regular file '%s'", path)}
	}
	if i := slices.IndexFunc(p.stack, func(o fs.FileInfo) bool { return os.SameFile(o, st) }); i >= 0 {
		chain := append(slices.Clone(p.names[i:]), path)
		return &Error{Pos: at, Msg: fmt.Sprintf("include loop: %s (carbon-c-relay recurses until it fails)", strings.Join(chain, " includes "))}
	}
	if len(p.stack) >= maxIncludeDepth {
		return &Error{Pos: at, Msg: fmt.Sprintf("includes nested more than %d deep", maxIncludeDepth)}
	}
	src, err := os.ReadFile(osPath(dir, path))
	if err != nil {
		return &Error{Pos: at, Msg: fmt.Sprintf("failed to open config file '%s': %v", path, err)}
	}
	p.stack = append(p.stack, st)
	p.names = append(p.names, path)
	err = p.parseSource(path, src)
	p.stack, p.names = p.stack[:len(p.stack)-1], p.names[:len(p.names)-1]
	return err
}

// parseSource parses the text of one file in place.
func (p *parser) parseSource(name string, src []byte) error {
	file, lx, la, have := p.file, p.lx, p.la, p.have
	p.file, p.lx, p.have = name, newLexer(src), false
	err := p.stmts()
	p.file, p.lx, p.la, p.have = file, lx, la, have
	return err
}

// parseText is Parse on the text of the first file.
func parseText(name string, src []byte, opt Options) (*Config, error) {
	p := newParser(name, opt)
	if err := p.parseSource(name, src); err != nil {
		return nil, err
	}
	p.defaults(name)
	return p.cfg, nil
}

// isGlob is carbon-c-relay's test for a glob pattern.
func isGlob(path string) bool {
	return strings.ContainsAny(path, "*?") || (strings.Contains(path, "[") && strings.Contains(path, "]"))
}

// ---- tokens

func (p *parser) peek() token {
	if !p.have {
		p.la = p.lx.next()
		p.have = true
	}
	return p.la
}

func (p *parser) next() token {
	t := p.peek()
	p.have = false
	return t
}

// syntax returns the error for the unexpected token t; a scanner error
// comes first, as carbon-c-relay reports it first.
func (p *parser) syntax(t token, want ...tok) error {
	if p.lx.err != nil {
		return &Error{Pos: Pos{p.file, p.lx.err.line}, Msg: p.lx.err.msg}
	}
	msg := "syntax error, unexpected " + t.describe()
	if len(want) > 0 {
		names := make([]string, len(want))
		for i, w := range want {
			switch w {
			case tString, tInt, tEOF:
				names[i] = w.String()
			default:
				names[i] = "'" + w.String() + "'"
			}
		}
		msg += ", expecting " + strings.Join(names, " or ")
	}
	return &Error{Pos: Pos{p.file, t.line}, Msg: msg}
}

// expect consumes a token of one of the kinds.
func (p *parser) expect(kinds ...tok) (token, error) {
	t := p.next()
	if slices.Contains(kinds, t.kind) {
		return t, nil
	}
	return t, p.syntax(t, kinds...)
}

// accept consumes the next token if it is of kind k.
func (p *parser) accept(k tok) (token, bool) {
	if t := p.peek(); t.kind == k {
		p.next()
		return t, true
	}
	return token{}, false
}

// expectAll consumes tokens of the kinds given, in order.
func (p *parser) expectAll(kinds ...tok) error {
	for _, k := range kinds {
		if _, err := p.expect(k); err != nil {
			return err
		}
	}
	return nil
}

// expectExpr reads a string that must be a valid regular expression.
func (p *parser) expectExpr() (token, error) {
	t, err := p.expect(tString)
	if err != nil {
		return t, err
	}
	return t, p.expression(t)
}

// expectSeconds reads "<int> seconds".
func (p *parser) expectSeconds() (token, error) {
	n, err := p.expect(tInt)
	if err != nil {
		return n, err
	}
	_, err = p.expect(tSeconds)
	return n, err
}

// sendTo reads "to match_dsts" after send.
func (p *parser) sendTo() (dests, error) {
	if _, err := p.expect(tTo); err != nil {
		return dests{}, err
	}
	return p.dsts()
}

func (p *parser) errAt(line int, format string, a ...any) error {
	return &Error{Pos: Pos{p.file, line}, Msg: fmt.Sprintf(format, a...)}
}

func (p *parser) unsupported(line int, format string, a ...any) {
	p.cfg.Unsupported = append(p.cfg.Unsupported, &Error{Pos: Pos{p.file, line}, Msg: fmt.Sprintf(format, a...), Unsupported: true})
}

// ---- statements

func (p *parser) stmts() error {
	for {
		t := p.peek()
		var err error
		switch t.kind {
		case tEOF:
			if p.lx.err != nil {
				return p.syntax(t)
			}
			return nil
		case tCluster:
			err = p.cluster()
		case tMatch:
			err = p.match()
		case tRewrite:
			err = p.rewrite()
		case tAggregate:
			err = p.aggregate()
		case tSend:
			err = p.sendStatistics()
		case tStatistics:
			err = p.statistics()
		case tListen:
			err = p.listen()
		case tInclude:
			err = p.include()
		default:
			p.next()
			return p.syntax(t, tEOF)
		}
		if err != nil {
			return err
		}
		if _, err := p.expect(tSemicolon); err != nil {
			return err
		}
	}
}

// ---- cluster

func (p *parser) cluster() error {
	kw := p.next()
	name, err := p.expect(tString)
	if err != nil {
		return err
	}
	c := &Cluster{Pos: Pos{p.file, kw.line}, Name: name.text, Replication: 1}
	t := p.next()
	switch t.kind {
	case tForward, tAnyOf, tFailover:
		c.Type = map[tok]ClusterType{tForward: Forward, tAnyOf: AnyOf, tFailover: Failover}[t.kind]
		if _, ok := p.accept(tUseall); ok {
			c.UseAll = true
		}
	case tCarbonCh, tFnv1aCh, tJumpFnv1aCh:
		c.Type = map[tok]ClusterType{tCarbonCh: CarbonCh, tFnv1aCh: Fnv1aCh, tJumpFnv1aCh: JumpCh}[t.kind]
		repl := int32(1)
		if _, ok := p.accept(tReplication); ok {
			n, err := p.expect(tInt)
			if err != nil {
				return err
			}
			repl = int32(n.ival)
		}
		dyn := int32(0)
		if _, ok := p.accept(tDynamic); ok {
			dyn = 1
		}
		// carbon-c-relay packs both into one int: (dyn * 2) + (repl * 10)
		ival := dyn*2 + repl*10
		replcnt := ival / 10
		c.Dynamic = ival-replcnt*10 == 2
		c.Replication = int(replcnt)
	case tFile:
		c.Type = FileLog
		if _, ok := p.accept(tIP); ok {
			c.Type = FileLogIP
		}
		return p.clusterFiles(c)
	default:
		return p.syntax(t, tForward, tAnyOf, tFailover, tCarbonCh, tFnv1aCh, tJumpFnv1aCh, tFile)
	}
	for {
		m, err := p.clusterHost()
		if err != nil {
			return err
		}
		c.Members = append(c.Members, m)
		if p.peek().kind != tString {
			break
		}
	}
	// the cluster action of conffile.y
	line := p.peek().line
	if c.Type.Hashing() && (c.Replication < 1 || c.Replication > 255) {
		return p.errAt(line, "replication count must be between 1 and 255")
	}
	if c.UseAll && p.opt.Lookup != nil {
		// useall: a member per address of a name (Options.Lookup)
		var ms []*Member
		for _, m := range c.Members {
			if _, ok := numericAddr(m.Host); ok || m.noHost {
				ms = append(ms, m)
				continue
			}
			as, _ := p.opt.Lookup(m.Host)
			for _, a := range as {
				mm := *m
				mm.Host, mm.expandedFrom = a.String(), m.Host
				ms = append(ms, &mm)
			}
			if len(as) == 0 {
				return p.errAt(line, "cluster %s: useall on %s, which does not resolve: carbon-c-relay crashes on it", c.Name, m.Host)
			}
		}
		c.Members = ms
	}
	return p.addMembers(c, line)
}

// addMembers adds the cluster's servers, then the cluster.
func (p *parser) addMembers(c *Cluster, line int) error {
	for _, m := range c.Members {
		if err := p.addServer(c, m, line); err != nil {
			return err
		}
	}
	return p.addCluster(c, line)
}

func (p *parser) clusterFiles(c *Cluster) error {
	for {
		t, err := p.expect(tString)
		if err != nil {
			return err
		}
		if err := p.probePath(t); err != nil {
			return err
		}
		c.Members = append(c.Members, &Member{Pos: Pos{p.file, t.line}, Path: t.text, Proto: "file", Transport: "plain"})
		if p.peek().kind != tString {
			break
		}
	}
	line := p.peek().line
	return p.addMembers(c, line)
}

func (p *parser) clusterHost() (*Member, error) {
	t, err := p.expect(tString)
	if err != nil {
		return nil, err
	}
	m := &Member{Pos: Pos{p.file, t.line}, Proto: "tcp", Transport: "plain"}
	if _, ok := p.accept(tEquals); ok {
		v, err := p.expect(tString, tInt)
		if err != nil {
			return nil, err
		}
		m.HasInst = true
		m.Instance = v.text
		if v.kind == tInt {
			m.Instance = strconv.Itoa(v.ival) // snprintf("%d", atoi(...))
		}
	}
	if _, ok := p.accept(tProto); ok {
		v, err := p.expect(tUDP, tTCP)
		if err != nil {
			return nil, err
		}
		m.Proto = v.kind.String()
	}
	if _, ok := p.accept(tType); ok {
		v, err := p.expect(tLinemode, tSyslog)
		if err != nil {
			return nil, err
		}
		m.Syslog = v.kind == tSyslog
	}
	if _, ok := p.accept(tTransport); ok {
		v, err := p.expect(tPlain, tGzip, tLz4, tSnappy)
		if err != nil {
			return nil, err
		}
		m.Transport = v.kind.String()
		if _, ok := p.accept(tSSL); ok {
			m.SSL = true
		}
	}
	host, any, port, err := validateAddress(t.text)
	if err != nil {
		return nil, p.errAt(p.peek().line, "%s", err)
	}
	m.Host, m.Port, m.noHost = host, port, any
	return m, nil
}

// validateAddress is router_validate_address: "host", "host:port",
// "[v6]" or "[v6]:port"; the port defaults to 2003. any is set for ":port"
// (no host: every interface).
func validateAddress(s string) (host string, any bool, port int, err error) {
	port = 2003
	last := strings.LastIndexByte(s, ':')
	if strings.HasSuffix(s, "]") {
		last = -1
	}
	ip := s
	if last >= 0 {
		ps := s[last+1:]
		v, ok := hashring.Strtol(ps)
		if !ok || v < 1 || v > 65535 {
			msg := fmt.Sprintf("invalid port number '%s'", ps)
			if len(msg) > 39 { // carbon-c-relay's 40-byte buffer
				msg = msg[:39]
			}
			return "", false, 0, errors.New(msg)
		}
		port = int(v)
		ip = s[:last]
	}
	if strings.HasPrefix(ip, "[") {
		if !strings.HasSuffix(ip, "]") {
			return "", false, 0, errors.New("expected ']'")
		}
		return ip[1 : len(ip)-1], false, port, nil
	}
	if last == 0 {
		return "", true, port, nil
	}
	return ip, false, port, nil
}

// numericAddr is getaddrinfo(AI_NUMERICHOST): an IPv6 address, or an IPv4
// address in any form inet_aton reads ("127.1", "0x7f.0.0.1", "2130706433").
func numericAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a, true
	}
	if s == "" || strings.ContainsRune(s, ':') {
		return netip.Addr{}, false
	}
	parts := strings.Split(s, ".")
	if len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		base := 10
		switch {
		case strings.HasPrefix(p, "0x") || strings.HasPrefix(p, "0X"):
			base, p = 16, p[2:]
			if p == "" {
				// inet_aton reads "0x" as 0
				p = "0"
			}
		case len(p) > 1 && p[0] == '0':
			base, p = 8, p[1:]
		}
		v, err := strconv.ParseUint(p, base, 32)
		if err != nil || p == "" {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	var ip uint64
	n := len(vals)
	for i := 0; i < n-1; i++ {
		if vals[i] > 0xff {
			return netip.Addr{}, false
		}
		ip |= vals[i] << (8 * (3 - i))
	}
	if vals[n-1] > uint64(0xffffffff)>>(8*(n-1)) {
		return netip.Addr{}, false
	}
	ip |= vals[n-1]
	return netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), true
}

// server is a destination as carbon-c-relay shares them between clusters.
type server struct {
	ip        string // host as written; the path of a file
	port      int
	proto     string // tcp, udp, file
	kind      addrKind
	addr      netip.Addr // addrIP
	syslog    bool
	transport string
	ssl       bool
	instance  string
	hasInst   bool
	refs      int
}

// addrKind is what carbon-c-relay knows of a server's address.
type addrKind uint8

const (
	addrNone addrKind = iota // a file, or a name that does not resolve
	addrIP                   // an address (the first one of a name)
	addrName                 // a name taken to resolve to addresses of its own
)

// same is server_cmp: when either has no address, the ip strings (the
// port plays no part); else address, port and protocol.
func (s *server) same(o *server) bool {
	if s.kind == addrNone || o.kind == addrNone {
		return s.ip == o.ip
	}
	if s.kind != o.kind || s.proto != o.proto || s.port != o.port {
		return false
	}
	if s.kind == addrIP {
		return s.addr == o.addr
	}
	return s.ip == o.ip
}

func (s *server) String() string {
	ip := s.ip
	if strings.Contains(ip, ":") {
		ip = "[" + ip + "]"
	}
	return fmt.Sprintf("%s:%d", ip, s.port)
}

// addServer is router_add_server.
func (p *parser) addServer(c *Cluster, m *Member, line int) error {
	if m.noHost {
		return p.errAt(line, "cluster %s: member ':%d' has no host: carbon-c-relay crashes on it", c.Name, m.Port)
	}
	ns := &server{ip: m.Host, port: m.Port, proto: m.Proto, syslog: m.Syslog, transport: m.Transport, ssl: m.SSL}
	switch {
	case m.Proto == "file":
		ns.ip, ns.port = m.Path, 2003
	case m.Host == "":
	default:
		if a, ok := numericAddr(m.Host); ok {
			ns.kind, ns.addr = addrIP, a
			if c.UseAll {
				// the expansion writes the address out
				ns.ip = a.String()
			}
		} else if p.opt.Lookup == nil {
			ns.kind = addrName
		} else if as, ok := p.opt.Lookup(m.Host); ok && len(as) > 0 {
			ns.kind, ns.addr = addrIP, as[0]
		}
	}
	var s *server
	for _, o := range p.servers {
		if o.same(ns) {
			s = o
			break
		}
	}
	if s == nil {
		s = ns
		p.servers = append(p.servers, s)
	}
	s.refs++
	if s.refs > 1 && m.Syslog != s.syslog {
		return p.errAt(line, "cannot set type '%s' for server %s: server was previously defined with type '%s'", typeName(m.Syslog), s, typeName(s.syslog))
	}
	if s.refs > 1 {
		switch {
		case !s.hasInst && m.HasInst:
			return p.errAt(line, "cannot set instance '%s' for server %s: server was previously defined without instance", m.Instance, s)
		case s.hasInst && !m.HasInst:
			return p.errAt(line, "cannot define server %s without instance: server was previously defined with instance '%s'", s, s.instance)
		case s.hasInst && m.HasInst && s.instance != m.Instance:
			return p.errAt(line, "cannot set instance '%s' for server %s: server was previously defined with instance '%s'", m.Instance, s, s.instance)
		}
	}
	if m.HasInst {
		s.instance, s.hasInst = m.Instance, true
	}
	m.srv = s
	if (c.Type == AnyOf || c.Type == Failover) && s.refs > 1 {
		return p.errAt(line, "cannot share server %s with any_of/failover cluster '%s'", s, c.Name)
	}
	return nil
}

func typeName(syslog bool) string {
	if syslog {
		return "syslog"
	}
	return "linemode"
}

// addCluster is router_add_cluster.
func (p *parser) addCluster(c *Cluster, line int) error {
	if _, dup := p.clusters[c.Name]; dup {
		return p.errAt(line, "cluster with the same name already defined")
	}
	if c.Type.Hashing() && len(c.Members) < c.Replication {
		return p.errAt(line, "invalid cluster '%s': replication count (%d) is larger than the number of servers (%d)", c.Name, c.Replication, len(c.Members))
	}
	p.clusters[c.Name] = c
	p.cfg.Clusters = append(p.cfg.Clusters, c)
	return nil
}

// ---- match, rewrite, aggregate

// expression is router_validate_expression; "*" matches everything.
func (p *parser) expression(t token) error {
	if t.text == "*" {
		return nil
	}
	if !needsRegex(t.text) {
		return nil
	}
	nsub, msg := checkERE(t.text)
	if msg == "" && nsub+1 > 64 {
		msg = "Memory exhausted" // more groups than carbon-c-relay's RE_MAX_MATCHES
	}
	if msg != "" {
		return p.errAt(t.line, "invalid expression '%s': %s", t.text, msg)
	}
	return nil
}

// needsRegex is determine_if_regex: whether carbon-c-relay compiles the
// expression (else it is a plain string test, never checked).
func needsRegex(e string) bool {
	e = strings.TrimPrefix(e, "^")
	escape := false
	for i := 0; i < len(e); i++ {
		c := e[i]
		switch {
		case c == '\\':
			escape = !escape
			continue
		case c == '.' || c == '^' || c == '*' || c == '+':
			if !escape {
				return true
			}
		case c == '$':
			if escape || i != len(e)-1 {
				return true
			}
		case !escape && (c == '_' || c == '-' || isDigit(c) || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'):
		default:
			return true
		}
		escape = false
	}
	return false
}

// exprs reads match_exprs2 (one or more strings), checking each.
func (p *parser) exprs() ([]string, error) {
	var out []string
	for {
		t, err := p.expectExpr()
		if err != nil {
			return nil, err
		}
		out = append(out, t.text)
		if p.peek().kind != tString {
			return out, nil
		}
	}
}

// dsts reads match_dsts: blackhole, or cluster names that must exist.
func (p *parser) dsts() (d dests, err error) {
	if _, ok := p.accept(tBlackhole); ok {
		return dests{raw: []string{"blackhole"}, blackhole: true, first: true}, nil
	}
	for i := 0; ; i++ {
		t, err := p.expect(tString)
		if err != nil {
			return d, err
		}
		if _, ok := p.clusters[t.text]; !ok {
			return d, p.errAt(t.line, "unknown cluster")
		}
		d.raw = append(d.raw, t.text)
		if t.text == "blackhole" {
			d.blackhole = true
			d.first = d.first || i == 0
		} else {
			d.names = append(d.names, t.text)
		}
		if p.peek().kind != tString {
			return d, nil
		}
	}
}

// dests is a list of destinations: the clusters besides the blackhole,
// whether the blackhole is among them and first, and the list as written.
type dests struct {
	names            []string
	blackhole, first bool
	raw              []string
}

func (p *parser) match() error {
	kw := p.next()
	r := &Rule{Pos: Pos{p.file, kw.line}, Kind: Match}
	if _, ok := p.accept(tStar); ok {
		r.Exprs = []string{"*"}
	} else {
		ex, err := p.exprs()
		if err != nil {
			return err
		}
		r.Exprs = ex
	}
	if _, ok := p.accept(tValidate); ok {
		t, err := p.expectExpr()
		if err != nil {
			return err
		}
		r.Validate = t.text
		if _, err := p.expect(tElse); err != nil {
			return err
		}
		v, err := p.expect(tLog, tDrop)
		if err != nil {
			return err
		}
		r.ElseLog = v.kind == tLog
	}
	if t, ok := p.accept(tRoute); ok {
		if _, err := p.expect(tUsing); err != nil {
			return err
		}
		u, err := p.expect(tString)
		if err != nil {
			return err
		}
		r.RouteUsing = u.text
		_ = t
	}
	if _, ok := p.accept(tSend); ok {
		d, err := p.sendTo()
		if err != nil {
			return err
		}
		r.HasSend, r.SendTo, r.Blackhole, r.BlackholeFirst, r.Dests = true, d.names, d.blackhole, d.first, d.raw
	}
	if _, ok := p.accept(tStop); ok {
		r.Stop = true
	}
	r.Stops = r.HasSend && (r.BlackholeFirst || r.Stop)
	p.cfg.Rules = append(p.cfg.Rules, r)
	return nil
}

func (p *parser) rewrite() error {
	kw := p.next()
	t, err := p.expectExpr()
	if err != nil {
		return err
	}
	if _, err := p.expect(tInto); err != nil {
		return err
	}
	into, err := p.expect(tString)
	if err != nil {
		return err
	}
	p.cfg.Rules = append(p.cfg.Rules, &Rule{Pos: Pos{p.file, kw.line}, Kind: Rewrite, Exprs: []string{t.text}, Into: into.text})
	return nil
}

func (p *parser) aggregate() error {
	kw := p.next()
	r := &Rule{Pos: Pos{p.file, kw.line}, Kind: Aggregate}
	ex, err := p.exprs()
	if err != nil {
		return err
	}
	r.Exprs = ex
	if _, err := p.expect(tEvery); err != nil {
		return err
	}
	intv, err := p.expectSeconds()
	if err != nil {
		return err
	}
	if err := p.expectAll(tExpire, tAfter); err != nil {
		return err
	}
	exp, err := p.expectSeconds()
	if err != nil {
		return err
	}
	r.Every, r.Expire, r.Timestamp = intv.ival, exp.ival, "end"
	if _, ok := p.accept(tTimestamp); ok {
		if _, err := p.expect(tAt); err != nil {
			return err
		}
		ts, err := p.expect(tStart, tMiddle, tEnd)
		if err != nil {
			return err
		}
		r.Timestamp = ts.kind.String()
		if err := p.expectAll(tOf, tBucket); err != nil {
			return err
		}
	}
	for {
		if _, err := p.expect(tCompute); err != nil {
			return err
		}
		ct, err := p.expect(tSum, tCount, tMax, tMin, tAverage, tMedian, tPercentile, tVariance, tStddev)
		if err != nil {
			return err
		}
		if ct.kind == tPercentile && (ct.ival < 1 || ct.ival > 99) {
			return p.errAt(p.peek().line, "percentile<x>: value x must be between 1 and 99")
		}
		if err := p.expectAll(tWrite, tTo); err != nil {
			return err
		}
		mt, err := p.expect(tString)
		if err != nil {
			return err
		}
		r.Computes = append(r.Computes, Compute{Type: ct.kind.String(), Pct: ct.ival, Metric: mt.text})
		if p.peek().kind != tCompute {
			break
		}
	}
	if _, ok := p.accept(tSend); ok {
		d, err := p.sendTo()
		if err != nil {
			return err
		}
		r.HasSend, r.SendTo, r.Blackhole, r.Dests = true, d.names, d.blackhole, d.raw
	}
	if _, ok := p.accept(tStop); ok {
		r.Stop, r.Stops = true, true
	}
	line := p.peek().line
	switch {
	case intv.ival <= 0:
		return p.errAt(line, "interval must be > 0")
	case exp.ival <= 0:
		return p.errAt(line, "expire must be > 0")
	case exp.ival <= intv.ival:
		return p.errAt(line, "expire must be greater than interval")
	}
	if r.HasSend && (r.Blackhole || len(r.SendTo) == 0) {
		p.unsupported(kw.line, "aggregate ... send to blackhole is not supported by router yet (an aggregate's send_to names outputs)")
	}
	p.cfg.Rules = append(p.cfg.Rules, r)
	return nil
}

// ---- statistics

func (p *parser) setStatsSend(line int, d dests) error {
	st := &p.cfg.Stats
	if st.HasSend {
		return p.errAt(line, "duplicate 'statistics send to' not allowed, use multiple destinations instead")
	}
	st.HasSend, st.SendTo, st.Blackhole, st.Dests = true, d.names, d.blackhole, d.raw
	st.SendPos = &Pos{p.file, line}
	return nil
}

// sendStatistics is the deprecated "send statistics to".
func (p *parser) sendStatistics() error {
	kw := p.next()
	if _, err := p.expect(tStatistics); err != nil {
		return err
	}
	d, err := p.sendTo()
	if err != nil {
		return err
	}
	if t, ok := p.accept(tStop); ok {
		p.cfg.Stats.StopPos = &Pos{p.file, t.line}
	}
	return p.setStatsSend(kw.line, d)
}

func (p *parser) statistics() error {
	p.next()
	st := &p.cfg.Stats
	interval := -1
	var intervalLine int
	if t, ok := p.accept(tSubmit); ok {
		if _, err := p.expect(tEvery); err != nil {
			return err
		}
		n, err := p.expectSeconds()
		if err != nil {
			return err
		}
		if n.ival <= 0 {
			return p.errAt(p.peek().line, "interval must be > 0")
		}
		interval, intervalLine = n.ival, t.line
	}
	reset := false
	var resetLine int
	if t, ok := p.accept(tReset); ok {
		if err := p.expectAll(tCounters, tAfter, tInterval); err != nil {
			return err
		}
		reset, resetLine = true, t.line
	}
	prefix, prefixLine := "", 0
	if t, ok := p.accept(tPrefix); ok {
		if _, err := p.expect(tWith); err != nil {
			return err
		}
		v, err := p.expect(tString)
		if err != nil {
			return err
		}
		prefix, prefixLine = v.text, t.line
	}
	var send bool
	var d dests
	var sendLine int
	if t, ok := p.accept(tSend); ok {
		var err error
		d, err = p.sendTo()
		if err != nil {
			return err
		}
		send, sendLine = true, t.line
	}
	if t, ok := p.accept(tStop); ok {
		st.StopPos = &Pos{p.file, t.line}
	}
	// router_set_collectorvals: the interval and prefix when given, the
	// counter mode always
	if interval >= 0 {
		st.Interval, st.IntervalPos = interval, &Pos{p.file, intervalLine}
	}
	if prefixLine > 0 {
		st.Prefix, st.PrefixPos = prefix, &Pos{p.file, prefixLine}
	}
	st.Reset, st.ResetPos = reset, nil
	if reset {
		st.ResetPos = &Pos{p.file, resetLine}
	}
	if send {
		return p.setStatsSend(sendLine, d)
	}
	return nil
}

// ---- listen

func (p *parser) listen() error {
	p.next()
	if _, err := p.expect(tType); err != nil {
		return err
	}
	if _, err := p.expect(tLinemode); err != nil {
		return err
	}
	transport, ssl, pem := "plain", false, ""
	if _, ok := p.accept(tTransport); ok {
		v, err := p.expect(tPlain, tGzip, tLz4, tSnappy)
		if err != nil {
			return err
		}
		transport = v.kind.String()
		if _, ok := p.accept(tSSL); ok {
			v, err := p.expect(tString)
			if err != nil {
				return err
			}
			ssl, pem = true, v.text
		}
	}
	var recs []*Receptor
	for {
		t, err := p.expect(tString)
		if err != nil {
			return err
		}
		if _, err := p.expect(tProto); err != nil {
			return err
		}
		pr, err := p.expect(tTCP, tUDP, tUnix)
		if err != nil {
			return err
		}
		r := &Receptor{Pos: Pos{p.file, t.line}, Proto: pr.kind.String(), Transport: transport, SSL: ssl, PEM: pem}
		if pr.kind == tUnix {
			if err := p.probePath(t); err != nil {
				return err
			}
			r.Path = t.text
		} else {
			addr := t.text
			if strings.Trim(addr, "0123456789") == "" {
				addr = ":" + addr
				if len(addr) > 23 { // carbon-c-relay's 24-byte buffer
					addr = addr[:23]
				}
			}
			host, any, port, err := validateAddress(addr)
			if err != nil {
				return p.errAt(p.peek().line, "%s", err)
			}
			if !any && host == "" {
				return p.errAt(p.peek().line, "invalid listener  for port %d", port)
			}
			r.Host, r.Port = host, port
			if _, ok := numericAddr(host); !ok && host != "" && p.opt.Lookup != nil {
				if as, ok := p.opt.Lookup(host); !ok || len(as) == 0 {
					return p.errAt(p.peek().line, "invalid listener %s for port %d", host, port)
				} else {
					r.addrs = as
				}
			}
		}
		recs = append(recs, r)
		if p.peek().kind != tString {
			break
		}
	}
	line := p.peek().line
	if transport != "plain" || ssl {
		for _, r := range recs {
			if r.Proto == "udp" {
				return p.errAt(line, "cannot use UDP transport for compressed/encrypted stream")
			}
		}
	}
	for _, r := range recs {
		if err := p.addListener(r, line); err != nil {
			return err
		}
	}
	return nil
}

// addListener is router_add_listener's duplicate check. A host name is
// taken to resolve to addresses no other listener has, except the any
// address.
func (p *parser) addListener(r *Receptor, line int) error {
	for _, o := range p.cfg.Listeners {
		if o.Proto != r.Proto {
			continue
		}
		if r.Proto == "unix" {
			if o.Path == r.Path {
				return p.errAt(line, "duplicate listener %s", r.Path)
			}
			continue
		}
		if o.Port != r.Port {
			continue
		}
		if dup, l, rr := listenOverlap(r, o); dup {
			return p.errAt(line, "duplicate listener %s with %s for port %d", l, rr, r.Port)
		}
	}
	p.cfg.Listeners = append(p.cfg.Listeners, r)
	return nil
}

// listenOverlap reports whether listeners a and b (same port and
// protocol) collide as carbon-c-relay sees it: an address of each of the
// same family, either one the any address or both equal. A host name not
// resolved (Options.Lookup nil) collides with the any address and with
// itself.
func listenOverlap(a, b *Receptor) (bool, string, string) {
	type addr struct {
		fam  int // 4, 6; 0 = a host name
		any  bool
		text string
	}
	expand := func(r *Receptor) []addr {
		if r.Host == "" {
			return []addr{{4, true, "0.0.0.0"}, {6, true, "::"}}
		}
		ips := r.addrs
		if ip, ok := numericAddr(r.Host); ok {
			ips = []netip.Addr{ip}
		}
		if len(ips) == 0 {
			return []addr{{0, false, r.Host}}
		}
		var out []addr
		for _, ip := range ips {
			f := 6
			if ip.Is4() {
				f = 4
			}
			out = append(out, addr{f, ip.IsUnspecified(), ip.String()})
		}
		return out
	}
	for _, x := range expand(a) {
		for _, y := range expand(b) {
			switch {
			case x.fam == 0 && y.fam == 0:
				if x.text == y.text {
					return true, x.text, y.text
				}
			case x.fam == 0 || y.fam == 0:
				if x.any || y.any {
					return true, x.text, y.text
				}
			case x.fam == y.fam && (x.any || y.any || x.text == y.text):
				return true, x.text, y.text
			}
		}
	}
	return false, "", ""
}

// probePath is router_validate_path (with Options.ProbePaths).
func (p *parser) probePath(t token) error {
	if !p.opt.ProbePaths {
		return nil
	}
	path := osPath(p.opt.Dir, t.text)
	st, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		if statErr == nil && st.Mode()&fs.ModeSocket != 0 {
			return nil
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return p.errAt(t.line, "failed to open file '%s' for writing: %v", t.text, err)
	}
	f.Close()
	if statErr != nil {
		os.Remove(path)
	}
	return nil
}

// ---- include

func (p *parser) include() error {
	p.next()
	t, err := p.expect(tString)
	if err != nil {
		return err
	}
	return p.readConfig(t.text, Pos{p.file, t.line}, p.opt.Dir)
}
