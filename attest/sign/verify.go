package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	sigs "github.com/sigstore/cosign/v2/pkg/signature"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Policy says whose signature an image must carry. Either certificates — Roots (PEM, one or
// more trusted root CAs; intermediates come from each signature's chain annotation), Identity
// (exact URI/email SAN) or IdentityRegexp, and Issuer (exact OIDC issuer) — or PublicKey (PEM,
// a cosign.pub). Identity/IdentityRegexp and Issuer are required for certificates: a policy
// that trusts any identity of a CA is refused.
//
// IgnoreTlog accepts signatures without a transparency-log entry and certificates without an
// SCT (the dry-run CA, keys signed offline). It is required for now: SignImage writes no Rekor
// entries until the real keyless path exists, and there is no offline Rekor key to check with.
type Policy struct {
	Roots                    []byte
	Identity, IdentityRegexp string
	Issuer                   string
	PublicKey                []byte
	IgnoreTlog               bool
}

// Verified is one signature on the image that satisfied the policy.
type Verified struct {
	Identity string  // certificate SAN, or "key" for key signatures
	Issuer   string  // certificate OIDC issuer; empty for keys
	Layer    v1.Hash // the signature layer's digest in the .sig manifest
}

// Verification errors, for errors.Is; the message always says what was expected and found.
var (
	ErrNoSignature    = errors.New("no signature")
	ErrWrongIdentity  = errors.New("wrong identity")
	ErrWrongIssuer    = errors.New("wrong issuer")
	ErrUntrustedCA    = errors.New("untrusted CA")
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrTampered       = errors.New("tampered or wrong key")
	ErrPolicy         = errors.New("invalid policy")
)

// Verify checks with cosign's own verifier that ref carries a signature satisfying p, and
// returns the signatures that did. On failure the error names, per signature, what did not
// match (ErrNoSignature, ErrWrongIdentity, ErrWrongIssuer, ErrUntrustedCA, ErrDigestMismatch,
// ErrTampered) and wraps cosign's own error.
func Verify(ctx context.Context, ref name.Digest, p Policy, opts ...remote.Option) ([]Verified, error) {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	co, err := CheckOpts(p, cosign.SimpleClaimVerifier, opts...)
	if err != nil {
		return nil, err
	}
	roots := co.RootCerts
	checked, _, err := cosign.VerifyImageSignatures(ctx, ref, co)
	if err != nil {
		return nil, explain(ctx, ref, p, roots, co, err)
	}
	out := make([]Verified, 0, len(checked))
	for _, s := range checked {
		v := Verified{Identity: "key"}
		if c, err := s.Cert(); err == nil && c != nil && co.SigVerifier == nil {
			v.Identity = strings.Join(cryptoutils.GetSubjectAlternateNames(c), ",")
			v.Issuer = certIssuer(c)
		}
		v.Layer, _ = s.Digest()
		out = append(out, v)
	}
	return out, nil
}

// explain re-reads the signatures cosign rejected and names what did not match for each one.
func explain(ctx context.Context, ref name.Digest, p Policy, roots *x509.CertPool, co *cosign.CheckOpts, cerr error) error {
	var nf *cosign.ErrNoSignaturesFound
	if errors.As(cerr, &nf) {
		return fmt.Errorf("%s: %w: no cosign signature tag or no signature layers (cosign: %w)", ref, ErrNoSignature, cerr)
	}
	se, err := ociremote.SignedEntity(ref, co.RegistryClientOpts...)
	if err != nil {
		return fmt.Errorf("%s: %w", ref, cerr)
	}
	ss, err := se.Signatures()
	if err != nil {
		return fmt.Errorf("%s: %w", ref, cerr)
	}
	list, err := ss.Get()
	if err != nil {
		return fmt.Errorf("%s: %w", ref, cerr)
	}
	if len(list) == 0 {
		return fmt.Errorf("%s: %w (cosign: %w)", ref, ErrNoSignature, cerr)
	}
	var problems []error
	for i, s := range list {
		if e := diagnose(ref, p, roots, s); e != nil {
			problems = append(problems, fmt.Errorf("signature %d: %w", i+1, e))
		}
	}
	if len(problems) == 0 {
		return fmt.Errorf("%s: no signature accepted by cosign: %w", ref, cerr)
	}
	return fmt.Errorf("%s: no signature matches the policy: %w (cosign: %w)", ref, errors.Join(problems...), cerr)
}

// diagnose checks one signature in the order cosign does and reports the first mismatch.
func diagnose(ref name.Digest, p Policy, roots *x509.CertPool, s oci.Signature) error {
	b64, err := s.Base64Signature()
	if err != nil {
		return fmt.Errorf("%w: unreadable signature annotation: %v", ErrTampered, err)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return fmt.Errorf("%w: signature annotation is not base64: %v", ErrTampered, err)
	}
	pl, err := s.Payload()
	if err != nil {
		return fmt.Errorf("%w: unreadable payload: %v", ErrTampered, err)
	}
	var verifier signature.Verifier
	if len(p.PublicKey) > 0 {
		if verifier, err = sigs.LoadPublicKeyRaw(p.PublicKey, crypto.SHA256); err != nil {
			return err
		}
		if err := verifier.VerifySignature(bytes.NewReader(raw), bytes.NewReader(pl)); err != nil {
			return fmt.Errorf("%w: signature does not verify under the given public key", ErrTampered)
		}
	} else {
		cert, err := s.Cert()
		if err != nil || cert == nil {
			return fmt.Errorf("%w: signature carries no certificate (a key signature?)", ErrUntrustedCA)
		}
		chain, _ := s.Chain()
		inter := x509.NewCertPool()
		for _, c := range chain {
			inter.AddCert(c)
		}
		if _, err := cert.Verify(x509.VerifyOptions{
			CurrentTime: cert.NotBefore, Roots: roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
		}); err != nil {
			return fmt.Errorf("%w: certificate issued by %q does not chain to the given roots: %v", ErrUntrustedCA, cert.Issuer.String(), err)
		}
		sans := cryptoutils.GetSubjectAlternateNames(cert)
		if !MatchSAN(sans, p) {
			want := fmt.Sprintf("%q", p.Identity)
			if p.IdentityRegexp != "" {
				want = fmt.Sprintf("matching %q", p.IdentityRegexp)
			}
			return fmt.Errorf("%w: certificate identity %q, want %s", ErrWrongIdentity, strings.Join(sans, ", "), want)
		}
		if iss := certIssuer(cert); iss != p.Issuer {
			return fmt.Errorf("%w: certificate OIDC issuer %q, want %q", ErrWrongIssuer, iss, p.Issuer)
		}
		if verifier, err = signature.LoadVerifier(cert.PublicKey, crypto.SHA256); err != nil {
			return err
		}
		if err := verifier.VerifySignature(bytes.NewReader(raw), bytes.NewReader(pl)); err != nil {
			return fmt.Errorf("%w: signature does not verify over the payload with the certificate's key", ErrTampered)
		}
	}
	var sp payload.SimpleContainerImage
	if err := json.Unmarshal(pl, &sp); err != nil {
		return fmt.Errorf("%w: payload is not a cosign simple-signing document: %v", ErrTampered, err)
	}
	if got := sp.Critical.Image.DockerManifestDigest; got != ref.DigestStr() {
		return fmt.Errorf("%w: signature is for %s, image is %s", ErrDigestMismatch, got, ref.DigestStr())
	}
	return nil
}

// CheckOpts turns a Policy into cosign's verification options (roots and
// identity, or a public key; the transparency log ignored, which the Policy
// must say), with claims checked by claims (cosign.SimpleClaimVerifier for
// signatures, cosign.IntotoSubjectClaimVerifier for attestations).
func CheckOpts(p Policy, claims func(oci.Signature, v1.Hash, map[string]interface{}) error, opts ...remote.Option) (*cosign.CheckOpts, error) {
	co := &cosign.CheckOpts{
		RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(opts...)},
		ClaimVerifier:      claims,
		IgnoreTlog:         p.IgnoreTlog,
		IgnoreSCT:          p.IgnoreTlog,
		Offline:            true,
	}
	if !p.IgnoreTlog {
		return nil, fmt.Errorf("%w: transparency-log verification is not implemented yet (no Rekor entries are written); set IgnoreTlog", ErrPolicy)
	}
	switch {
	case len(p.PublicKey) > 0 && len(p.Roots) > 0:
		return nil, fmt.Errorf("%w: both a public key and certificate roots given", ErrPolicy)
	case len(p.PublicKey) > 0:
		v, err := sigs.LoadPublicKeyRaw(p.PublicKey, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("%w: public key: %v", ErrPolicy, err)
		}
		co.SigVerifier = v
	case len(p.Roots) > 0:
		certs, err := cryptoutils.UnmarshalCertificatesFromPEM(p.Roots)
		if err != nil || len(certs) == 0 {
			return nil, fmt.Errorf("%w: roots: no PEM certificate (%v)", ErrPolicy, err)
		}
		roots := x509.NewCertPool()
		for _, c := range certs {
			roots.AddCert(c)
		}
		if (p.Identity == "") == (p.IdentityRegexp == "") || p.Issuer == "" {
			return nil, fmt.Errorf("%w: certificates need exactly one of Identity/IdentityRegexp, and Issuer", ErrPolicy)
		}
		if p.IdentityRegexp != "" {
			if _, err := regexp.Compile(p.IdentityRegexp); err != nil {
				return nil, fmt.Errorf("%w: IdentityRegexp: %v", ErrPolicy, err)
			}
		}
		co.RootCerts = roots
		co.Identities = []cosign.Identity{{Subject: p.Identity, SubjectRegExp: p.IdentityRegexp, Issuer: p.Issuer}}
	default:
		return nil, fmt.Errorf("%w: neither a public key nor certificate roots given", ErrPolicy)
	}
	return co, nil
}

// MatchSAN reports whether a certificate's SANs satisfy the policy's identity.
func MatchSAN(sans []string, p Policy) bool {
	for _, s := range sans {
		if p.Identity != "" && s == p.Identity {
			return true
		}
		if p.IdentityRegexp != "" && regexp.MustCompile(p.IdentityRegexp).MatchString(s) {
			return true
		}
	}
	return false
}

func certIssuer(c *x509.Certificate) string {
	ce := cosign.CertExtensions{Cert: c}
	return ce.GetIssuer()
}
