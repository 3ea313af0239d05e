package attestation

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ocimutate "github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"

	"github.com/bitvault/bitvault/attest/sign"
)

// PredicateTypeAnnotation is the layer annotation cosign attest writes (and Kyverno reads).
const PredicateTypeAnnotation = "predicateType"

// Attach signs statement (an in-toto v1 statement naming ref's digest as a subject) in a DSSE
// envelope with s and adds it to ref's cosign attestation manifest (sha256-<hex>.att).
// Attaching the same statement with the same signer again writes nothing.
func Attach(ctx context.Context, ref name.Digest, statement []byte, s sign.Signer, opts ...remote.Option) error {
	return attach(ctx, ref, statement, s, true, opts...)
}

func attach(ctx context.Context, ref name.Digest, statement []byte, s sign.Signer, checkSubject bool, opts ...remote.Option) error {
	st, err := parseStatement(statement)
	if err != nil {
		return fmt.Errorf("attest %s: %w", ref, err)
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	ropts := []ociremote.Option{ociremote.WithRemoteOptions(opts...)}

	se, h, err := sign.Entity(ref, ropts...)
	if err != nil {
		return fmt.Errorf("attest %s: %w", ref, err)
	}
	if checkSubject && !st.names(h) {
		return fmt.Errorf("attest %s: %w: statement subject %v does not name %s", ref, sign.ErrDigestMismatch, st.digests(), h)
	}

	as := &signerAdapter{ctx: ctx, s: s}
	env, err := dsse.WrapSigner(as, ctypes.IntotoPayloadType).SignMessage(bytes.NewReader(statement))
	if err != nil {
		return fmt.Errorf("attest %s with %s: %w", ref, s.Identity(), err)
	}
	sig := as.last

	sopts := []static.Option{
		static.WithLayerMediaType(ctypes.DssePayloadType),
		static.WithAnnotations(map[string]string{PredicateTypeAnnotation: st.PredicateType}),
	}
	if len(sig.Cert) > 0 {
		sopts = append(sopts, static.WithCertChain(sig.Cert, sig.Chain))
	}
	att, err := static.NewAttestation(env, sopts...)
	if err != nil {
		return fmt.Errorf("attest %s: %w", ref, err)
	}

	var mopts []ocimutate.SignOption
	if sig.PublicKey != nil {
		v, err := signature.LoadVerifier(sig.PublicKey, crypto.SHA256)
		if err != nil {
			return fmt.Errorf("attest %s: signer public key: %w", ref, err)
		}
		// The new envelope must verify under its own key, or nothing later will.
		if _, err := openEnvelope(env, v); err != nil {
			return fmt.Errorf("attest %s with %s: envelope does not verify under the signer's key: %w", ref, s.Identity(), err)
		}
		mopts = append(mopts, ocimutate.WithDupeDetector(&dupeDetector{v: v, statement: statement}))
	}
	nse, err := ocimutate.AttachAttestationToEntity(se, att, mopts...)
	if err != nil {
		return fmt.Errorf("attest %s: attaching attestation: %w", ref, err)
	}
	if sign.Unchanged(se, nse, oci.SignedEntity.Attestations) {
		return nil // already attested by this signer: nothing to write
	}
	if tl := sign.LogOf(s); tl != nil {
		// Only a new attestation is logged (a dsse entry), as `cosign attest` does.
		b, err := tl.LogEnvelope(ctx, env, sig)
		if err != nil {
			return fmt.Errorf("attest %s: transparency log: %w", ref, err)
		}
		if att, err = static.NewAttestation(env, append(sopts, static.WithBundle(b))...); err != nil {
			return fmt.Errorf("attest %s: %w", ref, err)
		}
		if nse, err = ocimutate.AttachAttestationToEntity(se, att, mopts...); err != nil {
			return fmt.Errorf("attest %s: attaching attestation: %w", ref, err)
		}
	}
	if err := ociremote.WriteAttestations(ref.Repository, nse, ropts...); err != nil {
		return fmt.Errorf("attest %s: writing attestation tag: %w", ref, err)
	}
	return nil
}

// openEnvelope verifies a DSSE envelope (in-toto payload type) under v and returns its payload.
func openEnvelope(env []byte, v signature.Verifier) ([]byte, error) {
	var pl []byte
	dv := dsse.WrapVerifier(v, dsse.WithExpectedPayloadType(ctypes.IntotoPayloadType), dsse.WithDecodedPayload(&pl))
	if err := dv.VerifySignature(bytes.NewReader(env), nil); err != nil {
		return nil, err
	}
	return pl, nil
}

// signerAdapter lets sigstore's DSSE wrapper sign the PAE with a sign.Signer, keeping the
// certificate chain and public key the Signer returned.
type signerAdapter struct {
	ctx  context.Context
	s    sign.Signer
	last *sign.Signature
}

func (a *signerAdapter) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	if a.last == nil || a.last.PublicKey == nil {
		return nil, errors.New("public key unknown before signing")
	}
	return a.last.PublicKey, nil
}

func (a *signerAdapter) SignMessage(r io.Reader, _ ...signature.SignOption) ([]byte, error) {
	msg, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	sig, err := a.s.Sign(a.ctx, msg)
	if err != nil {
		return nil, err
	}
	a.last = sig
	return sig.Sig, nil
}

// dupeDetector finds an attestation layer that is the same attestation: same media type and
// annotations (predicate type, certificate, chain), and an envelope carrying the same
// statement that verifies under the same key.
type dupeDetector struct {
	v         signature.Verifier
	statement []byte
}

func (d *dupeDetector) Find(existing oci.Signatures, n oci.Signature) (oci.Signature, error) {
	nmt, err := n.MediaType()
	if err != nil {
		return nil, err
	}
	nann, err := n.Annotations()
	if err != nil {
		return nil, err
	}
	list, err := existing.Get()
	if err != nil {
		return nil, err
	}
next:
	for _, e := range list {
		if mt, err := e.MediaType(); err != nil || mt != nmt {
			continue
		}
		eann, err := e.Annotations()
		if err != nil {
			continue
		}
		for k, v := range nann {
			if eann[k] != v {
				continue next
			}
		}
		env, err := e.Payload()
		if err != nil {
			continue
		}
		if pl, err := openEnvelope(env, d.v); err == nil && bytes.Equal(pl, d.statement) {
			return e, nil
		}
	}
	return nil, nil
}
