package linein_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/internal/linein"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// testCA is a CA that signs leaf certificates for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: c, key: key, pool: pool}
}

// leaf returns a certificate for 127.0.0.1 signed by ca, for a server or a
// client.
func (ca *testCA) leaf(t *testing.T, client bool) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestMutualTLS: a client with a certificate of the configured CA is read;
// one with a certificate of another CA, and one without, are refused at the
// handshake, counted and logged with the peer's address; a TLS connection
// is handed to the next instance at a reload with its incomplete line, and
// read on there.
func TestMutualTLS(t *testing.T) {
	ca, other := newCA(t, "ca"), newCA(t, "other")
	dir := t.TempDir()
	srvCfg := &registry.TLSServer{TLSCert: dir + "/cert.pem", TLSKey: dir + "/key.pem", TLSCA: dir + "/ca.pem"}
	writePEM(t, srvCfg.TLSCert, srvCfg.TLSKey, ca.leaf(t, false))
	writeCA(t, srvCfg.TLSCA, ca.cert)
	addr := plugintest.FreeAddr(t)
	env, m := plugintest.Env(t, "inputs.graphite")
	var logs plugintest.SyncBuffer
	env.Log = zerolog.New(&logs)
	capture := plugintest.NewCapture()
	cfg := linein.Config{Listen: addr, MaxLine: 1000, TLS: srvCfg}
	a := startInstance(cfg, env, capture, false)
	a.srv.Addr()

	dial := func(cert *tls.Certificate) (*tls.Conn, error) {
		c := &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1"}
		if cert != nil {
			c.Certificates = []tls.Certificate{*cert}
		}
		conn, err := tls.Dial("tcp", addr, c)
		if err != nil {
			return nil, err
		}
		// TLS 1.3: the server's verdict on the client certificate comes
		// with the first read
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		_, err = conn.Write([]byte("probe 1 1\n"))
		if err == nil {
			var b [1]byte
			_, err = conn.Read(b[:])
		}
		return conn, err
	}
	for _, bad := range []struct {
		name string
		cert *tls.Certificate
	}{{"another CA's certificate", ptr(other.leaf(t, true))}, {"no certificate", nil}} {
		c, err := dial(bad.cert)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("%s: err = %v, want a certificate error", bad.name, err)
		}
		if c != nil {
			c.Close()
		}
	}
	waitCount(t, m, "tls_handshake_errors_total", 2)
	if l := logs.String(); !strings.Contains(l, "TLS handshake failed") || !strings.Contains(l, "127.0.0.1:") {
		t.Errorf("no log line naming the peer: %s", l)
	}

	good := ca.leaf(t, true)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{good}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("a 1 1\nb 2 2\nhalf.li")); err != nil {
		t.Fatal(err)
	}
	if !capture.WaitFor(2, wait) {
		t.Fatalf("got %q", capture.Raw())
	}
	b := startInstance(cfg, env, capture, false)
	b.srv.Addr()
	a.stop(t)
	waitCount(t, m, "connections_handed_over_total", 1)
	if _, err := c.Write([]byte("ne 3 3\nd 4 4\n")); err != nil {
		t.Fatal(err)
	}
	if !capture.WaitFor(4, wait) {
		t.Fatalf("got %q", capture.Raw())
	}
	c.Close()
	b.stop(t)
	if got, want := strings.Join(capture.Raw(), "|"), "a 1 1|b 2 2|half.line 3 3|d 4 4"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if n := m.Get("parse_errors_total"); n != 0 {
		t.Errorf("parse_errors_total = %d", n)
	}
}

// writePEM writes c's chain and key as PEM files.
func writePEM(t *testing.T, certFile, keyFile string, c tls.Certificate) {
	t.Helper()
	var chain []byte
	for _, der := range c.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeCA writes a CA certificate as a PEM file.
func writeCA(t *testing.T, file string, c *x509.Certificate) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }
