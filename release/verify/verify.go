// Package verify is the pipeline stage that checks, before anything is
// recorded or promoted, what admission will check: every signed index and
// platform manifest carries a signature that the signer's policy
// (dist/sign/policy.json: trusted roots + identity + issuer, or a public key)
// accepts, and a SLSA provenance v1 attestation for its own digest, signed the
// same way and naming the expected builder — all verified with cosign's own
// verification. A failure names the manifest and what did not match, and the
// release is not recorded.
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bitvault/bitvault/attest/attestation"
	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/attest"
	"github.com/bitvault/bitvault/release/sign"
)

// Stage verifies signatures.
type Stage struct{}

func (Stage) Name() string { return "verify" }

func (Stage) Run(ctx context.Context, r *release.Release) error {
	data, err := os.ReadFile(sign.PolicyPath(r))
	if err != nil {
		return fmt.Errorf("no verification policy (%w); run the sign stage first", err)
	}
	var p attestsign.Policy
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("%s: %w", sign.PolicyPath(r), err)
	}
	opts := sign.RemoteOptions(ctx)
	var failures []string
	checked := 0
	for _, a := range r.Artifacts() {
		ar := r.Artifact(a.Name)
		if len(ar.Signatures) == 0 {
			failures = append(failures, a.Name+": no signature recorded")
			continue
		}
		for i := range ar.Signatures {
			sr := &ar.Signatures[i]
			ref, err := name.NewDigest(sr.Reference)
			if err != nil {
				return err
			}
			vs, err := attestsign.Verify(ctx, ref, p, opts...)
			sr.Verified = err == nil && len(vs) > 0
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s %s: %v", a.Name, sr.Platform, err))
				continue
			}
			sr.Identity, sr.Issuer = vs[0].Identity, vs[0].Issuer
			checked++
			if !sr.Provenance {
				failures = append(failures, fmt.Sprintf("%s %s: no SLSA provenance attached", a.Name, sr.Platform))
				continue
			}
			if err := provenance(ctx, ref, p, opts); err != nil {
				failures = append(failures, fmt.Sprintf("%s %s: provenance: %v", a.Name, sr.Platform, err))
				continue
			}
			sr.ProvenanceVerified = true
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("verification failed; the release is not recorded:\n  %s", strings.Join(failures, "\n  "))
	}
	r.Logf("verify: %d signatures and their SLSA provenance verified as admission will", checked)
	return nil
}

// provenance checks that ref carries a SLSA provenance v1 attestation for its
// own digest, signed per p, naming the expected builder.
func provenance(ctx context.Context, ref name.Digest, p attestsign.Policy, opts []remote.Option) error {
	stmts, err := attestation.VerifyAttestations(ctx, ref, attestation.SLSAProvenanceV1, p, opts...)
	if err != nil {
		return err
	}
	want := attest.BuilderID()
	var seen []string
	for _, st := range stmts {
		var s struct {
			Predicate struct {
				RunDetails struct {
					Builder struct {
						ID string `json:"id"`
					} `json:"builder"`
				} `json:"runDetails"`
			} `json:"predicate"`
		}
		if err := json.Unmarshal(st, &s); err != nil {
			return err
		}
		if s.Predicate.RunDetails.Builder.ID == want {
			return nil
		}
		seen = append(seen, s.Predicate.RunDetails.Builder.ID)
	}
	return fmt.Errorf("builder id %v, want %s", seen, want)
}
