package identity

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Access-token claims checked on every request.
const (
	tokenIssuer   = "bitvaultd"
	tokenAudience = "bitvault-api"
)

// accessClaims is the payload of an access token (a JWT).
type accessClaims struct {
	Issuer    string `json:"iss"`
	Audience  string `json:"aud"`
	Subject   string `json:"sub"` // user id
	TenantID  string `json:"tid"`
	Role      Role   `json:"role"`
	SessionID string `json:"sid"`
	IssuedAt  int64  `json:"iat"`
	ExpiresAt int64  `json:"exp"`
}

// jwtHeader is the only header accepted: a token claiming any other algorithm ("none",
// RS256 with our key as a public key, ...) is refused.
var jwtHeader = b64url.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))

var b64url = base64.RawURLEncoding

// signer makes and checks HS256 access tokens.
type signer struct{ key []byte }

func (s signer) mac(signingInput string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(signingInput))
	return m.Sum(nil)
}

func (s signer) sign(c accessClaims) string {
	payload, _ := json.Marshal(c)
	input := jwtHeader + "." + b64url.EncodeToString(payload)
	return input + "." + b64url.EncodeToString(s.mac(input))
}

// verify checks the signature, issuer, audience and expiry, and returns the claims.
func (s signer) verify(token string, now time.Time) (accessClaims, error) {
	header, rest, ok1 := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || header != jwtHeader {
		return accessClaims{}, ErrUnauthenticated
	}
	got, err := b64url.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(header+"."+payload)) {
		return accessClaims{}, ErrUnauthenticated
	}
	raw, err := b64url.DecodeString(payload)
	if err != nil {
		return accessClaims{}, ErrUnauthenticated
	}
	var c accessClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		return accessClaims{}, ErrUnauthenticated
	}
	if c.Issuer != tokenIssuer || c.Audience != tokenAudience || c.Subject == "" || c.TenantID == "" || c.SessionID == "" {
		return accessClaims{}, ErrUnauthenticated
	}
	if now.Unix() >= c.ExpiresAt {
		return accessClaims{}, ErrTokenExpired
	}
	return c, nil
}

// Opaque token prefixes.
const (
	prefixRefresh  = "bvr_"
	prefixAPIToken = "bvt_"
)

// secretLen is the random part of opaque tokens, in bytes.
const secretLen = 32

// newOpaqueToken returns prefix + tenant id (32 hex digits) + "_" + 32 random bytes
// (base64url), and the SHA-256 that is stored instead of it.
func newOpaqueToken(prefix, tenantID string) (token string, hash []byte) {
	secret := make([]byte, secretLen)
	_, _ = rand.Read(secret)
	token = prefix + strings.ReplaceAll(tenantID, "-", "") + "_" + b64url.EncodeToString(secret)
	return token, hashToken(token)
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

var errBadToken = errors.New("malformed token")

// parseOpaqueToken returns the tenant id of a token made by newOpaqueToken, and its hash.
// The layout is fixed: prefix, 32 hex digits, "_", 43 base64url characters (which may
// themselves contain "_").
func parseOpaqueToken(prefix, token string) (tenantID string, hash []byte, err error) {
	rest, ok := strings.CutPrefix(token, prefix)
	if !ok || len(rest) != 32+1+b64url.EncodedLen(secretLen) || rest[32] != '_' {
		return "", nil, errBadToken
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(rest[:32])); err != nil {
		return "", nil, errBadToken
	}
	if secret, err := b64url.Strict().DecodeString(rest[33:]); err != nil || len(secret) != secretLen {
		return "", nil, errBadToken
	}
	return formatUUID(b), hashToken(token), nil
}

// displayPrefix is the part of an API token kept to recognise it in lists: the prefix and
// the first characters of the secret (not enough to guess the rest).
func displayPrefix(token string) string {
	const secretStart = len(prefixAPIToken) + 32 + 1
	if len(token) < secretStart+6 {
		return prefixAPIToken
	}
	return prefixAPIToken + "…" + token[secretStart:secretStart+6]
}
