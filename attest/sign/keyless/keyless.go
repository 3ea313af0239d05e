package keyless

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/retry"
)

// Options configure a keyless Signer.
type Options struct {
	Tokens TokenSource
	CA     CertificateAuthority
	Log    sign.TransparencyLog
	// TrustedRoot (trusted_root.json) is what verifiers will trust: the issued certificate
	// must chain to one of its CAs, and it goes into Policy().
	TrustedRoot []byte
	// IgnoreSCT: the CA embeds no certificate-transparency proof (private or test Fulcio).
	IgnoreSCT bool
	// Renew is how long before expiry a certificate is replaced (Fulcio's last 10 minutes).
	Renew time.Duration
}

// Signer signs with an ephemeral key certified by the CA for the OIDC identity, and logs
// every signature (it implements sign.Logged).
type Signer struct {
	opts    Options
	trusted *root.TrustedRoot
	key     *ecdsa.PrivateKey
	sv      signature.SignerVerifier

	mu       sync.Mutex
	cert     *x509.Certificate
	certPEM  []byte
	chainPEM []byte
}

var (
	_ sign.Signer = (*Signer)(nil)
	_ sign.Logged = (*Signer)(nil)
)

// New makes the signer and obtains its first certificate, so that a missing id-token
// permission or an unreachable Fulcio fails before anything is signed.
func New(ctx context.Context, o Options) (*Signer, error) {
	if o.Tokens == nil || o.CA == nil || o.Log == nil {
		return nil, errors.New("keyless signing needs a token source, a certificate authority and a transparency log")
	}
	if o.Renew == 0 {
		o.Renew = 2 * time.Minute
	}
	tr, err := root.NewTrustedRootFromJSON(o.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sv, err := signature.LoadECDSASignerVerifier(key, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	s := &Signer{opts: o, trusted: tr, key: key, sv: sv}
	if _, _, err := s.certificate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// certificate returns a certificate valid for at least Renew more, asking the CA for a new
// one (with a fresh token) when needed.
func (s *Signer) certificate(ctx context.Context) ([]byte, []byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert != nil && time.Until(s.cert.NotAfter) > s.opts.Renew {
		return s.certPEM, s.chainPEM, nil
	}
	token, err := s.opts.Tokens.Token(ctx, Audience)
	if err != nil {
		return nil, nil, fmt.Errorf("keyless signing: %w", err)
	}
	claims, err := ParseClaims(token)
	if err != nil {
		return nil, nil, fmt.Errorf("keyless signing: %w", err)
	}
	proof, err := s.sv.SignMessage(strings.NewReader(claims.Subject))
	if err != nil {
		return nil, nil, err
	}
	certPEM, chainPEM, err := s.opts.CA.SigningCert(ctx, token, s.key.Public(), proof)
	if err != nil {
		return nil, nil, fmt.Errorf("keyless signing: %w", err)
	}
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(certPEM)
	if err != nil || len(certs) != 1 {
		return nil, nil, fmt.Errorf("keyless signing: the CA's certificate does not parse (%v)", err)
	}
	cert := certs[0]
	if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(s.key.Public()) {
		return nil, nil, errors.New("keyless signing: the CA certified another public key")
	}
	if err := s.chainsToTrustedRoot(cert, chainPEM); err != nil {
		return nil, nil, fmt.Errorf("keyless signing: the CA's certificate for %s does not chain to the trusted root (wrong --fulcio-url or --trusted-root?): %w", identity(cert), err)
	}
	s.cert, s.certPEM, s.chainPEM = cert, certPEM, chainPEM
	return certPEM, chainPEM, nil
}

func (s *Signer) chainsToTrustedRoot(cert *x509.Certificate, chainPEM []byte) error {
	var errs []error
	for _, ca := range s.trusted.FulcioCertificateAuthorities() {
		if _, err := ca.Verify(cert, cert.NotBefore); err == nil {
			return nil
		} else {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return errors.New("the trusted root names no certificate authority")
	}
	return errors.Join(errs...)
}

// Sign implements sign.Signer.
func (s *Signer) Sign(ctx context.Context, payload []byte) (*sign.Signature, error) {
	certPEM, chainPEM, err := s.certificate(ctx)
	if err != nil {
		return nil, err
	}
	sig, err := s.sv.SignMessage(bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	return &sign.Signature{Sig: sig, Cert: certPEM, Chain: chainPEM, PublicKey: s.key.Public()}, nil
}

// Identity is the certificate's identity: the workflow URI and its issuer.
func (s *Signer) Identity() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return identity(s.cert)
}

func identity(c *x509.Certificate) string {
	if c == nil {
		return "keyless (no certificate yet)"
	}
	return strings.Join(cryptoutils.GetSubjectAlternateNames(c), ",") + " (" + issuer(c) + ")"
}

func issuer(c *x509.Certificate) string { return (&cosign.CertExtensions{Cert: c}).GetIssuer() }

// Policy admits exactly this identity and issuer under the trusted root, logs checked.
func (s *Signer) Policy() sign.Policy {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cert == nil {
		return sign.Policy{}
	}
	sans := cryptoutils.GetSubjectAlternateNames(s.cert)
	if len(sans) == 0 {
		return sign.Policy{}
	}
	return sign.Policy{TrustedRoot: s.opts.TrustedRoot, Identity: sans[0], Issuer: issuer(s.cert), IgnoreSCT: s.opts.IgnoreSCT}
}

// TransparencyLog implements sign.Logged.
func (s *Signer) TransparencyLog() sign.TransparencyLog { return s.opts.Log }

func base64Decode(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }

// Config is what a release gives keyless signing: service URLs and trust.
type Config struct {
	FulcioURL, RekorURL string
	TrustedRoot         []byte
	IgnoreSCT           bool
	Retry               retry.Policy
	Notify              func(attempt int, err error, wait time.Duration)
}

// FromEnv makes the signer GitHub Actions uses: the job's OIDC token (it fails naming
// `id-token: write` when the job has none), Fulcio and Rekor at the configured URLs.
func FromEnv(ctx context.Context, c Config) (*Signer, error) {
	tokens, err := GitHubActionsFromEnv()
	if err != nil {
		return nil, err
	}
	if c.Retry.Attempts == 0 {
		c.Retry = retry.Default
	}
	tokens.Retry, tokens.Notify = c.Retry, c.Notify
	tr, err := root.NewTrustedRootFromJSON(c.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	return New(ctx, Options{
		Tokens:      tokens,
		CA:          &Fulcio{URL: c.FulcioURL, Retry: c.Retry, Notify: c.Notify},
		Log:         &Rekor{URL: c.RekorURL, Trusted: tr, Retry: c.Retry, Notify: c.Notify},
		TrustedRoot: c.TrustedRoot,
		IgnoreSCT:   c.IgnoreSCT,
	})
}
