package registry

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// testCA is a certificate authority made for a test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

var testSerial int64 = 1

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	testSerial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(testSerial), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns the PEM certificate and key of a leaf named cn, valid for
// 127.0.0.1 and localhost, for servers and clients.
func (ca *testCA) issue(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	testSerial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(testSerial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pki is a CA, a server and a client certificate, written to files.
type pki struct {
	ca                                       *testCA
	caFile, srvCert, srvKey, cliCert, cliKey string
}

func newPKI(t *testing.T, dir, name string) pki {
	ca := newTestCA(t, name+" CA")
	sc, sk := ca.issue(t, name+" server")
	cc, ck := ca.issue(t, name+" client")
	return pki{ca: ca, caFile: writeFile(t, dir, name+"-ca.pem", ca.pem),
		srvCert: writeFile(t, dir, name+"-srv.pem", sc), srvKey: writeFile(t, dir, name+"-srv.key", sk),
		cliCert: writeFile(t, dir, name+"-cli.pem", cc), cliKey: writeFile(t, dir, name+"-cli.key", ck)}
}

// tlsServer accepts on 127.0.0.1, handshakes, and writes the peer's
// certificate CN (or "-") and a newline on each connection; handshake
// errors go to errs.
func tlsServer(t *testing.T, cfg *tls.Config) (addr string, errs chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	errs = make(chan error, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := tls.Server(c, cfg)
				tc.SetDeadline(time.Now().Add(5 * time.Second))
				if err := tc.Handshake(); err != nil {
					errs <- TLSHandshakeError(c.RemoteAddr().String(), err)
					return
				}
				cn := "-"
				if pc := tc.ConnectionState().PeerCertificates; len(pc) > 0 {
					cn = pc[0].Subject.CommonName
				}
				io.WriteString(tc, cn+"\n")
				io.Copy(io.Discard, tc)
			}()
		}
	}()
	return ln.Addr().String(), errs
}

// dial handshakes with addr and returns the connection and the line the
// server wrote.
func dial(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, string, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, cfg)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, "", err
	}
	b := make([]byte, 64)
	n, err := io.ReadAtLeast(tc, b, 1)
	if err != nil {
		c.Close()
		return nil, "", err
	}
	t.Cleanup(func() { tc.Close() })
	return tc, strings.TrimSpace(string(b[:n])), nil
}

func serverConfig(t *testing.T, s TLSServer) *tls.Config {
	t.Helper()
	cfg, err := s.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ReleaseTLS(cfg) })
	return cfg
}

func clientConfig(t *testing.T, c TLSClient, addr string) *tls.Config {
	t.Helper()
	cfg, err := c.ClientConfig(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ReleaseTLS(cfg) })
	return cfg
}

// TestTLSTOMLEmbedded: the keys of an anonymously embedded TLSServer or
// TLSClient are read from the plugin's own table and count as decoded.
func TestTLSTOMLEmbedded(t *testing.T) {
	type input struct {
		Listen string `toml:"listen"`
		TLSServer
	}
	type output struct {
		Address string `toml:"address"`
		TLSClient
	}
	var in input
	md, err := toml.Decode(`listen = ":2004"
tls_cert = "a.crt"
tls_key = "a.key"
tls_ca = "ca.crt"
tls_min_version = "1.2"
tls_max_version = "1.3"
tls_ciphers = ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]
`, &in)
	if err != nil {
		t.Fatal(err)
	}
	want := TLSServer{TLSCert: "a.crt", TLSKey: "a.key", TLSCA: "ca.crt", TLSMinVersion: "1.2", TLSMaxVersion: "1.3",
		TLSCiphers: []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}}
	if in.Listen != ":2004" || in.TLSServer.TLSCert != want.TLSCert || in.TLSCA != want.TLSCA ||
		in.TLSMaxVersion != "1.3" || len(in.TLSCiphers) != 1 {
		t.Errorf("decoded %+v", in)
	}
	if u := md.Undecoded(); len(u) != 0 {
		t.Errorf("undecoded keys %v", u)
	}
	var out output
	md, err = toml.Decode(`address = "a:2003"
tls_enable = true
tls_cert = "c.crt"
tls_key = "c.key"
tls_ca = "ca.crt"
tls_server_name = "carbon"
insecure_skip_verify = false
tls_min_version = "1.3"
tls_max_version = "1.3"
tls_ciphers = []
tls_sever_name = "typo"
`, &out)
	if err != nil {
		t.Fatal(err)
	}
	if out.Address != "a:2003" || !out.TLSEnable || out.TLSCert != "c.crt" || out.TLSKey != "c.key" ||
		out.TLSCA != "ca.crt" || out.TLSServerName != "carbon" || out.TLSMinVersion != "1.3" {
		t.Errorf("decoded %+v", out)
	}
	if u := md.Undecoded(); len(u) != 1 || u[0].String() != "tls_sever_name" {
		t.Errorf("undecoded keys %v, want the typo only", u)
	}
}

