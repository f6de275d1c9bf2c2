package registry

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// TLSServer holds the TLS keys of a listening plugin. Embed it anonymously
// (no tag) in the plugin struct: BurntSushi/toml promotes the fields of an
// untagged embedded struct as encoding/json does, so its keys sit in the
// plugin's own table and md.Undecoded sees them as decoded.
//
//	[[inputs.graphite]]
//	listen = ":2004"
//	tls_cert = "/etc/router/tls/server.crt"
//	tls_key = "/etc/router/tls/server.key"
//	tls_ca = "/etc/router/tls/clients-ca.crt"   # client certificates required
//
// TLS is on when tls_cert is set. Check validates (and reads the files),
// ServerConfig builds the *tls.Config, which ReloadTLS keeps up to date
// until ReleaseTLS.
type TLSServer struct {
	// TLSCert is the PEM certificate chain served (leaf first).
	TLSCert string `toml:"tls_cert"`
	// TLSKey is the PEM private key of TLSCert.
	TLSKey string `toml:"tls_key"`
	// TLSCA, when set, requires a client certificate signed by one of
	// these PEM certificates (mutual TLS).
	TLSCA string `toml:"tls_ca"`
	// TLSMinVersion and TLSMaxVersion: "1.0", "1.1", "1.2" or "1.3"; Go's
	// defaults (1.2 and 1.3) when empty.
	TLSMinVersion string `toml:"tls_min_version"`
	TLSMaxVersion string `toml:"tls_max_version"`
	// TLSCiphers restricts the TLS 1.2 cipher suites, by Go's names
	// (tls.CipherSuites()); TLS 1.3 suites cannot be chosen.
	TLSCiphers []string `toml:"tls_ciphers"`
}

// TLSClient holds the TLS keys of a connecting plugin; embed it as
// TLSServer. TLS is on when tls_enable is true or a certificate or CA key
// is set. Without tls_ca the server is verified against the system roots.
type TLSClient struct {
	// TLSEnable turns TLS on with the system roots and no client
	// certificate.
	TLSEnable bool `toml:"tls_enable"`
	// TLSCert and TLSKey: the client certificate (mutual TLS).
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// TLSCA: the PEM certificates the server's chain must lead to,
	// instead of the system roots.
	TLSCA string `toml:"tls_ca"`
	// TLSServerName is the name verified in the server's certificate;
	// the host part of the address when empty.
	TLSServerName string `toml:"tls_server_name"`
	// InsecureSkipVerify accepts any server certificate. Warning says
	// so, to be logged at every start.
	InsecureSkipVerify bool     `toml:"insecure_skip_verify"`
	TLSMinVersion      string   `toml:"tls_min_version"`
	TLSMaxVersion      string   `toml:"tls_max_version"`
	TLSCiphers         []string `toml:"tls_ciphers"`
}

// Enabled reports whether the listener speaks TLS (tls_cert is set).
func (s *TLSServer) Enabled() bool { return s.TLSCert != "" }

// Enabled reports whether the connection speaks TLS: tls_enable, or any of
// tls_cert, tls_key, tls_ca set.
func (c *TLSClient) Enabled() bool {
	return c.TLSEnable || c.TLSCert != "" || c.TLSKey != "" || c.TLSCA != ""
}

// Check validates the keys and reads the files, so that a mistake fails at
// start (and in -check) with an error naming the key. It returns nil when
// no TLS key is set.
func (s *TLSServer) Check() error {
	if !s.Enabled() {
		for _, k := range []struct{ name, v string }{{"tls_key", s.TLSKey}, {"tls_ca", s.TLSCA},
			{"tls_min_version", s.TLSMinVersion}, {"tls_max_version", s.TLSMaxVersion}} {
			if k.v != "" {
				return fmt.Errorf("%s is set but tls_cert is not: set tls_cert and tls_key to turn TLS on", k.name)
			}
		}
		if len(s.TLSCiphers) > 0 {
			return errors.New("tls_ciphers is set but tls_cert is not: set tls_cert and tls_key to turn TLS on")
		}
		return nil
	}
	if s.TLSKey == "" {
		return errors.New("tls_cert is set without tls_key")
	}
	if _, err := parseTLSParams(s.TLSMinVersion, s.TLSMaxVersion, s.TLSCiphers); err != nil {
		return err
	}
	_, err := loadTLSFiles(s.TLSCert, s.TLSKey, s.TLSCA)
	return err
}

