// Package sign is the pipeline stage that signs every published index and
// every platform manifest the way cosign v2 stores signatures
// (sha256-<digest>.sig). The signer is a cosign key (--key: a key file with
// COSIGN_PASSWORD, or a KMS URI) or, in a dry-run, an ephemeral local CA whose
// certificates say identity https://bitvault.dev/dry-run and issuer dry-run —
// never mistakable for a release. Keyless signing in CI (GitHub OIDC → Fulcio
// → Rekor) is not implemented yet: a real release without --key fails here.
//
// The verification policy that admits exactly this signer is written to
// dist/sign/policy.json for the verify stage.
package sign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	attestsign "github.com/bitvault/bitvault/attest/sign"
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

func signer(ctx context.Context, r *release.Release) (attestsign.Signer, error) {
	switch {
	case r.SigningKey != "":
		return attestsign.NewKey(ctx, r.SigningKey, func(bool) ([]byte, error) { return []byte(os.Getenv("COSIGN_PASSWORD")), nil })
	case r.DryRun:
		return attestsign.NewEphemeral(filepath.Join(r.Dist, "sign"))
	default:
		return nil, errors.New("keyless signing (GitHub OIDC → Fulcio → Rekor) is not implemented yet: pass --key with a cosign key (COSIGN_PASSWORD) or a KMS URI, or run with --dry-run")
	}
}

func (Stage) Run(ctx context.Context, r *release.Release) error {
	s, err := signer(ctx, r)
	if err != nil {
		return err
	}
	r.Signer = s
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
	data, err := json.MarshalIndent(s.Policy(), "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(PolicyPath(r), data, 0o644)
}
