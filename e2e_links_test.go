package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/metricsrouter/router/internal/crelaytest"
	"github.com/metricsrouter/router/plugins/plugintest"
)

// pki is a test CA and certificates it signed, as PEM files in a directory.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	CA     string // the CA certificate
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	p := &pki{dir: t.TempDir(), caCert: c, caKey: key}
	p.CA = p.write(t, name+"-ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return p
}

func (p *pki) write(t *testing.T, name string, data []byte) string {
	t.Helper()
	f := filepath.Join(p.dir, name)
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// leaf issues a certificate for 127.0.0.1 (server and client use) and
// returns the files of its certificate, its key, and both in one PEM (as
// carbon-c-relay's "ssl <pemcert>" reads them).
func (p *pki) leaf(t *testing.T, name string) (cert, key, both string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &k.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cp := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kp := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	return p.write(t, name+".crt", cp), p.write(t, name+".key", kp), p.write(t, name+".pem", append(cp, kp...))
}

// linkCase is one kind of relay-to-relay link.
type linkCase struct {
	name      string
	transport string // "plain" or a compressed transport
	tls       bool
	// why carbon-c-relay 3.7.3 loses lines of this link as a receiver
	// (toBroken) or as a sender (fromBroken): the subtest is skipped
	// unless CRELAY_STRICT=1 (docs/graphite-links.md)
	toBroken, fromBroken string
}

const (
	lz4In     = "carbon-c-relay 3.7.3's lz4 receiver (dispatcher.c lzreadbuf) reports an input buffer overflow and drops the connection's data"
	snappyIn  = "carbon-c-relay 3.7.3's snappy receiver (dispatcher.c snappyread) needs each read() to hold exactly one block, and after a block moves on by its uncompressed length"
	snappyOut = "carbon-c-relay 3.7.3's snappy sender (server.c snappyflush) compresses a full batch into a buffer too small for it and drops the connection"
)

var linkCases = []linkCase{
	{"gzip", "gzip", false, "", ""},
	{"lz4", "lz4", false, lz4In, ""},
	{"snappy", "snappy", false, snappyIn, snappyOut},
	{"ssl", "plain", true, "", ""},
	{"gzip+ssl", "gzip", true, "", ""},
	{"lz4+ssl", "lz4", true, lz4In, ""},
	{"snappy+ssl", "snappy", true, snappyIn, snappyOut},
}

// skipBroken skips a subtest carbon-c-relay itself fails, unless
// CRELAY_STRICT is set.
func skipBroken(t *testing.T, why string) {
	if why != "" && os.Getenv("CRELAY_STRICT") == "" {
		t.Skip(why + " (CRELAY_STRICT=1 runs it anyway)")
	}
}

// routerTransport is the router's transport key for c.
func (c linkCase) routerTransport() string {
	if c.transport == "plain" {
		return "none"
	}
	return c.transport
}

// checkExact waits until sink has every line of lines, and checks that it
// got each exactly once and nothing else.
func checkExact(t *testing.T, what string, sink *plugintest.LineSink, lines []string, logs func() string) {
	t.Helper()
	if !sink.WaitLen(len(lines), linkWait) {
		t.Fatalf("%s: sink got %d of %d lines\n%s", what, sink.Len(), len(lines), tail(logs(), 3000))
	}
	time.Sleep(300 * time.Millisecond)
	got, want := sink.Sorted(), sortedCopy(lines)
	if len(got) != len(want) {
		t.Fatalf("%s: sink got %d lines, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: line %d = %q, want %q", what, i, got[i], want[i])
		}
	}
}