// Check validates the keys and reads the files, as TLSServer.Check does.
func (c *TLSClient) Check() error {
	if !c.Enabled() {
		for _, k := range []struct{ name, v string }{{"tls_server_name", c.TLSServerName},
			{"tls_min_version", c.TLSMinVersion}, {"tls_max_version", c.TLSMaxVersion}} {
			if k.v != "" {
				return fmt.Errorf("%s is set but TLS is off: set tls_enable = true", k.name)
			}
		}
		if len(c.TLSCiphers) > 0 {
			return errors.New("tls_ciphers is set but TLS is off: set tls_enable = true")
		}
		if c.InsecureSkipVerify {
			return errors.New("insecure_skip_verify is set but TLS is off: set tls_enable = true")
		}
		return nil
	}
	if c.TLSCert != "" && c.TLSKey == "" {
		return errors.New("tls_cert is set without tls_key")
	}
	if c.TLSKey != "" && c.TLSCert == "" {
		return errors.New("tls_key is set without tls_cert")
	}
	if c.InsecureSkipVerify && c.TLSCA != "" {
		return errors.New("tls_ca and insecure_skip_verify are both set: insecure_skip_verify would ignore tls_ca")
	}
	if _, err := parseTLSParams(c.TLSMinVersion, c.TLSMaxVersion, c.TLSCiphers); err != nil {
		return err
	}
	_, err := loadTLSFiles(c.TLSCert, c.TLSKey, c.TLSCA)
	return err
}

// Warning returns a sentence to log at warn level at every start when the
// configuration is unsafe (insecure_skip_verify), else "".
func (c *TLSClient) Warning() string {
	if c.Enabled() && c.InsecureSkipVerify {
		return "insecure_skip_verify = true: the server's certificate is not verified, " +
			"anyone on the path can read and change the metrics"
	}
	return ""
}

// ServerConfig returns the configuration for tls.NewListener / tls.Server,
// or nil when TLS is off. Each handshake takes the certificate and CA that
// ReloadTLS last read (through GetConfigForClient); connections already
// established are not touched by a reload. Call ReleaseTLS with the config
// when the listener is closed.
func (s *TLSServer) ServerConfig() (*tls.Config, error) {
	if !s.Enabled() {
		return nil, nil
	}
	if err := s.Check(); err != nil {
		return nil, err
	}
	p, _ := parseTLSParams(s.TLSMinVersion, s.TLSMaxVersion, s.TLSCiphers)
	l := &liveTLS{certFile: s.TLSCert, keyFile: s.TLSKey, caFile: s.TLSCA, params: p}
	if err := l.reload(); err != nil {
		return nil, err
	}
	cfg := p.apply(&tls.Config{})
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return l.cur.Load().server, nil
	}
	register(cfg, l)
	return cfg, nil
}

// ClientConfig returns the configuration for tls.Client / tls.Dialer for a
// connection to addr ("host:port"), or nil when TLS is off. The server name
// verified is tls_server_name, or the host part of addr. With tls_ca the
// chain is verified against the CA that ReloadTLS last read (in
// VerifyConnection: the config's InsecureSkipVerify is then set, and must
// stay with its VerifyConnection); the client certificate too is the one
// last read. Call ReleaseTLS with the config when the output is closed.
func (c *TLSClient) ClientConfig(addr string) (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	p, _ := parseTLSParams(c.TLSMinVersion, c.TLSMaxVersion, c.TLSCiphers)
	cfg := p.apply(&tls.Config{ServerName: c.TLSServerName, InsecureSkipVerify: c.InsecureSkipVerify})
	if cfg.ServerName == "" {
		cfg.ServerName = addr
		if h, _, err := net.SplitHostPort(addr); err == nil {
			cfg.ServerName = h
		}
	}
	if c.TLSCert == "" && c.TLSCA == "" {
		return cfg, nil
	}
	l := &liveTLS{certFile: c.TLSCert, keyFile: c.TLSKey, caFile: c.TLSCA, params: p}
	if err := l.reload(); err != nil {
		return nil, err
	}
	if c.TLSCert != "" {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return l.cur.Load().cert, nil
		}
	}
	if c.TLSCA != "" {
		name := cfg.ServerName
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyServer(cs, l.cur.Load().pool, name)
		}
	}
	register(cfg, l)
	return cfg, nil
}

