// Package blob signs files — release archives, checksums.txt — and verifies
// them, with the release's signer (attest/sign.Signer: the dry-run CA, a
// cosign key, or keyless Fulcio + Rekor), as Sigstore bundles that upstream
// `cosign verify-blob --bundle` reads.
//
// # Format
//
// A bundle is a Sigstore protobuf bundle in its JSON form
// (application/vnd.dev.sigstore.bundle+json;version=0.1, conventionally
// <file>.sigstore.json): a message signature (the file's SHA-256 and the
// signature over the file), the verification material (the leaf certificate
// followed by its intermediates, or a public-key hint for key signers) and, for
// signers that log (sign.Logged), the hashedrekord entry Rekor returned with its
// signed entry timestamp (the inclusion promise).
//
// Why this format: cosign v2.6.5's verify-blob recognises a protobuf bundle by
// itself (it tries to parse --bundle as one before falling back to its older
// {base64Signature, cert, rekorBundle} JSON), so `--new-bundle-format` is not
// needed to verify; it then takes the trust material from --trusted-root (or
// Sigstore's TUF root when none is given) and refuses --certificate-chain and
// --ca-roots. The same file is what cosign v3, sigstore-go, sigstore-python and
// `gh attestation` read. Version 0.1 rather than 0.3: from v0.2 on a bundle must
// carry a Merkle inclusion proof for each log entry, and sign.TransparencyLog
// hands back the signed entry timestamp only (cosign's RekorBundle), which v0.1
// accepts as the log's proof.
//
// # Verification
//
// Verify runs cosign's own new-bundle verification (cosign.VerifyNewBundle,
// sigstore-go underneath) — what `cosign verify-blob --bundle` runs — with the
// same sign.Policy that admits the release's image signatures: a trusted root
// (Fulcio CAs and Rekor logs: the log entry must verify and match the file, and
// the certificate is checked at the time the log saw it), or the dry-run CA's
// root (no log, the certificate checked now), or a public key; always an exact
// identity (or regexp) and OIDC issuer for certificates. TrustedRoot writes the
// trusted_root.json that makes upstream cosign do the same check:
//
//	cosign verify-blob --bundle F.sigstore.json --trusted-root trusted_root.json \
//	  --certificate-identity I --certificate-oidc-issuer O [--insecure-ignore-tlog] [--insecure-ignore-sct] F
package blob

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/bitvault/bitvault/attest/sign"
)

// MediaType is the media type of the bundles Sign writes.
const MediaType = "application/vnd.dev.sigstore.bundle+json;version=0.1"

// Extension is the conventional suffix of a bundle file: <file>.sigstore.json.
const Extension = ".sigstore.json"

// Sign signs data with s and returns its bundle (indented JSON, one trailing
// newline). A signer that logs enters the signature in its transparency log
// (a hashedrekord entry for data's SHA-256) and the entry goes into the bundle.
func Sign(ctx context.Context, s sign.Signer, data []byte) ([]byte, error) {
	sig, err := s.Sign(ctx, data)
	if err != nil {
		return nil, fmt.Errorf("sign with %s: %w", s.Identity(), err)
	}
	if sig.PublicKey != nil {
		v, err := signature.LoadVerifier(sig.PublicKey, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("signer public key: %w", err)
		}
		if err := v.VerifySignature(bytes.NewReader(sig.Sig), bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("sign with %s: the signature does not verify under the signer's key: %w", s.Identity(), err)
		}
	}
	vm, err := material(sig)
	if err != nil {
		return nil, err
	}
	if tl := sign.LogOf(s); tl != nil {
		rb, err := tl.LogSignature(ctx, data, sig)
		if err != nil {
			return nil, fmt.Errorf("transparency log: %w", err)
		}
		e, err := tlogEntry(rb)
		if err != nil {
			return nil, fmt.Errorf("transparency log: %w", err)
		}
		vm.TlogEntries = []*protorekor.TransparencyLogEntry{e}
	}
	digest := sha256.Sum256(data)
	pb := &protobundle.Bundle{
		MediaType:            MediaType,
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: digest[:]},
			Signature:     sig.Sig,
		}},
	}
	b, err := sgbundle.NewBundle(pb) // validates it as verifiers will
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	raw, err := b.MarshalJSON()
	if err != nil {
		return nil, err
	}
	// protojson varies its whitespace on purpose; write it one stable way.
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

