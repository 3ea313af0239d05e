// Package sign signs published images and verifies their signatures, stored exactly the way
// cosign v2 stores them, so that `cosign verify`, Kyverno `type: Cosign` and the
// policy-controller read them without translation.
//
// Choices (see DESIGN.md §3, §4):
//
//   - Format: cosign v2 "simple signing" payload ({"critical":{"identity":{"docker-reference":…},
//     "image":{"docker-manifest-digest":…},"type":"cosign container image signature"},"optional":…})
//     as one layer of the manifest tagged sha256-<hex>.sig in the image's own repository, with
//     the annotations dev.cosignproject.cosign/signature and, for certificate signers,
//     dev.sigstore.cosign/certificate and dev.sigstore.cosign/chain. Writing goes through cosign's
//     own ocimutate.AttachSignatureToEntity + ociremote.WriteSignatures, so layer media types,
//     annotations and tag naming are cosign's, not a re-implementation. No OCI 1.1 referrers
//     and no new-style bundles here: admission (Kyverno, policy-controller) reads the .sig tag.
//   - The index and every platform manifest are signed separately (one SignImage call each);
//     the payload always names the digest that was signed.
//   - Idempotent: cosign's duplicate detector recognises a layer with the same payload, the same
//     certificate/chain annotations and a signature that verifies under the same key, so signing
//     the same digest twice with the same Signer leaves one layer. A second, different signer
//     adds its own layer next to the first (that is how co-signing works in cosign).
//   - Signers are an interface: Ephemeral (dry-run, a local CA per release), Key (a cosign
//     key pair or a KMS URI, through cosign's SignerVerifierFromKeyRef) and keyless
//     (attest/sign/keyless: GitHub Actions OIDC token → Fulcio certificate). A signer whose
//     signatures must be publicly logged also implements Logged: SignImage then enters each
//     signature in its transparency log (Rekor, a hashedrekord entry) and stores the returned
//     bundle (dev.sigstore.cosign/bundle) next to it, as `cosign sign` does, so verification
//     works offline against a trusted root.
//   - Verification is cosign's: cosign.VerifyImageSignatures with CheckOpts (RootCerts,
//     Identities, SimpleClaimVerifier, IgnoreTlog/IgnoreSCT), so what passes here passes
//     `cosign verify --ca-roots dry-run-root.pem --certificate-identity … --certificate-oidc-issuer …
//     --insecure-ignore-tlog --insecure-ignore-sct` (or `--key cosign.pub --insecure-ignore-tlog`);
//     TestCosignCLIVerify runs cosign's VerifyCommand to prove it. When cosign rejects, Verify
//     inspects each signature itself to say precisely what did not match.
//   - Dry-run certificates are valid for 7 days, not Fulcio's 10 minutes: with no transparency
//     log or timestamp, cosign checks the leaf against the current time.
package sign

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	cremote "github.com/sigstore/cosign/v2/pkg/cosign/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ocimutate "github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Signer produces a signature over a payload, with the certificate chain that identifies the
// signer (keyless) or none (key).
type Signer interface {
	Sign(ctx context.Context, payload []byte) (*Signature, error)
	// Identity is a human description: "dry-run (ephemeral local CA)", "key cosign.key",
	// "https://github.com/…/release.yml@refs/tags/v1.2.3".
	Identity() string
	// Policy is the verification policy that admits exactly this signer's signatures (an
	// empty Policy, which Verify refuses, when it cannot be derived).
	Policy() Policy
}

// Signature is what a Signer returns.
type Signature struct {
	Sig   []byte // raw signature (ASN.1 ECDSA for the signers here) over the payload
	Cert  []byte // PEM leaf certificate; empty for keys
	Chain []byte // PEM intermediates then root, as Fulcio returns them; empty for keys

	// PublicKey verifies Sig (the leaf's key for certificates). Used to recognise a signature
	// that is already attached (ECDSA signatures differ on every call).
	PublicKey crypto.PublicKey
}

// TransparencyLog enters signatures in a public log (Rekor) and returns the log's signed
// promise of inclusion, stored with the signature as cosign does.
type TransparencyLog interface {
	// LogSignature enters a signature over payload (a hashedrekord entry).
	LogSignature(ctx context.Context, payload []byte, sig *Signature) (*cbundle.RekorBundle, error)
	// LogEnvelope enters a signed DSSE envelope (a dsse entry); sig carries its certificate.
	LogEnvelope(ctx context.Context, envelope []byte, sig *Signature) (*cbundle.RekorBundle, error)
}

// Logged is implemented by signers whose signatures must enter a transparency log.
type Logged interface {
	TransparencyLog() TransparencyLog
}