// verifyServer is what crypto/tls does for a client with RootCAs, with the
// roots read at the time of the handshake.
func verifyServer(cs tls.ConnectionState, roots *x509.CertPool, name string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: server sent no certificate")
	}
	opts := x509.VerifyOptions{Roots: roots, DNSName: name, Intermediates: x509.NewCertPool()}
	for _, ic := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

// ReloadTLS reads again the certificates, keys and CAs of every config that
// ServerConfig or ClientConfig built and ReleaseTLS has not released; the
// agent calls it on SIGHUP. New handshakes use the new files; established
// connections are not touched. When a file cannot be read or parsed, that
// config keeps what it had and the error, naming the key and the file, is
// returned (once per distinct error).
func ReloadTLS() (errs []error) {
	tlsLives.Lock()
	ls := make([]*liveTLS, 0, len(tlsLives.m))
	for _, l := range tlsLives.m {
		ls = append(ls, l)
	}
	tlsLives.Unlock()
	seen := map[string]bool{}
	for _, l := range ls {
		if err := l.reload(); err != nil && !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, err)
		}
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return errs
}

// ReleaseTLS stops reloading cfg (built by ServerConfig or ClientConfig);
// call it when the listener or output using it is closed. A nil cfg, or one
// released already, is ignored. Connections still using cfg keep working.
func ReleaseTLS(cfg *tls.Config) {
	if cfg == nil {
		return
	}
	tlsLives.Lock()
	delete(tlsLives.m, cfg)
	tlsLives.Unlock()
}

// TLSHandshakeError wraps the error of a failed handshake with the peer
// remote ("host:port") for a log line, and says in plain words what
// happened: "tls handshake with 10.0.0.7:51234: certificate signed by
// unknown authority (x509: …)", "the peer refused the handshake: remote
// error: tls: bad certificate", "the peer does not speak TLS". errors.Is/As
// see the original error. A nil err gives nil.
func TLSHandshakeError(remote string, err error) error {
	if err == nil {
		return nil
	}
	return &handshakeError{remote: remote, reason: handshakeReason(err), err: err}
}

type handshakeError struct {
	remote, reason string
	err            error
}

func (e *handshakeError) Error() string { return "tls handshake with " + e.remote + ": " + e.reason }
func (e *handshakeError) Unwrap() error { return e.err }

func handshakeReason(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		op       *net.OpError
		record   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown):
		s := "certificate signed by unknown authority"
		if c := unknown.Cert; c != nil {
			s += fmt.Sprintf(" (certificate %q issued by %q)", c.Subject.String(), c.Issuer.String())
		}
		return s
	case errors.As(err, &hostname):
		return hostname.Error()
	case errors.As(err, &invalid):
		return invalid.Error()
	case errors.As(err, &op) && op.Op == "remote error":
		return "the peer refused the handshake: " + err.Error()
	case errors.As(err, &record):
		return "the peer does not speak TLS: " + err.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "the peer closed the connection during the handshake " +
			"(it may not speak TLS, or it refused this side's certificate or versions): " + err.Error()
	}
	return err.Error()
}

// tlsParams are the parsed version and cipher keys.
type tlsParams struct {
	min, max uint16
	ciphers  []uint16
}

func (p tlsParams) apply(c *tls.Config) *tls.Config {
	c.MinVersion, c.MaxVersion, c.CipherSuites = p.min, p.max, p.ciphers
	return c
}

var tlsVersions = map[string]uint16{
	"1.0": tls.VersionTLS10, "1.1": tls.VersionTLS11, "1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13,
}

