package attestation

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/bitvault/bitvault/attest/sign"
)

// ErrNoAttestation: ref carries no attestation (of the wanted predicate type) that passed.
var ErrNoAttestation = errors.New("no attestation")

// VerifyAttestations checks with cosign's own cosign.VerifyImageAttestations that ref carries an
// attestation of predicateType signed per p whose statement names ref's digest, and returns the
// statements (DSSE payloads) that passed. Failures wrap ErrNoAttestation, sign.ErrPolicy,
// sign.ErrDigestMismatch, sign.ErrWrongIdentity or sign.ErrWrongIssuer where they can be told,
// and cosign's own error.
func VerifyAttestations(ctx context.Context, ref name.Digest, predicateType string, p sign.Policy, opts ...remote.Option) ([][]byte, error) {
	if predicateType == "" {
		return nil, fmt.Errorf("%w: empty predicate type", sign.ErrPolicy)
	}
	h, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		return nil, err
	}
	opts = append([]remote.Option{remote.WithContext(ctx)}, opts...)
	co, err := sign.CheckOpts(p, cosign.IntotoSubjectClaimVerifier, opts...)
	if err != nil {
		return nil, err
	}
	checked, _, err := cosign.VerifyImageAttestations(ctx, ref, co)
	if err != nil {
		return nil, explain(ref, h, p, co, err)
	}
	var out [][]byte
	var other []string
	for _, a := range checked {
		st, raw, err := decode(a)
		if err != nil {
			continue
		}
		if !st.names(h) { // cosign's claim verifier checked this already; stay strict
			continue
		}
		if st.PredicateType != predicateType {
			other = append(other, st.PredicateType)
			continue
		}
		out = append(out, raw)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: %w of predicate type %q signed per the policy (verified attestations have types %q)", ref, ErrNoAttestation, predicateType, other)
	}
	return out, nil
}

// checkOpts builds cosign CheckOpts exactly as attest/sign.Verify does, plus the in-toto
// subject claim verifier cosign verify-attestation uses.

// decode returns the in-toto statement inside an attestation layer's DSSE envelope (not
// verified here: only for layers cosign accepted, or to explain a rejection).
func decode(a oci.Signature) (*statement, []byte, error) {
	env, err := a.Payload()
	if err != nil {
		return nil, nil, err
	}
	var e struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
	}
	if err := json.Unmarshal(env, &e); err != nil {
		return nil, nil, fmt.Errorf("not a DSSE envelope: %w", err)
	}
	if e.PayloadType != ctypes.IntotoPayloadType {
		return nil, nil, fmt.Errorf("DSSE payload type %q, want %q", e.PayloadType, ctypes.IntotoPayloadType)
	}
	raw, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		return nil, nil, fmt.Errorf("DSSE payload is not base64: %w", err)
	}
	st, err := parseStatement(raw)
	if err != nil {
		return nil, nil, err
	}
	return st, raw, nil
}

// explain re-reads the attestations cosign rejected and names, per layer, the subject digest
// or certificate identity/issuer that did not match; otherwise it returns cosign's error.
func explain(ref name.Digest, h v1.Hash, p sign.Policy, co *cosign.CheckOpts, cerr error) error {
	se, err := ociremote.SignedEntity(ref, co.RegistryClientOpts...)
	if err != nil {
		return fmt.Errorf("%s: %w", ref, cerr)
	}
	atts, err := se.Attestations()
	if err != nil {
		return fmt.Errorf("%s: %w", ref, cerr)
	}
	list, err := atts.Get()
	if err != nil || len(list) == 0 {
		return fmt.Errorf("%s: %w: no cosign attestation tag or no attestation layers (cosign: %w)", ref, ErrNoAttestation, cerr)
	}
	var problems []error
	for i, a := range list {
		if e := diagnose(h, p, a); e != nil {
			problems = append(problems, fmt.Errorf("attestation %d: %w", i+1, e))
		}
	}
	if len(problems) == 0 {
		return fmt.Errorf("%s: %w accepted by cosign: %w", ref, ErrNoAttestation, cerr)
	}
	return fmt.Errorf("%s: %w matches the policy: %w (cosign: %w)", ref, ErrNoAttestation, errors.Join(problems...), cerr)
}

func diagnose(h v1.Hash, p sign.Policy, a oci.Signature) error {
	if len(p.Roots) > 0 {
		if c, err := a.Cert(); err != nil || c == nil {
			return fmt.Errorf("%w: attestation carries no certificate (signed with a key?)", sign.ErrUntrustedCA)
		} else {
			sans := cryptoutils.GetSubjectAlternateNames(c)
			if !sign.MatchSAN(sans, p) {
				want := fmt.Sprintf("%q", p.Identity)
				if p.IdentityRegexp != "" {
					want = fmt.Sprintf("matching %q", p.IdentityRegexp)
				}
				return fmt.Errorf("%w: certificate identity %q, want %s", sign.ErrWrongIdentity, strings.Join(sans, ", "), want)
			}
			if iss := (&cosign.CertExtensions{Cert: c}).GetIssuer(); iss != p.Issuer {
				return fmt.Errorf("%w: certificate OIDC issuer %q, want %q", sign.ErrWrongIssuer, iss, p.Issuer)
			}
		}
	}
	st, _, err := decode(a)
	if err != nil {
		return fmt.Errorf("%w: %v", sign.ErrTampered, err)
	}
	if !st.names(h) {
		return fmt.Errorf("%w: statement (%s) subject is %v, image is %s", sign.ErrDigestMismatch, st.PredicateType, st.digests(), h)
	}
	return nil
}