// TestLinksWithCarbonCRelay: carbon-c-relay 3.7.3 (built with its
// transports) and the router link to each other with transport gzip, lz4,
// snappy, ssl, and each compressed transport inside ssl, both ways: 200,000
// lines from the router to carbon-c-relay, and 200,000 from carbon-c-relay
// to the router, each line exactly once. The links carbon-c-relay itself
// breaks are skipped, each with the reason (linkCase).
func TestLinksWithCarbonCRelay(t *testing.T) {
	skipShort(t)
	bin := crelaytest.FullBin(t)
	ca := newPKI(t, "links")
	cert, key, both := ca.leaf(t, "relay")
	const n = 200_000
	for _, c := range linkCases {
		t.Run(c.name+"/router-to-crelay", func(t *testing.T) {
			skipBroken(t, c.toBroken)
			sink := plugintest.NewLineSink(t)
			link := crelaytest.FreeAddr(t)
			ssl := ""
			if c.tls {
				ssl = " ssl " + both
			}
			relay := crelaytest.StartFull(t, bin, fmt.Sprintf(`
listen type linemode transport %s%s %s proto tcp;
cluster out forward %s;
match * send to out stop;
`, c.transport, ssl, link, sink.Addr), []string{link}, crelayQueue...)
			in := plugintest.FreeAddr(t)
			tlsKeys := ""
			if c.tls {
				tlsKeys = fmt.Sprintf("tls_ca = %q", ca.CA)
			}
			p := startRouter(t, fmt.Sprintf(`
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  address = %q
  transport = %q
  overflow = "block"
  %s
`, in, link, c.routerTransport(), tlsKeys))
			waitListen(t, in)
			lines := graphiteLines("r2c."+strings.ReplaceAll(c.name, "+", "_"), 0, n)
			sendLines(t, in, lines, 4)
			checkExact(t, "router -> carbon-c-relay", sink, lines, func() string { return p.out.String() + "\n" + relay.Log() })
		})
		t.Run(c.name+"/crelay-to-router", func(t *testing.T) {
			skipBroken(t, c.fromBroken)
			sink := plugintest.NewLineSink(t)
			link := plugintest.FreeAddr(t)
			tlsKeys := ""
			if c.tls {
				tlsKeys = fmt.Sprintf("tls_cert = %q\n  tls_key = %q", cert, key)
			}
			p := startRouter(t, fmt.Sprintf(`
[[inputs.graphite]]
  listen = %q
  transport = %q
  %s
[[outputs.graphite]]
  address = %q
  overflow = "block"
`, link, c.routerTransport(), tlsKeys, sink.Addr))
			waitListen(t, link)
			in := crelaytest.FreeAddr(t)
			ssl := ""
			if c.tls {
				ssl = " ssl"
			}
			relay := crelaytest.StartFull(t, bin, fmt.Sprintf(`
listen type linemode %s proto tcp;
cluster out forward %s transport %s%s;
match * send to out stop;
`, in, link, c.transport, ssl), []string{in}, append([]string{"-C", ca.CA}, crelayQueue...)...)
			lines := graphiteLines("c2r."+strings.ReplaceAll(c.name, "+", "_"), 0, n)
			sendLines(t, in, lines, 4)
			checkExact(t, "carbon-c-relay -> router", sink, lines, func() string { return relay.Log() + "\n" + p.out.String() })
		})
	}
}

// TestMutualTLSBetweenRouters: a relay router with a client certificate
// of the CA the receiving router names in tls_ca delivers every line over
// gzip inside mutual TLS; one whose certificate another CA signed is
// refused at the handshake, counted, and logged with its address.
func TestMutualTLSBetweenRouters(t *testing.T) {
	skipShort(t)
	ca, other := newPKI(t, "fleet"), newPKI(t, "other")
	srvCert, srvKey, _ := ca.leaf(t, "receiver")
	cliCert, cliKey, _ := ca.leaf(t, "sender")
	badCert, badKey, _ := other.leaf(t, "intruder")
	sink := plugintest.NewLineSink(t)
	link, stats := plugintest.FreeAddr(t), plugintest.FreeAddr(t)
	recv := startRouter(t, fmt.Sprintf(`
[agent]
  stats_addr = %q
[[inputs.graphite]]
  listen = %q
  transport = "gzip"
  tls_cert = %q
  tls_key = %q
  tls_ca = %q
[[outputs.graphite]]
  address = %q
`, stats, link, srvCert, srvKey, ca.CA, sink.Addr))
	waitListen(t, link)
	sender := func(cert, key string) (string, *routerProc) {
		in := plugintest.FreeAddr(t)
		p := startRouter(t, fmt.Sprintf(`
[[inputs.graphite]]
  listen = %q
[[outputs.graphite]]
  address = %q
  transport = "gzip"
  tls_ca = %q
  tls_cert = %q
  tls_key = %q
`, in, link, ca.CA, cert, key))
		waitListen(t, in)
		return in, p
	}
	good, _ := sender(cliCert, cliKey)
	lines := graphiteLines("mtls", 0, 50_000)
	sendLines(t, good, lines, 2)
	checkExact(t, "mutual TLS", sink, lines, recv.out.String)

	bad, badProc := sender(badCert, badKey)
	sendLines(t, bad, graphiteLines("intruder", 0, 10), 1)
	waitCounter(t, stats, series("tls_handshake_errors_total", "inputs.graphite", "graphite-1"), 1, 20*time.Second)
	if l := recv.out.String(); !strings.Contains(l, "TLS handshake failed") || !strings.Contains(l, `"remote":"127.0.0.1:`) {
		t.Errorf("no log line naming the refused peer:\n%s", tail(l, 2000))
	}
	time.Sleep(300 * time.Millisecond)
	if sink.Len() != len(lines) {
		t.Errorf("sink got %d lines, want %d: the intruder's lines went through", sink.Len(), len(lines))
	}
	_ = badProc
}

