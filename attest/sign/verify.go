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
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Policy says whose signature an image must carry. Either certificates — trusted by Roots
// (PEM, one or more root CAs; intermediates come from each signature's chain annotation) or
// by the certificate authorities of TrustedRoot — with Identity (exact URI/email SAN) or
// IdentityRegexp, and Issuer (exact OIDC issuer); or PublicKey (PEM, a cosign.pub).
// Identity/IdentityRegexp and Issuer are required for certificates: a policy that trusts any
// identity of a CA is refused.
//
// TrustedRoot is a Sigstore trusted root (trusted_root.json: Fulcio CAs, Rekor and CT log
// keys — the public-good one, or a private deployment's). With it every signature must carry
// a transparency-log entry (a Rekor bundle) whose signed entry timestamp verifies under one
// of its logs, and certificates are checked at the time the log saw them, as cosign and
// Kyverno do. IgnoreSCT skips the certificate-transparency proof (for CAs that issue none).
//
// IgnoreTlog instead accepts signatures with no transparency-log entry (the dry-run CA, keys
// signed offline); it cannot be combined with TrustedRoot.
type Policy struct {
	Roots                    []byte          `json:",omitempty"`
	TrustedRoot              json.RawMessage `json:",omitempty"`
	Identity, IdentityRegexp string          `json:",omitempty"`
	Issuer                   string          `json:",omitempty"`
	PublicKey                []byte          `json:",omitempty"`
	IgnoreTlog               bool            `json:",omitempty"`
	IgnoreSCT                bool            `json:",omitempty"`
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
	ErrNoTlogEntry    = errors.New("no transparency-log entry")
	ErrTlog           = errors.New("transparency-log entry does not verify")
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
	checked, _, err := cosign.VerifyImageSignatures(ctx, ref, co)
	if err != nil {
		return nil, explain(ctx, ref, p, co, err)
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
func explain(ctx context.Context, ref name.Digest, p Policy, co *cosign.CheckOpts, cerr error) error {
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
		if e := diagnose(ref, p, co, s); e != nil {
			problems = append(problems, fmt.Errorf("signature %d: %w", i+1, e))
		}
	}
	if len(problems) == 0 {
		return fmt.Errorf("%s: no signature accepted by cosign: %w", ref, cerr)
	}
	return fmt.Errorf("%s: no signature matches the policy: %w (cosign: %w)", ref, errors.Join(problems...), cerr)
}

// diagnose checks one signature in the order cosign does and reports the first mismatch.
func diagnose(ref name.Digest, p Policy, co *cosign.CheckOpts, s oci.Signature) error {
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
		roots, inter := trustedCAs(co)
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
	if err := diagnoseTlog(s, co); err != nil {
		return err
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

// CheckOpts turns a Policy into cosign's verification options (roots or a
// trusted root, and identity; or a public key), with claims checked by claims
// (cosign.SimpleClaimVerifier for signatures, cosign.IntotoSubjectClaimVerifier
// for attestations). Verification is always offline: transparency-log entries
// are checked from the bundle stored with each signature.
func CheckOpts(p Policy, claims func(oci.Signature, v1.Hash, map[string]interface{}) error, opts ...remote.Option) (*cosign.CheckOpts, error) {
	co := &cosign.CheckOpts{
		RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(opts...)},
		ClaimVerifier:      claims,
		IgnoreTlog:         p.IgnoreTlog,
		IgnoreSCT:          p.IgnoreTlog || p.IgnoreSCT,
		Offline:            true,
	}
	switch {
	case p.IgnoreTlog && len(p.TrustedRoot) > 0:
		return nil, fmt.Errorf("%w: IgnoreTlog with a trusted root: the root's transparency logs would go unchecked", ErrPolicy)
	case !p.IgnoreTlog && len(p.TrustedRoot) == 0:
		return nil, fmt.Errorf("%w: no trusted root to check transparency-log entries against: give a Sigstore trusted root (--trusted-root), or explicitly ignore the log", ErrPolicy)
	case len(p.TrustedRoot) > 0:
		tr, err := root.NewTrustedRootFromJSON(p.TrustedRoot)
		if err != nil {
			return nil, fmt.Errorf("%w: trusted root: %v", ErrPolicy, err)
		}
		co.TrustedMaterial = tr
	}
	switch {
	case len(p.PublicKey) > 0 && len(p.Roots) > 0:
		return nil, fmt.Errorf("%w: both a public key and certificate roots given", ErrPolicy)
	case len(p.Roots) > 0 && co.TrustedMaterial != nil:
		return nil, fmt.Errorf("%w: both certificate roots and a trusted root given; the trusted root names its CAs", ErrPolicy)
	case len(p.PublicKey) > 0:
		v, err := sigs.LoadPublicKeyRaw(p.PublicKey, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("%w: public key: %v", ErrPolicy, err)
		}
		co.SigVerifier = v
	case len(p.Roots) > 0 || co.TrustedMaterial != nil:
		if len(p.Roots) > 0 {
			certs, err := cryptoutils.UnmarshalCertificatesFromPEM(p.Roots)
			if err != nil || len(certs) == 0 {
				return nil, fmt.Errorf("%w: roots: no PEM certificate (%v)", ErrPolicy, err)
			}
			roots := x509.NewCertPool()
			for _, c := range certs {
				roots.AddCert(c)
			}
			co.RootCerts = roots
		}
		if (p.Identity == "") == (p.IdentityRegexp == "") || p.Issuer == "" {
			return nil, fmt.Errorf("%w: certificates need exactly one of Identity/IdentityRegexp, and Issuer", ErrPolicy)
		}
		if p.IdentityRegexp != "" {
			if _, err := regexp.Compile(p.IdentityRegexp); err != nil {
				return nil, fmt.Errorf("%w: IdentityRegexp: %v", ErrPolicy, err)
			}
		}
		co.Identities = []cosign.Identity{{Subject: p.Identity, SubjectRegExp: p.IdentityRegexp, Issuer: p.Issuer}}
	default:
		return nil, fmt.Errorf("%w: neither a public key nor certificate roots (or a trusted root) given", ErrPolicy)
	}
	return co, nil
}

// trustedCAs is the pool of root certificates a policy trusts (Roots, or the
// trusted root's Fulcio CAs), with the trusted root's intermediates.
func trustedCAs(co *cosign.CheckOpts) (roots, inter *x509.CertPool) {
	roots, inter = co.RootCerts, x509.NewCertPool()
	if co.TrustedMaterial == nil {
		return roots, inter
	}
	roots = x509.NewCertPool()
	for _, ca := range co.TrustedMaterial.FulcioCertificateAuthorities() {
		if f, ok := ca.(*root.FulcioCertificateAuthority); ok {
			roots.AddCert(f.Root)
			for _, c := range f.Intermediates {
				inter.AddCert(c)
			}
		}
	}
	return roots, inter
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

// diagnoseTlog checks the signature's transparency-log bundle when the policy requires one.
func diagnoseTlog(s oci.Signature, co *cosign.CheckOpts) error {
	if co.IgnoreTlog {
		return nil
	}
	b, err := s.Bundle()
	if err != nil || b == nil {
		return fmt.Errorf("%w: the signature carries no Rekor bundle (signed without a transparency log?)", ErrNoTlogEntry)
	}
	if ok, err := cosign.VerifyBundle(s, co); err != nil || !ok {
		return fmt.Errorf("%w: Rekor entry %d of log %.12s…: %v", ErrTlog, b.Payload.LogIndex, b.Payload.LogID, err)
	}
	return nil
}