// LogOf returns s's transparency log, or nil when its signatures are not logged.
func LogOf(s Signer) TransparencyLog {
	if l, ok := s.(Logged); ok {
		return l.TransparencyLog()
	}
	return nil
}

// SignImage signs the image at ref (the index, or one platform manifest) in the cosign v2 simple
// signing format and stores it under the cosign signature tag sha256-<hex>.sig in the same
// repository. Re-signing the same digest with the same signer does not add a layer.
func SignImage(ctx context.Context, ref name.Digest, s Signer, opts ...remote.Option) error {
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	ropts := []ociremote.Option{ociremote.WithRemoteOptions(opts...)}

	se, _, err := Entity(ref, ropts...)
	if err != nil {
		return fmt.Errorf("sign %s: %w", ref, err)
	}

	pl, err := (&payload.Cosign{Image: ref}).MarshalJSON()
	if err != nil {
		return fmt.Errorf("sign %s: payload: %w", ref, err)
	}
	sig, err := s.Sign(ctx, pl)
	if err != nil {
		return fmt.Errorf("sign %s with %s: %w", ref, s.Identity(), err)
	}
	var sopts []static.Option
	if len(sig.Cert) > 0 {
		sopts = append(sopts, static.WithCertChain(sig.Cert, sig.Chain))
	}
	b64 := base64.StdEncoding.EncodeToString(sig.Sig)
	ociSig, err := static.NewSignature(pl, b64, sopts...)
	if err != nil {
		return fmt.Errorf("sign %s: %w", ref, err)
	}

	var mopts []ocimutate.SignOption
	if sig.PublicKey != nil {
		v, err := signature.LoadVerifier(sig.PublicKey, crypto.SHA256)
		if err != nil {
			return fmt.Errorf("sign %s: signer public key: %w", ref, err)
		}
		// The new signature must verify under its own key, or nothing later will.
		if err := v.VerifySignature(bytes.NewReader(sig.Sig), bytes.NewReader(pl)); err != nil {
			return fmt.Errorf("sign %s with %s: signature does not verify under the signer's key: %w", ref, s.Identity(), err)
		}
		mopts = append(mopts, ocimutate.WithDupeDetector(cremote.NewDupeDetector(v)))
	}
	nse, err := ocimutate.AttachSignatureToEntity(se, ociSig, mopts...)
	if err != nil {
		return fmt.Errorf("sign %s: attaching signature: %w", ref, err)
	}
	if Unchanged(se, nse, oci.SignedEntity.Signatures) {
		return nil // already signed by this signer: nothing to write
	}
	if tl := LogOf(s); tl != nil {
		// Only a signature that is really new is logged (and so only once).
		b, err := tl.LogSignature(ctx, pl, sig)
		if err != nil {
			return fmt.Errorf("sign %s: transparency log: %w", ref, err)
		}
		if ociSig, err = static.NewSignature(pl, b64, append(sopts, static.WithBundle(b))...); err != nil {
			return fmt.Errorf("sign %s: %w", ref, err)
		}
		if nse, err = ocimutate.AttachSignatureToEntity(se, ociSig, mopts...); err != nil {
			return fmt.Errorf("sign %s: attaching signature: %w", ref, err)
		}
	}
	if err := ociremote.WriteSignatures(ref.Repository, nse, ropts...); err != nil {
		return fmt.Errorf("sign %s: writing signature tag: %w", ref, err)
	}
	return nil
}

// Entity reads ref as a cosign signed entity (the image plus its .sig and .att
// manifests) and checks that the registry serves exactly ref's digest.
func Entity(ref name.Digest, ropts ...ociremote.Option) (oci.SignedEntity, v1.Hash, error) {
	se, err := ociremote.SignedEntity(ref, ropts...)
	if err != nil {
		return nil, v1.Hash{}, fmt.Errorf("reading image: %w", err)
	}
	h, err := se.Digest()
	if err != nil {
		return nil, v1.Hash{}, err
	}
	if h.String() != ref.DigestStr() {
		return nil, v1.Hash{}, fmt.Errorf("registry returned digest %s", h)
	}
	return se, h, nil
}

// Unchanged reports whether attaching left the manifest that layers selects
// (oci.SignedEntity.Signatures or .Attestations) as it was: the duplicate
// detector found the layer already there, so nothing needs writing.
func Unchanged(before, after oci.SignedEntity, layers func(oci.SignedEntity) (oci.Signatures, error)) bool {
	digest := func(e oci.SignedEntity) (v1.Hash, error) {
		l, err := layers(e)
		if err != nil {
			return v1.Hash{}, err
		}
		return l.Digest()
	}
	a, err := digest(before)
	if err != nil {
		return false
	}
	b, err := digest(after)
	return err == nil && a == b
}
