// Package attestation builds in-toto v1 statements (SLSA provenance, SBOM and vulnerability
// predicates), signs them in a DSSE envelope with an attest/sign Signer and stores them exactly
// the way cosign v2 stores attestations, so that `cosign verify-attestation`, Kyverno
// `type: Cosign` attestation rules and the policy-controller read them without translation.
//
// Choices:
//
//   - Format: one DSSE envelope (payloadType application/vnd.in-toto+json, signature over the
//     DSSE PAE, built by sigstore's own dsse.WrapSigner) per layer of the manifest tagged
//     sha256-<hex>.att in the image's own repository; layer media type
//     application/vnd.dsse.envelope.v1+json; annotations predicateType and, for certificate
//     signers, dev.sigstore.cosign/certificate and dev.sigstore.cosign/chain. Writing goes through
//     cosign's static.NewAttestation + ocimutate.AttachAttestationToEntity +
//     ociremote.WriteAttestations, as `cosign attest` does. No Rekor entry, no OCI referrers,
//     no new-style bundle (like attest/sign).
//   - Idempotent: cosign's own duplicate detector compares layer digests, which never match for
//     ECDSA (a fresh signature every time), so Attach uses its own detector: a layer with the
//     same annotations whose envelope carries the same statement and verifies under the
//     signer's key is the same attestation. A different statement or signer adds a layer.
//   - Attach refuses a statement whose subject does not name ref's digest.
//   - Verification is cosign's: cosign.VerifyImageAttestations with the CheckOpts attest/sign
//     builds for signatures plus cosign.IntotoSubjectClaimVerifier (what verify-attestation
//     uses); the predicate type is then checked on the signed statement, not the annotation.
package attestation

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const (
	// StatementType is the in-toto v1 statement _type.
	StatementType = "https://in-toto.io/Statement/v1"
	// SLSAProvenanceV1 is the SLSA provenance v1 predicate type.
	SLSAProvenanceV1 = "https://slsa.dev/provenance/v1"
	// CycloneDX is the predicate type cosign uses for CycloneDX SBOMs (--type cyclonedx).
	CycloneDX = "https://cyclonedx.org/bom"
)

type subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

type statement struct {
	Type          string          `json:"_type"`
	Subject       []subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate,omitempty"`
}

// Statement builds an in-toto v1 Statement for one subject: subjectName (e.g. the repository)
// and the sha256 digest of the manifest.
func Statement(subjectName string, digest v1.Hash, predicateType string, predicate any) ([]byte, error) {
	if subjectName == "" {
		return nil, errors.New("in-toto statement: empty subject name")
	}
	if digest.Algorithm != "sha256" || len(digest.Hex) != 64 {
		return nil, fmt.Errorf("in-toto statement: subject digest %q is not a sha256 digest", digest)
	}
	if predicateType == "" {
		return nil, errors.New("in-toto statement: empty predicate type")
	}
	st := statement{
		Type:          StatementType,
		Subject:       []subject{{Name: subjectName, Digest: map[string]string{"sha256": digest.Hex}}},
		PredicateType: predicateType,
	}
	if predicate != nil {
		b, err := json.Marshal(predicate)
		if err != nil {
			return nil, fmt.Errorf("in-toto statement: predicate: %w", err)
		}
		if len(b) == 0 || b[0] != '{' {
			return nil, fmt.Errorf("in-toto statement: predicate must be a JSON object, got %.20s", b)
		}
		st.Predicate = b
	}
	return json.Marshal(st)
}

// parseStatement decodes an in-toto v1 statement and checks its required fields.
func parseStatement(b []byte) (*statement, error) {
	var st statement
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("not an in-toto statement: %w", err)
	}
	if st.Type != StatementType {
		return nil, fmt.Errorf("in-toto statement _type %q, want %q", st.Type, StatementType)
	}
	if st.PredicateType == "" {
		return nil, errors.New("in-toto statement without predicateType")
	}
	if len(st.Subject) == 0 {
		return nil, errors.New("in-toto statement without subject")
	}
	return &st, nil
}

// names reports whether the statement has a subject with sha256 digest h.
func (st *statement) names(h v1.Hash) bool {
	for _, s := range st.Subject {
		if d, ok := s.Digest["sha256"]; ok && h.Algorithm == "sha256" && d == h.Hex {
			return true
		}
	}
	return false
}

func (st *statement) digests() []string {
	var out []string
	for _, s := range st.Subject {
		for alg, d := range s.Digest {
			out = append(out, alg+":"+d)
		}
	}
	return out
}

// Provenance is a SLSA provenance v1 predicate (https://slsa.dev/provenance/v1) with the
// fields bvrelease fills.
type Provenance struct {
	BuildType             string
	ExternalParameters    map[string]any
	InternalParameters    map[string]any
	ResolvedDependencies  []Resource
	BuilderID             string
	InvocationID          string
	StartedOn, FinishedOn time.Time
}

// Resource is a SLSA ResourceDescriptor.
type Resource struct {
	URI    string
	Digest map[string]string
	Name   string
}

// Predicate returns the JSON shape of slsa.dev/provenance/v1: buildDefinition{buildType,
// externalParameters, internalParameters, resolvedDependencies}, runDetails{builder{id},
// metadata{invocationId, startedOn, finishedOn}}. Empty optional fields are left out;
// externalParameters (required by SLSA) is always present. Times are RFC 3339 UTC.
func (p Provenance) Predicate() map[string]any {
	ext := p.ExternalParameters
	if ext == nil {
		ext = map[string]any{}
	}
	bd := map[string]any{"buildType": p.BuildType, "externalParameters": ext}
	if len(p.InternalParameters) > 0 {
		bd["internalParameters"] = p.InternalParameters
	}
	if len(p.ResolvedDependencies) > 0 {
		deps := make([]map[string]any, 0, len(p.ResolvedDependencies))
		for _, r := range p.ResolvedDependencies {
			d := map[string]any{}
			if r.URI != "" {
				d["uri"] = r.URI
			}
			if len(r.Digest) > 0 {
				d["digest"] = r.Digest
			}
			if r.Name != "" {
				d["name"] = r.Name
			}
			deps = append(deps, d)
		}
		bd["resolvedDependencies"] = deps
	}
	rd := map[string]any{"builder": map[string]any{"id": p.BuilderID}}
	md := map[string]any{}
	if p.InvocationID != "" {
		md["invocationId"] = p.InvocationID
	}
	if !p.StartedOn.IsZero() {
		md["startedOn"] = p.StartedOn.UTC().Format(time.RFC3339)
	}
	if !p.FinishedOn.IsZero() {
		md["finishedOn"] = p.FinishedOn.UTC().Format(time.RFC3339)
	}
	if len(md) > 0 {
		rd["metadata"] = md
	}
	return map[string]any{"buildDefinition": bd, "runDetails": rd}
}