// crelayQueue are carbon-c-relay's options in these tests: a queue that
// holds every line of a test (its default, 25,000, drops the rest of a
// burst), and a write timeout of 5 s instead of 600 ms (a loaded machine).
var crelayQueue = []string{"-q", "1000000", "-T", "5000"}

// linkWait bounds the wait for a link's lines.
var linkWait = 30 * time.Second

// serverCert dials addr over TLS (trusting any certificate) and returns the
// common name of the certificate the server presents.
func serverCert(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName
}

// TestStatsDOverTLSAndCertificateReload: StatsD over TCP inside TLS, router
// to router (outputs.statsd -> inputs.statsd), every line delivered; the
// receiving router serves a new certificate after its files are replaced
// and SIGHUP, without a restart of the input, and the link goes on over a
// new connection with the new certificate.
func TestStatsDOverTLSAndCertificateReload(t *testing.T) {
	skipShort(t)
	ca := newPKI(t, "statsd")
	cert1, key1, _ := ca.leaf(t, "first")
	cert2, key2, _ := ca.leaf(t, "second")
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	install := func(c, k string) {
		for src, dst := range map[string]string{c: cert, k: key} {
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst+".tmp", b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dst+".tmp", dst); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(cert1, key1)
	sink := plugintest.NewLineSink(t)
	link := plugintest.FreeAddr(t)
	recvCfg := writeConfig(t, fmt.Sprintf(`
[[inputs.statsd]]
  listen = %q
  protocol = "tcp"
  tls_cert = %q
  tls_key = %q
[[outputs.graphite]]
  address = %q
`, link, cert, key, sink.Addr))
	recv := startBinary(t, recvCfg)
	waitListen(t, link)
	in := plugintest.FreeAddr(t)
	sendCfg := fmt.Sprintf(`
[[inputs.statsd]]
  listen = %q
  protocol = "tcp"
[[outputs.statsd]]
  address = %q
  protocol = "tcp"
  tls_ca = %q
`, in, link, ca.CA)
	send := startRouter(t, sendCfg)
	waitListen(t, in)
	if cn := serverCert(t, link); cn != "first" {
		t.Fatalf("served certificate %q, want first", cn)
	}
	batch := func(from, n int) []string {
		l := make([]string, n)
		for i := range l {
			l[i] = fmt.Sprintf("tls.g%d:%d|g", from+i, from+i)
		}
		return l
	}
	sendLines(t, in, batch(0, 20000), 2)
	if !sink.WaitLen(20000, 30*time.Second) {
		t.Fatalf("sink got %d of 20000\n%s", sink.Len(), tail(send.out.String(), 2000))
	}
	install(cert2, key2)
	recv.cmd.Process.Signal(syscall.SIGHUP)
	recv.waitLog(t, "configuration applied", 2)
	if cn := serverCert(t, link); cn != "second" {
		t.Fatalf("after SIGHUP the served certificate is %q, want second", cn)
	}
	if recv.count(`"inputs_kept":1`) != 1 {
		t.Errorf("the reload restarted the input: %v", recv.logEntries("configuration applied"))
	}
	sendLines(t, in, batch(20000, 20000), 2)
	if !sink.WaitLen(40000, 30*time.Second) {
		t.Fatalf("sink got %d of 40000", sink.Len())
	}
	time.Sleep(200 * time.Millisecond)
	if got := sink.Len(); got != 40000 {
		t.Fatalf("sink got %d lines, want 40000", got)
	}
}
