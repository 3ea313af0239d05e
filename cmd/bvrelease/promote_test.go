package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/attest/sign/keyless"
	"github.com/bitvault/bitvault/internal/testsupport/attesttest"
	"github.com/bitvault/bitvault/internal/testsupport/githubtest"
	"github.com/bitvault/bitvault/internal/testsupport/gitopstest"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
	"github.com/bitvault/bitvault/internal/testsupport/sigstoretest"
	"github.com/bitvault/bitvault/release"
)

// TestPromoteCommand runs `bvrelease promote` on keyless release images (trust
// from bvrelease.yaml's signing section) against a local bare GitOps
// repository and a fake GitHub API, and `--dry-run` on a dry-run release record.
func TestPromoteCommand(t *testing.T) {
	ctx := context.Background()
	w := sigstoretest.Workflow{Repository: "bitvault/bitvault", Ref: "refs/tags/v1.2.3", SHA: strings.Repeat("ab", 20),
		WorkflowPath: ".github/workflows/release.yml", EventName: "push", RunID: "5"}
	ss := sigstoretest.New(t, w)
	ss.Env(t)
	s, err := keyless.FromEnv(ctx, keyless.Config{FulcioURL: ss.FulcioURL, RekorURL: ss.RekorURL, TrustedRoot: ss.TrustedRoot(), IgnoreSCT: true})
	if err != nil {
		t.Fatal(err)
	}
	host := registrytest.Start(t)
	push := func(repo string, signer attestsign.Signer, o attesttest.Options) string {
		r, err := name.NewRepository(host + "/bitvault/" + repo)
		if err != nil {
			t.Fatal(err)
		}
		fx := registrytest.Push(t, r, 2)
		if signer != nil {
			attesttest.Attest(t, signer, fx.Index, fx.Children, o)
		}
		return fx.Index.DigestStr()
	}
	good := attesttest.Options{Builder: w.Identity(), Repository: w.Repository, Ref: w.Ref}
	bitvaultd, worker := push("bitvaultd", s, good), push("bitvault-worker", s, good)
	unsigned := push("bitvaultd", nil, good)

	// The repository: bvrelease.yaml (signing + gitops), the trusted root, deploy/gitops.
	dir := t.TempDir()
	if err := gitopstest.Copy("../../deploy/gitops", filepath.Join(dir, "deploy", "gitops")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "Dockerfile"), "FROM scratch\n")
	writeFile(t, filepath.Join(dir, "trusted_root.json"), string(ss.TrustedRoot()))
	writeFile(t, filepath.Join(dir, "bvrelease.yaml"), `version: 1
project: bitvault
registry: `+host+`/bitvault
artifacts:
  - name: bitvaultd
    context: .
  - name: bitvault-worker
    context: .
signing:
  identity_regexp: ^https://github\.com/bitvault/bitvault/\.github/workflows/release\.yml@refs/tags/v[0-9]+\.[0-9]+\.[0-9]+$
  issuer: https://token.actions.githubusercontent.com
  trusted_root: trusted_root.json
gitops:
  repo: bitvault/gitops
  template: deploy/gitops
  environments:
    dev: envs/dev/values.dev.yaml
    staging: envs/staging/values.staging.yaml
    prod: envs/prod/values.prod.yaml
  reviewers: [bitvault/release-managers]
`)
	bare := gitopstest.Bare(t, "../../deploy/gitops", "main")
	gh := githubtest.New(t, "bitvault", "gitops", "tok")
	t.Setenv("GITOPS_TOKEN", "tok")
	t.Setenv("GITHUB_API_URL", "")
	t.Setenv("GITHUB_SERVER_URL", "")

	// A dry-run release record with the dry-run CA's policy beside it.
	dry := t.TempDir()
	eph, err := attestsign.NewEphemeral(filepath.Join(dry, "sign"))
	if err != nil {
		t.Fatal(err)
	}
	dryOpts := attesttest.Options{Builder: attestsign.DryRunIdentity, Repository: "local/bitvault", Ref: "local", Skip: []string{attesttest.Vuln}}
	dryDigest := push("bitvaultd", eph, dryOpts)
	policy, _ := json.Marshal(eph.Policy())
	writeFile(t, filepath.Join(dry, "sign", "policy.json"), string(policy))
	dryRec := release.Record{Project: "bitvault", Version: "0.0.0-abcdef-dirty", DryRun: true, Artifacts: []release.ArtifactRecord{{
		Name: "bitvaultd", Digest: dryDigest, Published: &release.PublishRecord{Repository: host + "/bitvault/bitvaultd", Reference: host + "/bitvault/bitvaultd@" + dryDigest},
	}}}
	recData, _ := json.Marshal(dryRec)
	writeFile(t, filepath.Join(dry, "release.json"), string(recData))

	real := []string{"promote", "--env", "dev", "--version", "1.2.3", "--digest", "bitvaultd=" + bitvaultd, "--digest", "bitvault-worker=" + worker,
		"--gitops-remote", bare, "--github-api", gh.URL}
	for _, tc := range []struct {
		name  string
		setup func()
		args  []string
		code  int
		want  []string
	}{
		{"opens the pull request", nil, real, 0, []string{"VERIFY", "bitvaultd index", "signature ok", "provenance ok", "vuln ok",
			"promote: dev: opened pull request #1 https://github.com/bitvault/gitops/pull/1 (branch bvrelease/promote-dev-v1.2.3)"}},
		{"second run updates it", nil, real, 0, []string{"promote: dev: updated pull request #1"}},
		{"token missing", func() { os.Setenv("GITOPS_TOKEN", "") }, real, exitUsage, []string{"no GitHub token: set GITOPS_TOKEN"}},
		{"not a digest", nil, []string{"promote", "--env", "dev", "--digest", "bitvaultd=latest"}, exitUsage, []string{"bitvaultd=latest: not a digest"}},
		{"malformed --digest", nil, []string{"promote", "--env", "dev", "--digest", "sha256:abc"}, exitUsage, []string{"want ARTIFACT=sha256:<digest>"}},
		{"no --env", nil, []string{"promote"}, exitUsage, []string{"--env: say which environment"}},
		{"unknown env", nil, append(append([]string{}, real...), "--env", "qa"), exitUsage, []string{`--env "qa": not an environment`, "dev, prod, staging"}},
		{"unsigned image", nil, []string{"promote", "--env", "staging", "--digest", "bitvaultd=" + unsigned, "--gitops-remote", bare, "--github-api", gh.URL}, exitFailed,
			[]string{"signature FAIL", "refusing to promote: 3 check(s) failed", "bitvaultd index (" + unsigned + "): signature"}},
		{"token without pull-requests: write", func() { gh.ReadOnly(true) }, append(append([]string{}, real...), "--env", "staging"), exitFailed,
			[]string{"403 Resource not accessible by integration", "needs `pull-requests: write`"}},
		{"dry-run record without --dry-run", nil, []string{"promote", "--env", "dev", "--from", filepath.Join(dry, "release.json")}, exitUsage,
			[]string{"is a dry-run release", "only be promoted with --dry-run"}},
		{"dry-run record", nil, []string{"promote", "--env", "dev", "--from", filepath.Join(dry, "release.json"), "--dry-run", "--dist", dry}, 0,
			[]string{"vuln not-scanned", "DIFF (", "+    digest: " + dryDigest + " # set by bvrelease promote", "PULL REQUEST BODY (", "## Promote bitvault v0.0.0-abcdef-dirty to dev",
				"dry-run: would propose bitvaultd to dev on bitvault/gitops as branch bvrelease/promote-dev-v0.0.0-abcdef-dirty"}},
		{"no record", nil, []string{"promote", "--env", "dev", "--dry-run"}, exitUsage, []string{"no release record at", "--digest"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			defer func() { os.Setenv("GITOPS_TOKEN", "tok"); gh.ReadOnly(false) }()
			out, code := run(t, dir, tc.args...)
			flat := spaces.ReplaceAllString(out, " ")
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(flat, w) && !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "tok@") || strings.Contains(out, "Bearer") {
				t.Errorf("output shows credentials:\n%s", out)
			}
		})
	}
	if prs := gh.PRs(); len(prs) != 1 || prs[0].Head != "bvrelease/promote-dev-v1.2.3" || len(prs[0].Teams) != 1 {
		t.Errorf("pull requests %+v", prs)
	}
	// The dry-run was recorded in the record it promoted, with its files in dist/promote.
	var rec release.Record
	data, _ := os.ReadFile(filepath.Join(dry, "release.json"))
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Promotions) != 1 || rec.Promotions[0].Status != "dry-run" || rec.Promotions[0].Diff != "promote/dev.diff" {
		t.Errorf("record promotions %+v", rec.Promotions)
	}
	if _, err := os.Stat(filepath.Join(dry, "promote", "dev.md")); err != nil {
		t.Error(err)
	}

	// Merged: the environment is at the digests; a run is a no-op.
	gitopstest.Git(t, bare, "update-ref", "refs/heads/main", "bvrelease/promote-dev-v1.2.3")
	head := gitopstest.Git(t, bare, "rev-parse", "main")
	out, code := run(t, dir, real...)
	if code != 0 || !strings.Contains(out, "already promoted: dev (envs/dev/values.dev.yaml in bitvault/gitops@main) is at these digests; nothing to do") {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if gitopstest.Git(t, bare, "rev-parse", "main") != head || len(gh.PRs()) != 1 {
		t.Errorf("already promoted, yet something changed")
	}
}
