package promote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/bitvault/bitvault/release/trust"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bitvault/bitvault/attest/admission"
	attestscan "github.com/bitvault/bitvault/attest/scan"
	"github.com/bitvault/bitvault/release/config"
)

// VerifyError refuses a promotion: the checks that failed, per image and manifest.
type VerifyError struct {
	Failures []string
	Reports  []admission.Report
}

func (e *VerifyError) Error() string {
	return fmt.Sprintf("refusing to promote: %d check(s) failed; only images that verify as admission will are promoted:\n  %s",
		len(e.Failures), strings.Join(e.Failures, "\n  "))
}

// Verify runs admission's checks on every image and fails with a *VerifyError
// naming each failed check (image, manifest, digest, check, why).
func Verify(ctx context.Context, images []Image, e admission.Expect, opts ...remote.Option) ([]admission.Report, error) {
	var reports []admission.Report
	var failures []string
	for _, im := range images {
		ref, err := name.NewDigest(im.Ref())
		if err != nil {
			return reports, inputErr("%s: %s: %v", im.Artifact, im.Ref(), err)
		}
		rep, err := admission.Image(ctx, ref, e, opts...)
		if err != nil {
			rep.Image = ref.String()
			rep.Checks = append(rep.Checks, admission.Check{Manifest: "index", Digest: ref.DigestStr(), Check: "read", Status: admission.Failed, Detail: err.Error()})
		}
		for _, c := range rep.Checks {
			if c.Status == admission.Failed {
				failures = append(failures, fmt.Sprintf("%s %s (%s): %s: %s", im.Artifact, c.Manifest, c.Digest, c.Check, c.Detail))
			}
		}
		reports = append(reports, rep)
	}
	if len(failures) > 0 {
		return reports, &VerifyError{Failures: failures, Reports: reports}
	}
	return reports, nil
}

// PolicyExpect is what a dry-run release's images must satisfy: the policy its
// sign stage left in dist/sign/policy.json (read as the verify stage reads it),
// provenance naming builder, the vulnerability allow-list beside the
// configuration; a manifest without a vulnerability attestation is NOT SCANNED
// (a dry-run without a DB), never clean.
func PolicyExpect(cfg *config.Config, policyPath string, builder admission.Builder) (admission.Expect, error) {
	var e admission.Expect
	data, err := os.ReadFile(policyPath)
	if err != nil {
		return e, fmt.Errorf("no verification policy (%w): a dry-run release's signatures are checked against the policy its sign stage wrote; run the release (bvrelease release --dry-run) first", err)
	}
	if err := json.Unmarshal(data, &e.Policy); err != nil {
		return e, fmt.Errorf("%s: %w", policyPath, err)
	}
	e.Builder = builder
	e.AllowUnscanned = true
	e.Allow, err = attestscan.LoadAllowList(cfg.Abs(attestscan.DefaultAllowList))
	return e, err
}

// ConfigExpect is what a release's images must satisfy: signed by
// bvrelease.yaml's signing identity and issuer, checked against trustedRoot
// (a trusted_root.json; default signing.trusted_root, else Sigstore's
// public-good root), provenance from the same identity, every platform
// manifest scanned clean (with the allow-list beside the configuration).
func ConfigExpect(cfg *config.Config, trustedRoot string) (admission.Expect, error) {
	sg := cfg.Signing
	if sg.Identity == "" && sg.IdentityRegexp == "" {
		return admission.Expect{}, &InputError{Msg: fmt.Sprintf("%s: signing: names no identity (identity or identity_regexp, with issuer): promotion verifies every image against the release signer", cfg.Path)}
	}
	return trust.Expect(cfg, trustedRoot)
}

// IsVerifyError reports whether err refused the promotion for failed checks.
func IsVerifyError(err error) (*VerifyError, bool) {
	var ve *VerifyError
	ok := errors.As(err, &ve)
	return ve, ok
}
