// Package attest is the pipeline stage that attaches a SLSA provenance v1
// attestation — an in-toto statement in DSSE, signed by the release's signer,
// stored the way cosign stores attestations (sha256-<digest>.att) — to every
// index and every platform manifest.
//
// The provenance says: buildType bvrelease v1; externalParameters repository,
// ref and workflow (GitHub Actions' environment, "local" otherwise), the
// artifact, target, platforms and version; resolvedDependencies the source
// commit, the Dockerfile's digest and every base image (the stand-in used or
// the pinned upstream digest); runDetails the builder id (the workflow
// identity in CI, https://bitvault.dev/dry-run otherwise) and the invocation
// (the Actions run URL, or local:<host>).
package attest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/sign"
)

// BuildType names bvrelease's build recipe in the provenance.
const BuildType = "https://github.com/bitvault/bitvault/release/buildtypes/bvrelease/v1"

// Stage attaches provenance.
type Stage struct{}

func (Stage) Name() string { return "attest" }

// BuilderID is who built the release: the workflow identity in GitHub
// Actions, the dry-run identity otherwise.
func BuilderID() string {
	if w := os.Getenv("GITHUB_WORKFLOW_REF"); w != "" {
		return strings.TrimSuffix(os.Getenv("GITHUB_SERVER_URL"), "/") + "/" + w
	}
	return "https://bitvault.dev/dry-run"
}

func getenvOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func invocation() string {
	if id := os.Getenv("GITHUB_RUN_ID"); id != "" {
		return fmt.Sprintf("%s/%s/actions/runs/%s/attempts/%s", os.Getenv("GITHUB_SERVER_URL"), os.Getenv("GITHUB_REPOSITORY"), id, getenvOr("GITHUB_RUN_ATTEMPT", "1"))
	}
	h, _ := os.Hostname()
	return "local:" + h
}

// Provenance is the provenance of one artifact of the release.
func Provenance(r *release.Release, artifact string, started time.Time) (attestation.Provenance, error) {
	a, ok := r.Config.Artifact(artifact)
	if !ok {
		return attestation.Provenance{}, fmt.Errorf("no artifact %s", artifact)
	}
	df, err := os.ReadFile(r.Config.Abs(a.Dockerfile))
	if err != nil {
		return attestation.Provenance{}, err
	}
	repo := getenvOr("GITHUB_REPOSITORY", "local/"+r.Config.Project)
	deps := []attestation.Resource{
		{URI: "git+https://github.com/" + repo + "@" + r.Record.Commit, Digest: map[string]string{"gitCommit": r.Record.Commit}, Name: "source"},
		{URI: a.Dockerfile, Digest: map[string]string{"sha256": fmt.Sprintf("%x", sha256.Sum256(df))}, Name: "dockerfile"},
	}
	for _, b := range r.Record.Bases {
		if !slices.Contains(b.UsedBy, a.Name) {
			continue
		}
		d := b.Digest
		if d == "" { // upstream: the digest pinned in the reference
			d = b.Ref[strings.LastIndex(b.Ref, "@")+1:]
		}
		deps = append(deps, attestation.Resource{URI: "oci://" + b.Ref, Digest: map[string]string{"sha256": strings.TrimPrefix(d, "sha256:")}, Name: "base image (" + b.Used + ")"})
	}
	return attestation.Provenance{
		BuildType: BuildType,
		ExternalParameters: map[string]any{
			"repository": repo, "ref": getenvOr("GITHUB_REF", "local"), "workflow": getenvOr("GITHUB_WORKFLOW_REF", "local"),
			"artifact": a.Name, "target": a.Target, "dockerfile": a.Dockerfile, "platforms": r.Config.Platforms, "version": r.Record.Version,
		},
		InternalParameters:   map[string]any{"SOURCE_DATE_EPOCH": r.Record.SourceDateEpoch, "dryRun": r.DryRun},
		ResolvedDependencies: deps,
		BuilderID:            BuilderID(),
		InvocationID:         invocation(),
		StartedOn:            started.UTC(),
		FinishedOn:           time.Now().UTC(),
	}, nil
}

func (Stage) Run(ctx context.Context, r *release.Release) error {
	if r.Signer == nil {
		return fmt.Errorf("no signer: the sign stage must run before attest")
	}
	opts := sign.RemoteOptions(ctx)
	for _, a := range r.Artifacts() {
		ar := r.Artifact(a.Name)
		p, err := Provenance(r, a.Name, time.Now())
		if err != nil {
			return fmt.Errorf("attest %s: %w", a.Name, err)
		}
		for i := range ar.Signatures {
			sr := &ar.Signatures[i]
			ref, err := name.NewDigest(sr.Reference)
			if err != nil {
				return err
			}
			h, err := v1.NewHash(ref.DigestStr())
			if err != nil {
				return err
			}
			stmt, err := attestation.Statement(ref.Context().String(), h, attestation.SLSAProvenanceV1, p.Predicate())
			if err != nil {
				return fmt.Errorf("attest %s %s: %w", a.Name, sr.Platform, err)
			}
			if err := attestation.Attach(ctx, ref, stmt, r.Signer, opts...); err != nil {
				return fmt.Errorf("attest %s %s: %w", a.Name, sr.Platform, err)
			}
			sr.Provenance = true
		}
		r.Logf("attest: %s: SLSA provenance on the index and %d platform manifests", a.Name, len(ar.Manifests))
	}
	return nil
}