func parseTLSVersion(key, v string) (uint16, error) {
	if v == "" {
		return 0, nil
	}
	n, ok := tlsVersions[v]
	if !ok {
		return 0, fmt.Errorf("%s %q: unknown TLS version, want \"1.0\", \"1.1\", \"1.2\" or \"1.3\"", key, v)
	}
	return n, nil
}

func parseTLSParams(minV, maxV string, ciphers []string) (tlsParams, error) {
	var p tlsParams
	var err error
	if p.min, err = parseTLSVersion("tls_min_version", minV); err != nil {
		return p, err
	}
	if p.max, err = parseTLSVersion("tls_max_version", maxV); err != nil {
		return p, err
	}
	if p.min != 0 && p.max != 0 && p.min > p.max {
		return p, fmt.Errorf("tls_min_version %q is above tls_max_version %q", minV, maxV)
	}
	if len(ciphers) == 0 {
		return p, nil
	}
	if p.min == tls.VersionTLS13 {
		return p, errors.New("tls_ciphers is set with tls_min_version \"1.3\": TLS 1.3 suites cannot be chosen, tls_ciphers applies to TLS 1.2 and below")
	}
	known := map[string]*tls.CipherSuite{}
	for _, cs := range tls.CipherSuites() {
		known[cs.Name] = cs
	}
	for _, name := range ciphers {
		cs, ok := known[name]
		if !ok {
			var names []string
			for _, cs := range tls.CipherSuites() {
				if !tls13Only(cs) {
					names = append(names, cs.Name)
				}
			}
			return p, fmt.Errorf("tls_ciphers: unknown cipher suite %q (Go's names: %s)", name, strings.Join(names, ", "))
		}
		if tls13Only(cs) {
			return p, fmt.Errorf("tls_ciphers: %s is a TLS 1.3 suite, which cannot be chosen (TLS 1.3 always offers all of its own)", name)
		}
		p.ciphers = append(p.ciphers, cs.ID)
	}
	return p, nil
}

func tls13Only(cs *tls.CipherSuite) bool {
	for _, v := range cs.SupportedVersions {
		if v != tls.VersionTLS13 {
			return false
		}
	}
	return true
}

// tlsFiles is what a set of certificate, key and CA files holds.
type tlsFiles struct {
	cert   *tls.Certificate // nil without tls_cert
	pool   *x509.CertPool   // nil without tls_ca
	server *tls.Config      // the config a server hands to each handshake
}

func loadTLSFiles(certFile, keyFile, caFile string) (*tlsFiles, error) {
	f := &tlsFiles{}
	if certFile != "" {
		certPEM, err := os.ReadFile(certFile)
		if err != nil {
			return nil, fmt.Errorf("tls_cert: %w", err)
		}
		keyPEM, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("tls_key: %w", err)
		}
		c, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("tls_cert %s, tls_key %s: %w", certFile, keyFile, err)
		}
		f.cert = &c
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		f.pool = x509.NewCertPool()
		if !f.pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("tls_ca %s: no PEM certificate in the file", caFile)
		}
	}
	return f, nil
}

// liveTLS is a config built by ServerConfig or ClientConfig: its files and
// what was last read from them.
type liveTLS struct {
	certFile, keyFile, caFile string
	params                    tlsParams
	cur                       atomic.Pointer[tlsFiles]
}

func (l *liveTLS) reload() error {
	f, err := loadTLSFiles(l.certFile, l.keyFile, l.caFile)
	if err != nil {
		return err
	}
	if f.cert != nil {
		f.server = l.params.apply(&tls.Config{Certificates: []tls.Certificate{*f.cert}})
		if f.pool != nil {
			f.server.ClientCAs = f.pool
			f.server.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	l.cur.Store(f)
	return nil
}

// tlsLives holds the configs ReloadTLS refreshes, until ReleaseTLS.
var tlsLives = struct {
	sync.Mutex
	m map[*tls.Config]*liveTLS
}{m: map[*tls.Config]*liveTLS{}}

func register(cfg *tls.Config, l *liveTLS) {
	tlsLives.Lock()
	tlsLives.m[cfg] = l
	tlsLives.Unlock()
}