func TestTLSCheck(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t, dir, "a")
	garbage := writeFile(t, dir, "garbage.pem", []byte("not a certificate\n"))
	missing := filepath.Join(dir, "missing.pem")
	servers := []struct {
		name string
		s    TLSServer
		want string // "" for nil
	}{
		{"off", TLSServer{}, ""},
		{"ok", TLSServer{TLSCert: p.srvCert, TLSKey: p.srvKey, TLSCA: p.caFile, TLSMinVersion: "1.2", TLSMaxVersion: "1.3",
			TLSCiphers: []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}}, ""},
		{"cert without key", TLSServer{TLSCert: p.srvCert}, "tls_cert is set without tls_key"},
		{"key without cert", TLSServer{TLSKey: p.srvKey}, "tls_key is set but tls_cert is not"},
		{"ca without cert", TLSServer{TLSCA: p.caFile}, "tls_ca is set but tls_cert is not"},
		{"unknown version", TLSServer{TLSCert: p.srvCert, TLSKey: p.srvKey, TLSMinVersion: "1.4"}, `tls_min_version "1.4": unknown TLS version`},
		{"version spelled TLS12", TLSServer{TLSCert: p.srvCert, TLSKey: p.srvKey, TLSMaxVersion: "TLS12"}, `tls_max_version "TLS12"`},
		{"min above max", TLSServer{TLSCert: p.srvCert, TLSKey: p.srvKey, TLSMinVersion: "1.3", TLSMaxVersion: "1.2"}, "tls_min_version \"1.3\" is above tls_max_version \"1.2\""},
		{"unknown cipher", TLSServer{TLSCert: p.srvCert, TLSKey: p.srvKey, TLSCiphers: []string{"ECDHE-RSA-AES128-GCM-SHA256"}}, `tls_ciphers: unknown cipher suite "ECDHE-RSA-AES128-GCM-SHA256"`},
		{"tls13 cipher", TLSServer{TLSCert: p.srvCert, TLSKey: p.srvKey, TLSCiphers: []string{"TLS_AES_128_GCM_SHA256"}}, "TLS_AES_128_GCM_SHA256 is a TLS 1.3 suite"},
		{"ciphers with 1.3 only", TLSServer{TLSCert: p.srvCert, TLSKey: p.srvKey, TLSMinVersion: "1.3", TLSCiphers: []string{"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"}}, "tls_ciphers is set with tls_min_version \"1.3\""},
		{"missing cert", TLSServer{TLSCert: missing, TLSKey: p.srvKey}, "tls_cert: open " + missing},
		{"missing key", TLSServer{TLSCert: p.srvCert, TLSKey: missing}, "tls_key: open " + missing},
		{"garbage cert", TLSServer{TLSCert: garbage, TLSKey: p.srvKey}, "tls_cert " + garbage + ", tls_key " + p.srvKey},
		{"key of another cert", TLSServer{TLSCert: p.srvCert, TLSKey: p.cliKey}, "private key does not match public key"},
		{"missing ca", TLSServer{TLSCert: p.srvCert, TLSKey: p.srvKey, TLSCA: missing}, "tls_ca: open " + missing},
		{"garbage ca", TLSServer{TLSCert: p.srvCert, TLSKey: p.srvKey, TLSCA: garbage}, "tls_ca " + garbage + ": no PEM certificate"},
	}
	for _, c := range servers {
		t.Run("server/"+c.name, func(t *testing.T) { checkErr(t, c.s.Check(), c.want) })
	}
	clients := []struct {
		name string
		c    TLSClient
		want string
	}{
		{"off", TLSClient{}, ""},
		{"enable only", TLSClient{TLSEnable: true}, ""},
		{"ca only", TLSClient{TLSCA: p.caFile}, ""},
		{"mutual", TLSClient{TLSCert: p.cliCert, TLSKey: p.cliKey, TLSCA: p.caFile, TLSServerName: "x"}, ""},
		{"cert without key", TLSClient{TLSCert: p.cliCert}, "tls_cert is set without tls_key"},
		{"key without cert", TLSClient{TLSKey: p.cliKey}, "tls_key is set without tls_cert"},
		{"server name without enable", TLSClient{TLSServerName: "x"}, "tls_server_name is set but TLS is off"},
		{"insecure without enable", TLSClient{InsecureSkipVerify: true}, "insecure_skip_verify is set but TLS is off"},
		{"version without enable", TLSClient{TLSMinVersion: "1.2"}, "tls_min_version is set but TLS is off"},
		{"insecure with ca", TLSClient{TLSCA: p.caFile, InsecureSkipVerify: true}, "tls_ca and insecure_skip_verify are both set"},
		{"bad version", TLSClient{TLSEnable: true, TLSMaxVersion: "1"}, `tls_max_version "1"`},
		{"unreadable ca", TLSClient{TLSCA: missing}, "tls_ca: open " + missing},
	}
	for _, c := range clients {
		t.Run("client/"+c.name, func(t *testing.T) { checkErr(t, c.c.Check(), c.want) })
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("error %v", err)
	case want != "" && err == nil:
		t.Errorf("no error, want %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error %q, want it to contain %q", err, want)
	}
}