// material is the bundle's verification material: the leaf certificate and its
// intermediates (never a self-signed root: trust comes from the verifier), or a
// hint naming the public key.
func material(sig *sign.Signature) (*protobundle.VerificationMaterial, error) {
	if len(sig.Cert) == 0 {
		if sig.PublicKey == nil {
			return nil, errors.New("the signer returned neither a certificate nor a public key")
		}
		der, err := x509.MarshalPKIXPublicKey(sig.PublicKey)
		if err != nil {
			return nil, err
		}
		h := sha256.Sum256(der)
		return &protobundle.VerificationMaterial{Content: &protobundle.VerificationMaterial_PublicKey{
			PublicKey: &protocommon.PublicKeyIdentifier{Hint: hex.EncodeToString(h[:])},
		}}, nil
	}
	leaf, err := cryptoutils.UnmarshalCertificatesFromPEM(sig.Cert)
	if err != nil || len(leaf) != 1 {
		return nil, fmt.Errorf("signer certificate: want one PEM certificate (%v)", err)
	}
	chain, err := cryptoutils.UnmarshalCertificatesFromPEM(sig.Chain)
	if err != nil {
		return nil, fmt.Errorf("signer certificate chain: %w", err)
	}
	certs := []*protocommon.X509Certificate{{RawBytes: leaf[0].Raw}}
	for _, c := range chain {
		if !selfSigned(c) {
			certs = append(certs, &protocommon.X509Certificate{RawBytes: c.Raw})
		}
	}
	return &protobundle.VerificationMaterial{Content: &protobundle.VerificationMaterial_X509CertificateChain{
		X509CertificateChain: &protocommon.X509CertificateChain{Certificates: certs},
	}}, nil
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// tlogEntry turns Rekor's answer (as cosign keeps it) into the bundle's entry.
func tlogEntry(rb *cbundle.RekorBundle) (*protorekor.TransparencyLogEntry, error) {
	if rb == nil {
		return nil, errors.New("the log returned no entry")
	}
	body, ok := rb.Payload.Body.(string)
	if !ok {
		return nil, errors.New("the log entry has no body")
	}
	canon, err := base64.StdEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("log entry body: %w", err)
	}
	var kv struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(canon, &kv); err != nil || kv.Kind == "" {
		return nil, fmt.Errorf("log entry body: no kind/apiVersion (%v)", err)
	}
	logID, err := hex.DecodeString(rb.Payload.LogID)
	if err != nil {
		return nil, fmt.Errorf("log id: %w", err)
	}
	if len(rb.SignedEntryTimestamp) == 0 {
		return nil, errors.New("the log entry has no signed entry timestamp")
	}
	return &protorekor.TransparencyLogEntry{
		LogIndex:          rb.Payload.LogIndex,
		LogId:             &protocommon.LogId{KeyId: logID},
		KindVersion:       &protorekor.KindVersion{Kind: kv.Kind, Version: kv.APIVersion},
		IntegratedTime:    rb.Payload.IntegratedTime,
		InclusionPromise:  &protorekor.InclusionPromise{SignedEntryTimestamp: rb.SignedEntryTimestamp},
		CanonicalizedBody: canon,
	}, nil
}

// Verified is what verification established about a bundle.
type Verified struct {
	Identity string // certificate SAN, or "key"
	Issuer   string // certificate OIDC issuer; empty for keys
	// LogIndex is the transparency-log entry checked, -1 when the policy
	// ignores the log.
	LogIndex int64
}

// Errors, for errors.Is, besides attest/sign's ErrWrongIdentity, ErrWrongIssuer,
// ErrUntrustedCA, ErrNoTlogEntry, ErrTlog and ErrPolicy.
var (
	ErrBundle   = errors.New("not a Sigstore bundle")
	ErrTampered = errors.New("file does not match its signature")
)

// Verify checks that bundle is a signature over the content read from data that
// p admits, with cosign's own verification, and says why not.
func Verify(ctx context.Context, data io.Reader, bundle []byte, p sign.Policy) (*Verified, error) {
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(bundle); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBundle, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, data); err != nil {
		return nil, err
	}
	digest := h.Sum(nil)
	co, err := checkOpts(p, &b)
	if err != nil {
		return nil, err
	}
	res, err := cosign.VerifyNewBundle(ctx, co, sgverify.WithArtifactDigest("sha256", digest), &b)
	if err != nil {
		return nil, explain(&b, digest, p, co, err)
	}
	v := &Verified{Identity: "key", LogIndex: -1}
	if res.Signature != nil && res.Signature.Certificate != nil {
		v.Identity = res.Signature.Certificate.SubjectAlternativeName
		v.Issuer = res.Signature.Certificate.Issuer
	}
	if !co.IgnoreTlog {
		if es, err := b.TlogEntries(); err == nil && len(es) > 0 {
			v.LogIndex = es[0].LogIndex()
		}
	}
	return v, nil
}

// checkOpts is sign.CheckOpts (the policy's checks, validated the same way) with
// the trust material cosign's bundle verification needs in every case: the
// trusted root; for a policy that names CA roots, those roots with the
// intermediates the bundle carries; for a key, no CA at all.
func checkOpts(p sign.Policy, b *sgbundle.Bundle) (*cosign.CheckOpts, error) {
	co, err := sign.CheckOpts(p, nil)
	if err != nil {
		return nil, err
	}
	if co.TrustedMaterial == nil {
		tr, err := trustedRoot(p, b)
		if err != nil {
			return nil, err
		}
		co.TrustedMaterial = tr
	}
	co.RootCerts = nil
	return co, nil
}

