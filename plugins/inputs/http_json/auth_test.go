package http_json

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// keys are generated once per test binary.
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
}

var keys = func() testKeys {
	var k testKeys
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
}()

// pemFile writes pub as a PEM "PUBLIC KEY" file and returns its path and bytes.
func pemFile(t testing.TB, pub crypto.PublicKey) (string, []byte) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	path := filepath.Join(t.TempDir(), "jwt.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, data
}

func sign(t testing.TB, m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsigned builds an "alg":"none" token by hand (the library refuses to).
func unsigned(alg string, claims string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"`+alg+`","typ":"JWT"}`)) + "." + enc.EncodeToString([]byte(claims)) + "."
}

const secret = "s3cret"

func in(d time.Duration) int64 { return time.Now().Add(d).Unix() }

// TestJWT: every accepted and refused token, with exact statuses and the
// original's bodies; refused requests emit nothing.
func TestJWT(t *testing.T) {
	rsaPath, rsaPEM := pemFile(t, &keys.rsa.PublicKey)
	ecPath, _ := pemFile(t, &keys.ec.PublicKey)
	edPath, _ := pemFile(t, keys.ed.Public())
	valid := jwt.MapClaims{"exp": in(time.Hour)}

	type tc struct {
		name   string
		token  string
		query  bool // send in ?token= instead of X-JWT-Token
		status int
		body   string
	}
	const bad = "Error parsing token\n"
	configs := []struct {
		name  string
		set   func(h *HTTPJSON)
		cases []tc
	}{
		{"secret", func(h *HTTPJSON) { h.JWTSecret = secret }, []tc{
			{"missing", "", false, 401, "Token not specified\n"},
			{"valid header", sign(t, jwt.SigningMethodHS256, []byte(secret), valid), false, 200, ""},
			{"valid query", sign(t, jwt.SigningMethodHS256, []byte(secret), valid), true, 200, ""},
			{"HS384", sign(t, jwt.SigningMethodHS384, []byte(secret), valid), false, 200, ""},
			{"HS512 without exp", sign(t, jwt.SigningMethodHS512, []byte(secret), jwt.MapClaims{"sub": "x"}), false, 200, ""},
			{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("other"), valid), false, 403, bad},
			{"expired", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"exp": in(-time.Hour)}), false, 403, bad},
			{"expired within leeway", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"exp": in(-10 * time.Second)}), false, 200, ""},
			{"nbf in the future", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"nbf": in(time.Hour)}), false, 403, bad},
			{"nbf within leeway", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"nbf": in(10 * time.Second)}), false, 200, ""},
			{"iat in the future", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"iat": in(time.Hour)}), false, 403, bad},
			{"iat within leeway", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"iat": in(10 * time.Second)}), false, 200, ""},
			{"iat in the past", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"iat": in(-time.Hour), "exp": in(time.Hour)}), false, 200, ""},
			{"bad iat type", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"iat": "now"}), false, 403, bad},
			{"alg none", unsigned("none", `{"exp":9999999999}`), false, 403, bad},
			{"alg None", unsigned("None", `{"exp":9999999999}`), false, 403, bad},
			{"alg none with signature", unsigned("none", `{}`) + "c2ln", false, 403, bad},
			{"RS256 token", sign(t, jwt.SigningMethodRS256, keys.rsa, valid), false, 403, bad},
			{"garbage", "not.a.token", false, 403, bad},
			{"bad exp type", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"exp": "tomorrow"}), false, 403, bad},
		}},
		{"rsa key", func(h *HTTPJSON) { h.JWTPublicKey = rsaPath }, []tc{
			{"missing", "", false, 401, "Token not specified\n"},
			{"RS256", sign(t, jwt.SigningMethodRS256, keys.rsa, valid), false, 200, ""},
			{"RS512", sign(t, jwt.SigningMethodRS512, keys.rsa, valid), false, 200, ""},
			{"PS256", sign(t, jwt.SigningMethodPS256, keys.rsa, valid), false, 200, ""},
			{"other RSA key", sign(t, jwt.SigningMethodRS256, keys.rsa2, valid), false, 403, bad},
			// RS/HS confusion: an HMAC token keyed with the public key's PEM
			{"HS256 keyed with the public key", sign(t, jwt.SigningMethodHS256, rsaPEM, valid), false, 403, bad},
			{"HS256 with the secret of another config", sign(t, jwt.SigningMethodHS256, []byte(secret), valid), false, 403, bad},
			{"ES256 token", sign(t, jwt.SigningMethodES256, keys.ec, valid), false, 403, bad},
			{"alg none", unsigned("none", `{}`), false, 403, bad},
			{"expired", sign(t, jwt.SigningMethodRS256, keys.rsa, jwt.MapClaims{"exp": in(-time.Hour)}), false, 403, bad},
			{"iat in the future", sign(t, jwt.SigningMethodRS256, keys.rsa, jwt.MapClaims{"iat": in(time.Hour)}), false, 403, bad},
		}},
		{"rsa key and secret", func(h *HTTPJSON) { h.JWTPublicKey = rsaPath; h.JWTSecret = secret }, []tc{
			{"RS256", sign(t, jwt.SigningMethodRS256, keys.rsa, valid), false, 200, ""},
			{"HS256 with the secret", sign(t, jwt.SigningMethodHS256, []byte(secret), valid), false, 200, ""},
			{"HS256 keyed with the public key", sign(t, jwt.SigningMethodHS256, rsaPEM, valid), false, 403, bad},
		}},
		{"ecdsa key", func(h *HTTPJSON) { h.JWTPublicKey = ecPath }, []tc{
			{"ES256", sign(t, jwt.SigningMethodES256, keys.ec, valid), false, 200, ""},
			{"RS256 token", sign(t, jwt.SigningMethodRS256, keys.rsa, valid), false, 403, bad},
		}},
		{"ed25519 key", func(h *HTTPJSON) { h.JWTPublicKey = edPath }, []tc{
			{"EdDSA", sign(t, jwt.SigningMethodEdDSA, keys.ed, valid), false, 200, ""},
			{"HS256", sign(t, jwt.SigningMethodHS256, []byte(secret), valid), false, 403, bad},
		}},
		{"audience and issuer", func(h *HTTPJSON) { h.JWTSecret = secret; h.JWTAudience = "metrics"; h.JWTIssuer = "auth.example" }, []tc{
			{"both match", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"aud": "metrics", "iss": "auth.example"}), false, 200, ""},
			{"aud list", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"aud": []string{"web", "metrics"}, "iss": "auth.example"}), false, 200, ""},
			{"bad aud", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"aud": "web", "iss": "auth.example"}), false, 403, bad},
			{"no aud", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"iss": "auth.example"}), false, 403, bad},
			{"bad iss", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"aud": "metrics", "iss": "evil.example"}), false, 403, bad},
			{"no iss", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"aud": "metrics"}), false, 403, bad},
		}},
	}
	for _, cfg := range configs {
		t.Run(cfg.name, func(t *testing.T) {
			s := start(t, cfg.set)
			want := 0
			for _, c := range cfg.cases {
				t.Run(c.name, func(t *testing.T) {
					r := req{path: "/count/k", ctype: jsonT, body: `{"value":2}`}
					if c.token != "" {
						if c.query {
							r.path += "?token=" + c.token
						} else {
							r.header = map[string]string{"X-JWT-Token": c.token}
						}
					}
					// twice: the second answer comes from the token cache
					for range 2 {
						got := do(t, nil, s.base, r)
						if got.status != c.status || got.body != c.body {
							t.Fatalf("status %d body %q, want %d %q", got.status, got.body, c.status, c.body)
						}
						if c.status == 200 {
							want++
						}
					}
				})
			}
			if got := s.cap.Len(); got != want {
				t.Errorf("emitted %d metrics, want %d", got, want)
			}
			// heartbeat and preflight need no token
			if got := do(t, nil, s.base, req{method: "GET", path: "/heartbeat"}); got.status != 200 {
				t.Errorf("heartbeat: %d", got.status)
			}
			if got := do(t, nil, s.base, req{method: "OPTIONS", path: "/count/k", header: map[string]string{"Origin": "http://a.example", "Access-Control-Request-Method": "POST"}}); got.status != 204 {
				t.Errorf("preflight: %d", got.status)
			}
		})
	}
}

// TestJWTHeaderWins: the header is used when present, as in the original.
func TestJWTHeaderWins(t *testing.T) {
	s := start(t, func(h *HTTPJSON) { h.JWTSecret = secret })
	good := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{})
	got := do(t, nil, s.base, req{path: "/count/k?token=" + good, header: map[string]string{"X-JWT-Token": "bad"}})
	if got.status != 403 {
		t.Fatalf("status %d, want 403", got.status)
	}
	if s.m.Get("auth_failures_total") != 1 {
		t.Errorf("auth_failures_total = %d", s.m.Get("auth_failures_total"))
	}
}

// TestJWTPrefixClaim: a token may only write keys under its prefix claim,
// in single requests and in every entry of a batch.
func TestJWTPrefixClaim(t *testing.T) {
	s := start(t, func(h *HTTPJSON) { h.JWTSecret = secret; h.JWTPrefixClaim = "prefix"; h.MetricPrefix = "fe" })
	web := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"prefix": "web."})
	none := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"sub": "x"})
	num := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"prefix": 5})
	hdr := func(tok string) map[string]string { return map[string]string{"X-JWT-Token": tok} }
	runCases(t, s, []routeCase{
		{"inside", req{path: "/count/web.clicks", header: hdr(web)}, 200, []string{"fe.web.clicks:1|c"}, "", ""},
		{"outside", req{path: "/count/api.clicks", header: hdr(web)}, 403, nil, "key", ""},
		{"prefix without dot", req{path: "/count/webx", header: hdr(web)}, 403, nil, "key", ""},
		{"batch with one outside", req{path: "/batch", ctype: jsonT, header: hdr(web), body: `[{"type":"count","key":"web.a"},{"type":"count","key":"api.b"}]`}, 403, nil, "key", ""},
		{"batch inside", req{path: "/batch", ctype: jsonT, header: hdr(web), body: `[{"type":"count","key":"web.a"},{"type":"set","key":"web.b","value":"u"}]`}, 200, []string{"fe.web.a:1|c", "fe.web.b:u|s"}, "", ""},
		{"no claim", req{path: "/count/web.clicks", header: hdr(none)}, 403, nil, "token", ""},
		{"claim not a string", req{path: "/count/web.clicks", header: hdr(num)}, 403, nil, "token", ""},
	})
}

// TestTokenCacheWindow: a cached token is still refused once expired, or
// before its nbf or iat (each with the 30 s leeway).
func TestTokenCacheWindow(t *testing.T) {
	a, err := newAuthenticator(authConfig{secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	a.now = func() time.Time { return t0 }
	tok := sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"exp": t0.Add(time.Minute).Unix(), "nbf": t0.Add(-time.Minute).Unix()})
	r := httptest.NewRequest("POST", "/count/k", nil)
	r.Header.Set("X-JWT-Token", tok)
	steps := []struct {
		at   time.Duration
		want int
	}{
		{0, 0},                // verified, cached
		{80 * time.Second, 0}, // expired 20 s ago: within leeway
		{100 * time.Second, authInvalid},
		{-80 * time.Second, 0}, // nbf 20 s ahead: within leeway
		{-100 * time.Second, authInvalid},
	}
	for _, s := range steps {
		a.now = func() time.Time { return t0.Add(s.at) }
		if _, got := a.check(r); got != s.want {
			t.Errorf("at %v: %d, want %d", s.at, got, s.want)
		}
	}
	// iat: a cached token is refused if the clock goes back before its
	// issue time by more than the leeway
	a.now = func() time.Time { return t0 }
	r.Header.Set("X-JWT-Token", sign(t, jwt.SigningMethodHS256, []byte(secret), jwt.MapClaims{"iat": t0.Unix()}))
	for _, s := range []struct {
		at   time.Duration
		want int
	}{{0, 0}, {-20 * time.Second, 0}, {-40 * time.Second, authInvalid}} {
		a.now = func() time.Time { return t0.Add(s.at) }
		if _, got := a.check(r); got != s.want {
			t.Errorf("iat, at %v: %d, want %d", s.at, got, s.want)
		}
	}
	if n := a.cache.len(); n != 2 {
		t.Errorf("cache holds %d tokens, want 2", n)
	}
}

// TestTokenCacheBound: the cache never holds more than maxCacheBytes.
func TestTokenCacheBound(t *testing.T) {
	var c tokenCache
	tok := string(make([]byte, 1000))
	for i := range 5000 {
		c.put(tok+string(rune('a'+i%26))+string(rune(i)), tokenEntry{})
		if c.bytes > maxCacheBytes {
			t.Fatalf("cache holds %d bytes", c.bytes)
		}
	}
}

// TestPublicKeyFormats: PKIX, PKCS#1 and certificate PEMs; others refused.
func TestPublicKeyFormats(t *testing.T) {
	der := x509.MarshalPKCS1PublicKey(&keys.rsa.PublicKey)
	if _, algs, err := parsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: der})); err != nil || !slices.Contains(algs, "PS512") {
		t.Errorf("PKCS#1: %v %v", algs, err)
	}
	tmpl := selfSignedTemplate(t)
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &keys.ec.PublicKey, keys.ec)
	if err != nil {
		t.Fatal(err)
	}
	if _, algs, err := parsePublicKey(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})); err != nil || !slices.Equal(algs, []string{"ES256"}) {
		t.Errorf("certificate: %v %v", algs, err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(keys.ec)
	for _, data := range [][]byte{[]byte("nothing"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})} {
		if _, _, err := parsePublicKey(data); err == nil {
			t.Errorf("accepted %.20q", data)
		}
	}
}
