package linein_test

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/metricsrouter/router/plugins/internal/linein"
	"github.com/metricsrouter/router/plugins/plugintest"
	"github.com/metricsrouter/router/registry"
)

// TestMutualTLS: a client with a certificate of the configured CA is read;
// one with a certificate of another CA, and one without, are refused at the
// handshake, counted and logged with the peer's address; a TLS connection
// is handed to the next instance at a reload with its incomplete line, and
// read on there.
func TestMutualTLS(t *testing.T) {
	ca, other := plugintest.NewPKI(t, "ca"), plugintest.NewPKI(t, "other")
	srv := ca.Leaf(t, "server")
	srvCfg := &registry.TLSServer{TLSCert: srv.Cert, TLSKey: srv.Key, TLSCA: ca.CA}
	addr := plugintest.FreeAddr(t)
	env, m := plugintest.Env(t, "inputs.graphite")
	var logs plugintest.SyncBuffer
	env.Log = zerolog.New(&logs)
	capture := plugintest.NewCapture()
	cfg := linein.Config{Listen: addr, MaxLine: 1000, TLS: srvCfg}
	a := startInstance(cfg, env, capture, false)
	a.srv.Addr()

	dial := func(cert *tls.Certificate) (*tls.Conn, error) {
		c := &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1"}
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
	}{{"another CA's certificate", ptr(other.Leaf(t, "intruder").TLS)}, {"no certificate", nil}} {
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

	good := ca.Leaf(t, "client").TLS
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{good}})
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

func ptr[T any](v T) *T { return &v }
