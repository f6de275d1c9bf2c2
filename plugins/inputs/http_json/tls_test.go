package http_json

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
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func selfSignedTemplate(t testing.TB) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	return &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "router test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
}

// tlsFiles writes a self-signed certificate for 127.0.0.1 and its key, and
// returns their paths and a pool that trusts the certificate.
func tlsFiles(t testing.TB) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := selfSignedTemplate(t)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certPath, keyPath = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// TestTLS: HTTPS with HTTP/2 for clients that offer it, HTTP/1.1 for those
// that don't, and nothing below TLS 1.2.
func TestTLS(t *testing.T) {
	certPath, keyPath, pool := tlsFiles(t)
	s := start(t, func(h *HTTPJSON) { h.TLSCert, h.TLSKey = certPath, keyPath })

	t.Run("HTTP/2", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		// concurrent streams on one connection, CORS included
		var wg sync.WaitGroup
		errs := make(chan string, 20)
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := client.Post(s.base+"/count/h2."+string(rune('a'+i)), jsonT, strings.NewReader(`{"value":2}`))
				if err != nil {
					errs <- err.Error()
					return
				}
				res.Body.Close()
				if res.ProtoMajor != 2 || res.StatusCode != 200 {
					errs <- res.Proto + " " + res.Status
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		got := do(t, client, s.base, req{method: "OPTIONS", path: "/batch", header: map[string]string{"Origin": "https://a.example", "Access-Control-Request-Method": "POST"}})
		if got.status != 204 || got.header.Get("Access-Control-Allow-Origin") != "https://a.example" {
			t.Errorf("preflight over h2: %d %v", got.status, got.header)
		}
	})
	t.Run("HTTP/1.1", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}
		defer tr.CloseIdleConnections()
		res, err := (&http.Client{Transport: tr}).Post(s.base+"/count/h1", jsonT, strings.NewReader(`{"value":1}`))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.ProtoMajor != 1 || res.StatusCode != 200 {
			t.Fatalf("%s %s", res.Proto, res.Status)
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}
		defer tr.CloseIdleConnections()
		if res, err := (&http.Client{Transport: tr}).Post(s.base+"/count/old", jsonT, nil); err == nil {
			res.Body.Close()
			t.Fatal("a TLS 1.1 client was served")
		}
	})
	t.Run("plain HTTP refused", func(t *testing.T) {
		res, err := http.Post("http://"+strings.TrimPrefix(s.base, "https://")+"/count/plain", "", nil)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				t.Fatal("plain HTTP was served on the TLS port")
			}
		}
	})
	l := s.cap.Raw()
	slices.Sort(l)
	if len(l) != 21 || l[0] != "h1:1|c" || l[1] != "h2.a:2|c" {
		t.Errorf("emitted %d: %q", len(l), l)
	}
}
