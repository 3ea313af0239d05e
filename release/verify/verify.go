// Package verify is the pipeline stage that checks, before anything is
// recorded or promoted, what admission will check: every signed index and
// platform manifest carries a signature that the signer's policy
// (dist/sign/policy.json: trusted roots + identity + issuer, or a public key)
// accepts, verified with cosign's own verification. A failure names the
// manifest and what did not match, and the release is not recorded.
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/release"
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
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("verification failed; the release is not recorded:\n  %s", strings.Join(failures, "\n  "))
	}
	r.Logf("verify: %d signatures verified as admission will", checked)
	return nil
}
