// Package sign is the pipeline stage that signs every published index and
// every platform manifest the way cosign v2 stores signatures
// (sha256-<digest>.sig). The signer is, in order:
//
//   - a cosign key (--key: a key file with COSIGN_PASSWORD, or a KMS URI);
//   - keyless (--keyless, or any non-dry-run release in GitHub Actions): the
//     job's OIDC token → a Fulcio certificate for the workflow identity →
//     every signature entered in Rekor (attest/sign/keyless), with the
//     Fulcio, Rekor and trusted root of bvrelease.yaml's signing section or
//     the flags (default: Sigstore's public-good instance);
//   - in a dry-run, an ephemeral local CA whose certificates say identity
//     https://bitvault.dev/dry-run and issuer dry-run — never mistakable for
//     a release.
//
// Anything else (a real release outside GitHub Actions with no key) is refused
// with what to do. The verification policy that admits exactly this signer —
// narrowed to bvrelease.yaml's identity for keyless — is written to
// dist/sign/policy.json for the verify stage, with the trusted root beside it.
package sign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/bitvault/bitvault/release/trust"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/attest/sign/keyless"
	"github.com/bitvault/bitvault/internal/atomicfile"
	"github.com/bitvault/bitvault/release"
)

// Stage signs images.
type Stage struct{}

func (Stage) Name() string { return "sign" }

// PolicyPath is where the stage leaves the verification policy.
func PolicyPath(r *release.Release) string { return filepath.Join(r.Dist, "sign", "policy.json") }

// RemoteOptions are the registry options of the signing and verify stages.
func RemoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}
}

// TrustedRootPath is where the stage leaves the trusted root keyless signing used.
func TrustedRootPath(r *release.Release) string {
	return filepath.Join(r.Dist, "sign", "trusted_root.json")
}

func signer(ctx context.Context, r *release.Release) (attestsign.Signer, error) {
	inActions := os.Getenv("GITHUB_ACTIONS") == "true"
	switch {
	case r.SigningKey != "" && r.Keyless:
		return nil, errors.New("--key and --keyless: choose one signer")
	case r.SigningKey != "":
		return attestsign.NewKey(ctx, r.SigningKey, func(bool) ([]byte, error) { return []byte(os.Getenv("COSIGN_PASSWORD")), nil })
	case r.Keyless || (inActions && !r.DryRun):
		return keylessSigner(ctx, r)
	case r.DryRun:
		return attestsign.NewEphemeral(filepath.Join(r.Dist, "sign"))
	default:
		return nil, errors.New("no signer for a real release: run it in GitHub Actions (keyless; the job needs `permissions: id-token: write`), or pass --key with a cosign key (COSIGN_PASSWORD) or a KMS URI, or --dry-run")
	}
}

func keylessSigner(ctx context.Context, r *release.Release) (attestsign.Signer, error) {
	sg := r.Config.Signing
	fulcio, rekor, trPath := or(r.FulcioURL, sg.Fulcio), or(r.RekorURL, sg.Rekor), or(r.TrustedRoot, sg.TrustedRoot)
	if trPath != "" {
		trPath = r.Config.Abs(trPath)
	} else {
		r.Logf("sign: fetching Sigstore's public-good trusted root (TUF)")
	}
	tr, parsed, err := trust.TrustedRoot(trPath)
	if err != nil {
		return nil, fmt.Errorf("%w (--trusted-root or signing.trusted_root)", err)
	}
	ignoreSCT := trust.IgnoreSCT(parsed)
	s, err := keyless.FromEnv(ctx, keyless.Config{
		FulcioURL: fulcio, RekorURL: rekor, TrustedRoot: tr, IgnoreSCT: ignoreSCT,
		Notify: func(attempt int, err error, wait time.Duration) {
			r.Logf("sign: attempt %d failed (%v); retrying in %s", attempt, err, wait)
		},
	})
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(TrustedRootPath(r), tr, 0o644); err != nil {
		return nil, err
	}
	r.Logf("sign: keyless as %s (Fulcio %s, Rekor %s)", s.Identity(), fulcio, rekor)
	return s, nil
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Policy is what the verify stage requires: the signer's own policy, with a
// keyless signer's exact identity replaced by bvrelease.yaml's (so a release
// from an unexpected workflow or ref fails here, as it would at admission).
func Policy(r *release.Release, s attestsign.Signer) attestsign.Policy {
	p := s.Policy()
	sg := r.Config.Signing
	if _, ok := s.(*keyless.Signer); ok && (sg.Identity != "" || sg.IdentityRegexp != "") {
		p.Identity, p.IdentityRegexp, p.Issuer = sg.Identity, sg.IdentityRegexp, sg.Issuer
	}
	return p
}

// Signer is the release's signer, shared by the stages that sign (sign,
// attest, dist): the one already chosen in this run (r.Signer), else chosen as
// the package comment says and kept in r.Signer.
func Signer(ctx context.Context, r *release.Release) (attestsign.Signer, error) {
	if r.Signer != nil {
		return r.Signer, nil
	}
	s, err := signer(ctx, r)
	if err != nil {
		return nil, err
	}
	r.Signer = s
	return s, nil
}

func (Stage) Run(ctx context.Context, r *release.Release) error {
	s, err := Signer(ctx, r)
	if err != nil {
		return err
	}
	opts := RemoteOptions(ctx)
	for _, a := range r.Artifacts() {
		ar := r.Artifact(a.Name)
		if ar.Published == nil {
			return fmt.Errorf("sign %s: not published; run the publish stage first", a.Name)
		}
		repo := ar.Published.Repository
		targets := []struct{ platform, digest string }{{"index", ar.Digest}}
		for _, m := range ar.Manifests {
			targets = append(targets, struct{ platform, digest string }{m.Platform, m.Digest.String()})
		}
		ar.Signatures = nil
		for _, t := range targets {
			ref, err := name.NewDigest(repo + "@" + t.digest)
			if err != nil {
				return fmt.Errorf("sign %s %s: %w", a.Name, t.platform, err)
			}
			if err := attestsign.SignImage(ctx, ref, s, opts...); err != nil {
				return fmt.Errorf("sign %s %s: %w", a.Name, t.platform, err)
			}
			ar.Signatures = append(ar.Signatures, release.SignatureRecord{Platform: t.platform, Reference: ref.String(), Signer: s.Identity()})
		}
		r.Logf("sign: %s: index and %d platform manifests signed by %s", a.Name, len(ar.Manifests), s.Identity())
	}
	data, err := json.MarshalIndent(Policy(r, s), "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(PolicyPath(r), data, 0o644)
}
