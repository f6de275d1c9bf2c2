package http_json

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token header (statsd-http-proxy's X-JWT-Token, in its canonical form for
// map lookups) and query parameter.
const (
	tokenHeader = "X-Jwt-Token"
	tokenQuery  = "token"
)

// Outcomes of authenticator.check other than success.
const (
	authMissing = 1 + iota // 401 "Token not specified"
	authInvalid            // 403 "Error parsing token"
	authNoGrant            // 403: jwt_prefix_claim is not a string claim of the token
)

type authConfig struct {
	secret, publicKey, audience, issuer, prefixClaim string
}

// authenticator verifies JWTs with a pinned list of algorithms: HS256/384/512
// with the secret, and the public key's own family (RS*/PS* for RSA, the
// curve's ES* for ECDSA, EdDSA for Ed25519). "none" is never accepted, and
// an HMAC token is never verified with the public key, so RS/HS confusion
// cannot happen.
type authenticator struct {
	parser      *jwt.Parser
	keyFunc     jwt.Keyfunc
	hmac        []byte
	pub         crypto.PublicKey
	prefixClaim string
	now         func() time.Time
	cache       tokenCache
}

// newAuthenticator returns nil when neither a secret nor a key is configured.
// It reads the public key file.
func newAuthenticator(c authConfig) (*authenticator, error) {
	if c.secret == "" && c.publicKey == "" {
		return nil, nil
	}
	a := &authenticator{prefixClaim: c.prefixClaim, now: time.Now}
	var methods []string
	if c.secret != "" {
		a.hmac = []byte(c.secret)
		methods = append(methods, "HS256", "HS384", "HS512")
	}
	if c.publicKey != "" {
		data, err := os.ReadFile(c.publicKey)
		if err != nil {
			return nil, fmt.Errorf("jwt_public_key: %w", err)
		}
		key, algs, err := parsePublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("jwt_public_key %s: %w", c.publicKey, err)
		}
		a.pub = key
		methods = append(methods, algs...)
	}
	opts := []jwt.ParserOption{jwt.WithValidMethods(methods), jwt.WithLeeway(jwtLeeway), jwt.WithIssuedAt(), jwt.WithTimeFunc(a.clock)}
	if c.audience != "" {
		opts = append(opts, jwt.WithAudience(c.audience))
	}
	if c.issuer != "" {
		opts = append(opts, jwt.WithIssuer(c.issuer))
	}
	a.parser = jwt.NewParser(opts...)
	a.keyFunc = a.key
	return a, nil
}

func (a *authenticator) clock() time.Time { return a.now() }

// parsePublicKey reads a PEM "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE"
// and returns the key with the algorithms it may verify.
func parsePublicKey(data []byte) (crypto.PublicKey, []string, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, nil, errors.New("no PEM block found")
	}
	var key crypto.PublicKey
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		return nil, nil, fmt.Errorf("PEM block %q: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
	}
	if err != nil {
		return nil, nil, err
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		return k, []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return k, []string{"ES256"}, nil
		case elliptic.P384():
			return k, []string{"ES384"}, nil
		case elliptic.P521():
			return k, []string{"ES512"}, nil
		}
		return nil, nil, errors.New("ECDSA key on an unsupported curve")
	case ed25519.PublicKey:
		return k, []string{"EdDSA"}, nil
	}
	return nil, nil, fmt.Errorf("unsupported key type %T", key)
}

// key picks the verification key by the token's algorithm family (the
// parser has already refused algorithms outside the pinned list).
func (a *authenticator) key(t *jwt.Token) (any, error) {
	switch t.Method.(type) {
	case *jwt.SigningMethodHMAC:
		if a.hmac != nil {
			return a.hmac, nil
		}
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS, *jwt.SigningMethodECDSA, *jwt.SigningMethodEd25519:
		if a.pub != nil {
			return a.pub, nil
		}
	}
	return nil, errors.New("unexpected signing method")
}

// check authenticates a request. It returns the key prefix the token grants
// (jwt_prefix_claim) and 0, or one of authMissing, authInvalid, authNoGrant.
func (a *authenticator) check(r *http.Request) (string, int) {
	var tok string
	if v := r.Header[tokenHeader]; len(v) > 0 {
		tok = v[0]
	}
	if tok == "" {
		tok = r.URL.Query().Get(tokenQuery)
	}
	if tok == "" {
		return "", authMissing
	}
	now := a.now()
	if e, ok := a.cache.get(tok); ok {
		if !e.validAt(now) {
			return "", authInvalid
		}
		return e.grant, e.fail
	}
	t, err := a.parser.Parse(tok, a.keyFunc)
	if err != nil || !t.Valid {
		return "", authInvalid
	}
	claims, _ := t.Claims.(jwt.MapClaims)
	e := tokenEntry{}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		e.exp = exp.Time
	}
	if nbf, err := claims.GetNotBefore(); err == nil && nbf != nil {
		e.nbf = nbf.Time
	}
	if iat, err := claims.GetIssuedAt(); err == nil && iat != nil {
		e.iat = iat.Time
	}
	if a.prefixClaim != "" {
		g, ok := claims[a.prefixClaim].(string)
		if !ok {
			e.fail = authNoGrant
		}
		e.grant = g
	}
	a.cache.put(tok, e)
	return e.grant, e.fail
}

// tokenEntry is what a verified token allows. Tokens are immutable and
// their signature covers every claim, so a verified token need not be
// verified again: only its time window is checked on each use.
type tokenEntry struct {
	exp, nbf, iat time.Time // zero = absent
	grant         string
	fail          int // authNoGrant, or 0
}

func (e *tokenEntry) validAt(now time.Time) bool {
	if !e.exp.IsZero() && now.After(e.exp.Add(jwtLeeway)) {
		return false
	}
	if !e.nbf.IsZero() && now.Add(jwtLeeway).Before(e.nbf) {
		return false
	}
	if !e.iat.IsZero() && now.Add(jwtLeeway).Before(e.iat) {
		return false
	}
	return true
}

// tokenCache remembers verified tokens (browsers send the same token with
// every request; RS/ES verification costs tens of microseconds). It holds at
// most maxCacheBytes of tokens and starts over when full. Reads take no lock.
type tokenCache struct {
	m     sync.Map // token -> tokenEntry
	mu    sync.Mutex
	bytes int
}

const maxCacheBytes = 1 << 20

func (c *tokenCache) get(tok string) (tokenEntry, bool) {
	v, ok := c.m.Load(tok)
	if !ok {
		return tokenEntry{}, false
	}
	return v.(tokenEntry), true
}

func (c *tokenCache) put(tok string, e tokenEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bytes+len(tok)+64 > maxCacheBytes {
		c.m.Clear()
		c.bytes = 0
	}
	if _, loaded := c.m.Swap(tok, e); !loaded {
		c.bytes += len(tok) + 64
	}
}

func (c *tokenCache) len() int {
	n := 0
	c.m.Range(func(_, _ any) bool { n++; return true })
	return n
}