func TestTLSWarning(t *testing.T) {
	if w := (&TLSClient{TLSEnable: true}).Warning(); w != "" {
		t.Errorf("warning %q", w)
	}
	if w := (&TLSClient{TLSEnable: true, InsecureSkipVerify: true}).Warning(); !strings.Contains(w, "insecure_skip_verify") {
		t.Errorf("warning %q", w)
	}
}

func TestTLSOff(t *testing.T) {
	if cfg, err := (&TLSServer{}).ServerConfig(); cfg != nil || err != nil {
		t.Errorf("server %v %v", cfg, err)
	}
	if cfg, err := (&TLSClient{}).ClientConfig("a:1"); cfg != nil || err != nil {
		t.Errorf("client %v %v", cfg, err)
	}
}

func TestTLSMutual(t *testing.T) {
	dir := t.TempDir()
	a := newPKI(t, dir, "a")
	b := newPKI(t, dir, "b")
	addr, errs := tlsServer(t, serverConfig(t, TLSServer{TLSCert: a.srvCert, TLSKey: a.srvKey, TLSCA: a.caFile}))

	t.Run("accepted", func(t *testing.T) {
		_, cn, err := dial(t, addr, clientConfig(t, TLSClient{TLSCert: a.cliCert, TLSKey: a.cliKey, TLSCA: a.caFile}, addr))
		if err != nil || cn != "a client" {
			t.Fatalf("got %q, %v; want the server to see \"a client\"", cn, err)
		}
	})
	t.Run("client certificate of another CA", func(t *testing.T) {
		_, _, err := dial(t, addr, clientConfig(t, TLSClient{TLSCert: b.cliCert, TLSKey: b.cliKey, TLSCA: a.caFile}, addr))
		if err == nil {
			t.Fatal("handshake succeeded")
		}
		e := <-errs
		t.Log("server:", e)
		t.Log("client:", TLSHandshakeError(addr, err))
		var ua x509.UnknownAuthorityError
		if !errors.As(e, &ua) || !strings.Contains(e.Error(), "tls handshake with 127.0.0.1:") ||
			!strings.Contains(e.Error(), `certificate signed by unknown authority (certificate "CN=b client" issued by "CN=b CA")`) {
			t.Errorf("server error %q", e)
		}
		if ce := TLSHandshakeError(addr, err).Error(); !strings.Contains(ce, "the peer refused the handshake") {
			t.Errorf("client error %q", ce)
		}
	})
	t.Run("no client certificate", func(t *testing.T) {
		_, _, err := dial(t, addr, clientConfig(t, TLSClient{TLSCA: a.caFile}, addr))
		if err == nil {
			t.Fatal("handshake succeeded")
		}
		if e := <-errs; !strings.Contains(e.Error(), "didn't provide a certificate") {
			t.Errorf("server error %q", e)
		}
	})
	t.Run("server of another CA", func(t *testing.T) {
		_, _, err := dial(t, addr, clientConfig(t, TLSClient{TLSCert: a.cliCert, TLSKey: a.cliKey, TLSCA: b.caFile}, addr))
		<-errs
		e := TLSHandshakeError(addr, err)
		if e == nil || !strings.Contains(e.Error(), `certificate signed by unknown authority (certificate "CN=a server"`) {
			t.Errorf("client error %v", e)
		}
	})
	t.Run("server name", func(t *testing.T) {
		_, _, err := dial(t, addr, clientConfig(t, TLSClient{TLSCert: a.cliCert, TLSKey: a.cliKey, TLSCA: a.caFile, TLSServerName: "carbon.example"}, addr))
		<-errs
		var he x509.HostnameError
		if !errors.As(err, &he) || !strings.Contains(TLSHandshakeError(addr, err).Error(), "not carbon.example") {
			t.Errorf("client error %v", TLSHandshakeError(addr, err))
		}
	})
	t.Run("system roots", func(t *testing.T) {
		_, _, err := dial(t, addr, clientConfig(t, TLSClient{TLSEnable: true}, addr))
		<-errs
		if err == nil {
			t.Error("a server signed by a test CA verified against the system roots")
		}
	})
	t.Run("insecure", func(t *testing.T) {
		_, _, err := dial(t, addr, clientConfig(t, TLSClient{TLSCert: a.cliCert, TLSKey: a.cliKey, InsecureSkipVerify: true}, addr))
		if err != nil {
			t.Error(err)
		}
	})
	t.Run("plaintext peer", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, "a.b.c 1 1700000000\n")
		defer c.Close()
		if e := <-errs; !strings.Contains(e.Error(), "the peer does not speak TLS") {
			t.Errorf("server error %q", e)
		}
	})
}

