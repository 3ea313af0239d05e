package promote

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/bitvault/bitvault/attest/admission"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/attest"
	"github.com/bitvault/bitvault/release/sign"
)

// DefaultStageEnv is the environment a dry-run release promotes to.
const DefaultStageEnv = "dev"

// Stage is the last stage of a dry-run release: the promotion of its digests
// to Env (default dev) against gitops.template, offline, leaving
// dist/promote/<env>.diff and <env>.md and recording the result. A real
// release is promoted explicitly (bvrelease promote); there the stage skips.
type Stage struct{ Env string }

func (Stage) Name() string { return "promote" }

// OutDir is where promotions leave their diffs and pull request bodies.
func OutDir(r *release.Release) string { return filepath.Join(r.Dist, "promote") }

func (s Stage) Run(ctx context.Context, r *release.Release) error {
	env := s.Env
	if env == "" {
		env = DefaultStageEnv
	}
	g := r.Config.GitOps
	switch {
	case !r.DryRun:
		return release.Skip("a release is promoted explicitly: bvrelease promote --env %s --from %s", env, r.RecordPath())
	case g == nil:
		return release.Skip("bvrelease.yaml has no gitops section")
	case g.Template == "":
		return release.Skip("no gitops.template to promote against in a dry-run")
	}
	if _, ok := g.Environments[env]; !ok {
		return release.Skip("gitops.environments has no %s", env)
	}
	images := selected(r, FromRecord(r.Record))
	if len(images) == 0 {
		return release.Skip("no published image to promote")
	}
	e, err := PolicyExpect(r.Config, sign.PolicyPath(r), admission.Builder{ID: attest.BuilderID(), Repository: attest.Repository(r), Ref: attest.Ref()})
	if err != nil {
		return err
	}
	res, err := Promote(ctx, Request{
		Config: r.Config, Env: env, Project: r.Config.Project, Version: r.Record.Version, Images: images,
		Expect: e, RemoteOptions: sign.RemoteOptions(ctx), DryRun: true, OutDir: OutDir(r), Log: r.Log,
	})
	if res != nil && res.Status != "" {
		r.Record.SetPromotion(res.Record(r.Dist, true))
	}
	if err != nil {
		return err
	}
	if res.Status == StatusAlready {
		r.Logf("promote: %s: the template is already at these digests", env)
		return nil
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(res.Diff), "\n"), "\n") {
		r.Logf("    %s", l)
	}
	r.Logf("promote: dry-run: %s would be proposed on %s as %s; diff %s, pull request body %s",
		env, g.Repo, res.Branch, rel(r.Dist, res.DiffPath), rel(r.Dist, res.BodyPath))
	return nil
}

// selected keeps the images of the artifacts this run selected.
func selected(r *release.Release, images []Image) []Image {
	var out []Image
	for _, im := range images {
		for _, a := range r.Artifacts() {
			if a.Name == im.Artifact {
				out = append(out, im)
			}
		}
	}
	return out
}

func rel(dist, p string) string {
	if r, err := filepath.Rel(filepath.Dir(dist), p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}