// TrustedRoot returns the trusted_root.json that makes `cosign verify-blob
// --trusted-root` apply p to bundle: p's own trusted root; for CA roots (the
// dry-run CA), a root naming them as certificate authorities with the
// intermediates bundle carries and no transparency log; for a key, an empty one
// (cosign needs some trusted root for a bundle; the key comes from --key).
func TrustedRoot(p sign.Policy, bundle []byte) ([]byte, error) {
	if len(p.TrustedRoot) > 0 {
		return p.TrustedRoot, nil
	}
	var b sgbundle.Bundle
	if err := b.UnmarshalJSON(bundle); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBundle, err)
	}
	tr, err := trustedRoot(p, &b)
	if err != nil {
		return nil, err
	}
	raw, err := tr.MarshalJSON()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, raw, "", "  "); err != nil {
		return nil, err
	}
	out.WriteByte('\n')
	return out.Bytes(), nil
}

func trustedRoot(p sign.Policy, b *sgbundle.Bundle) (*root.TrustedRoot, error) {
	var cas []root.CertificateAuthority
	if len(p.Roots) > 0 {
		roots, err := cryptoutils.UnmarshalCertificatesFromPEM(p.Roots)
		if err != nil || len(roots) == 0 {
			return nil, fmt.Errorf("%w: roots: no PEM certificate (%v)", sign.ErrPolicy, err)
		}
		inter := intermediates(b)
		for _, r := range roots {
			cas = append(cas, &root.FulcioCertificateAuthority{
				Root: r, Intermediates: inter, ValidityPeriodStart: r.NotBefore, ValidityPeriodEnd: r.NotAfter,
				URI: "urn:bitvault:ca:" + hex.EncodeToString(r.SubjectKeyId),
			})
		}
	}
	return root.NewTrustedRoot(root.TrustedRootMediaType01, cas, nil, nil, nil)
}

// intermediates are the CA certificates a bundle's chain carries after its leaf.
func intermediates(b *sgbundle.Bundle) []*x509.Certificate {
	var out []*x509.Certificate
	chain := b.GetVerificationMaterial().GetX509CertificateChain().GetCertificates()
	for i, c := range chain {
		if i == 0 {
			continue
		}
		if cert, err := x509.ParseCertificate(c.GetRawBytes()); err == nil && cert.IsCA {
			out = append(out, cert)
		}
	}
	return out
}

// explain says what did not match, in the order a reader would check, and
// wraps cosign's error.
func explain(b *sgbundle.Bundle, digest []byte, p sign.Policy, co *cosign.CheckOpts, cerr error) error {
	if ms := b.GetMessageSignature(); ms != nil {
		if md := ms.GetMessageDigest(); md != nil && !bytes.Equal(md.GetDigest(), digest) {
			return fmt.Errorf("%w: the bundle signs sha256:%x, the file is sha256:%x (cosign: %w)", ErrTampered, md.GetDigest(), digest, cerr)
		}
	}
	vc, err := b.VerificationContent()
	if err == nil && vc.Certificate() != nil && len(p.PublicKey) == 0 {
		cert := vc.Certificate()
		roots := x509.NewCertPool()
		inter := x509.NewCertPool()
		for _, ca := range co.TrustedMaterial.FulcioCertificateAuthorities() {
			if f, ok := ca.(*root.FulcioCertificateAuthority); ok {
				roots.AddCert(f.Root)
				for _, c := range f.Intermediates {
					inter.AddCert(c)
				}
			}
		}
		if _, err := cert.Verify(x509.VerifyOptions{CurrentTime: cert.NotBefore, Roots: roots, Intermediates: inter,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}); err != nil {
			return fmt.Errorf("%w: certificate issued by %q does not chain to the trusted CAs (cosign: %w)", sign.ErrUntrustedCA, cert.Issuer.String(), cerr)
		}
		sans := cryptoutils.GetSubjectAlternateNames(cert)
		if !sign.MatchSAN(sans, p) {
			want := fmt.Sprintf("%q", p.Identity)
			if p.IdentityRegexp != "" {
				want = fmt.Sprintf("matching %q", p.IdentityRegexp)
			}
			return fmt.Errorf("%w: certificate identity %q, want %s (cosign: %w)", sign.ErrWrongIdentity, strings.Join(sans, ", "), want, cerr)
		}
		if iss := (&cosign.CertExtensions{Cert: cert}).GetIssuer(); iss != p.Issuer {
			return fmt.Errorf("%w: certificate OIDC issuer %q, want %q (cosign: %w)", sign.ErrWrongIssuer, iss, p.Issuer, cerr)
		}
	}
	if !co.IgnoreTlog {
		if es, err := b.TlogEntries(); err == nil && len(es) == 0 {
			return fmt.Errorf("%w: the bundle carries no transparency-log entry (cosign: %w)", sign.ErrNoTlogEntry, cerr)
		}
		if strings.Contains(cerr.Error(), "transparency log") || strings.Contains(cerr.Error(), "tlog") {
			return fmt.Errorf("%w: %w", sign.ErrTlog, cerr)
		}
	}
	return fmt.Errorf("%w: %w", ErrTampered, cerr)
}