func TestTLSReload(t *testing.T) {
	dir := t.TempDir()
	a := newPKI(t, dir, "a")
	b := newPKI(t, dir, "b")
	// the server's files, rewritten below
	cert := writeFile(t, dir, "server.pem", mustRead(t, a.srvCert))
	key := writeFile(t, dir, "server.key", mustRead(t, a.srvKey))
	ca := writeFile(t, dir, "clients.pem", mustRead(t, a.caFile))
	addr, _ := tlsServer(t, serverConfig(t, TLSServer{TLSCert: cert, TLSKey: key, TLSCA: ca}))
	// the client trusts a's CA, from a file rewritten below
	roots := writeFile(t, dir, "roots.pem", mustRead(t, a.caFile))
	cli := clientConfig(t, TLSClient{TLSCert: a.cliCert, TLSKey: a.cliKey, TLSCA: roots}, addr)

	old, cn, err := dial(t, addr, cli)
	if err != nil || cn != "a client" {
		t.Fatalf("got %q, %v", cn, err)
	}
	if got := old.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "a server" {
		t.Fatalf("served %q", got)
	}

	// The server moves to b's certificate and keeps accepting a's clients.
	writeFile(t, dir, "server.pem", mustRead(t, b.srvCert))
	writeFile(t, dir, "server.key", mustRead(t, b.srvKey))
	if errs := ReloadTLS(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if _, _, err := dial(t, addr, cli); err == nil {
		t.Fatal("the client accepted b's server before its roots were reloaded")
	}
	writeFile(t, dir, "roots.pem", mustRead(t, b.caFile))
	if errs := ReloadTLS(); len(errs) != 0 {
		t.Fatal(errs)
	}
	c2, cn, err := dial(t, addr, cli)
	if err != nil || cn != "a client" {
		t.Fatalf("after reload: %q, %v", cn, err)
	}
	if got := c2.ConnectionState().PeerCertificates[0].Subject.CommonName; got != "b server" {
		t.Errorf("served %q after the reload, want b server", got)
	}
	// the connection made before the reload still works
	if _, err := io.WriteString(old, "still here\n"); err != nil {
		t.Errorf("old connection: %v", err)
	}

	// A broken file: the error names it, the server keeps b's certificate.
	writeFile(t, dir, "server.pem", []byte("garbage"))
	errs := ReloadTLS()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "tls_cert "+cert) {
		t.Fatalf("reload errors %v, want one naming %s", errs, cert)
	}
	c3, _, err := dial(t, addr, cli)
	if err != nil || c3.ConnectionState().PeerCertificates[0].Subject.CommonName != "b server" {
		t.Fatalf("after a failed reload: %v", err)
	}
	os.Remove(ca)
	if errs := ReloadTLS(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "tls_cert "+cert) {
		// the cert is read first: still the one error
		t.Fatalf("reload errors %v", errs)
	}
	writeFile(t, dir, "server.pem", mustRead(t, b.srvCert))
	if errs := ReloadTLS(); len(errs) != 1 || !strings.Contains(errs[0].Error(), "tls_ca: open "+ca) {
		t.Fatalf("reload errors %v, want one naming %s", errs, ca)
	}

	// The client moves to b's client certificate: a's CA refuses it.
	writeFile(t, dir, "clients.pem", mustRead(t, a.caFile))
	if errs := ReloadTLS(); len(errs) != 0 {
		t.Fatal(errs)
	}
	cli2 := clientConfig(t, TLSClient{TLSCert: writeFile(t, dir, "client.pem", mustRead(t, a.cliCert)),
		TLSKey: writeFile(t, dir, "client.key", mustRead(t, a.cliKey)), TLSCA: roots}, addr)
	if _, _, err := dial(t, addr, cli2); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "client.pem", mustRead(t, b.cliCert))
	writeFile(t, dir, "client.key", mustRead(t, b.cliKey))
	if errs := ReloadTLS(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if _, _, err := dial(t, addr, cli2); err == nil {
		t.Fatal("b's client certificate accepted by a's CA")
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTLSRelease(t *testing.T) {
	dir := t.TempDir()
	a := newPKI(t, dir, "a")
	cfg, err := (&TLSServer{TLSCert: a.srvCert, TLSKey: a.srvKey}).ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	live := func() bool {
		tlsLives.Lock()
		defer tlsLives.Unlock()
		_, ok := tlsLives.m[cfg]
		return ok
	}
	if !live() {
		t.Fatal("not registered")
	}
	ReleaseTLS(cfg)
	ReleaseTLS(cfg)
	ReleaseTLS(nil)
	if live() {
		t.Fatal("still registered after ReleaseTLS")
	}
	os.Remove(a.srvCert)
	for _, e := range ReloadTLS() {
		if strings.Contains(e.Error(), a.srvCert) {
			t.Errorf("a released config was reloaded: %v", e)
		}
	}
}

func TestTLSVersionsAndCiphers(t *testing.T) {
	dir := t.TempDir()
	a := newPKI(t, dir, "a")
	const (
		aes    = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
		chacha = "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
	)
	cases := []struct {
		name         string
		srv          TLSServer
		cli          TLSClient
		ok           bool
		version      uint16
		cipher       uint16
		serverReason string
	}{
		{"default is 1.3", TLSServer{}, TLSClient{}, true, tls.VersionTLS13, 0, ""},
		{"server max 1.2", TLSServer{TLSMaxVersion: "1.2"}, TLSClient{}, true, tls.VersionTLS12, 0, ""},
		{"server max 1.2, client min 1.3", TLSServer{TLSMaxVersion: "1.2"}, TLSClient{TLSMinVersion: "1.3"}, false, 0, 0, "unsupported versions"},
		{"server min 1.3, client max 1.2", TLSServer{TLSMinVersion: "1.3"}, TLSClient{TLSMaxVersion: "1.2"}, false, 0, 0, "unsupported versions"},
		{"client below Go's default minimum", TLSServer{}, TLSClient{TLSMinVersion: "1.1", TLSMaxVersion: "1.1"}, false, 0, 0, "unsupported versions"},
		{"cipher chosen", TLSServer{TLSMaxVersion: "1.2", TLSCiphers: []string{chacha}}, TLSClient{}, true, tls.VersionTLS12, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, ""},
		{"ciphers disjoint", TLSServer{TLSMaxVersion: "1.2", TLSCiphers: []string{aes}}, TLSClient{TLSCiphers: []string{chacha}}, false, 0, 0, "no cipher suite"},
		{"ciphers do not bind 1.3", TLSServer{TLSCiphers: []string{aes}}, TLSClient{TLSCiphers: []string{chacha}}, true, tls.VersionTLS13, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.srv.TLSCert, c.srv.TLSKey = a.srvCert, a.srvKey
			c.cli.TLSCA = a.caFile
			addr, errs := tlsServer(t, serverConfig(t, c.srv))
			conn, _, err := dial(t, addr, clientConfig(t, c.cli, addr))
			if !c.ok {
				if err == nil {
					t.Fatalf("handshake succeeded: version %x cipher %s", conn.ConnectionState().Version,
						tls.CipherSuiteName(conn.ConnectionState().CipherSuite))
				}
				if e := <-errs; !strings.Contains(e.Error(), c.serverReason) {
					t.Errorf("server error %q, want %q", e, c.serverReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cs := conn.ConnectionState()
			if cs.Version != c.version || (c.cipher != 0 && cs.CipherSuite != c.cipher) {
				t.Errorf("version %x cipher %s", cs.Version, tls.CipherSuiteName(cs.CipherSuite))
			}
		})
	}
}
