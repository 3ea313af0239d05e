package promote_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bitvault/bitvault/attest/admission"
	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/testsupport/attesttest"
	"github.com/bitvault/bitvault/internal/testsupport/githubtest"
	"github.com/bitvault/bitvault/internal/testsupport/gitopstest"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/promote"
	"github.com/bitvault/bitvault/release/record"
	"github.com/bitvault/bitvault/release/sign"
)

const token = "ghs_test-token-never-printed"

// fixture: a registry holding signed and attested images (dry-run CA), a
// configuration whose gitops section names bitvault/gitops with the
// deploy/gitops layout, the GitOps repository as a local bare repository and a
// fake GitHub API for it.
type fixture struct {
	cfg       *config.Config
	expect    admission.Expect
	signer    attestsign.Signer
	policyDir string
	host      string
	images    map[string]promote.Image // bitvaultd, bitvault-worker: good; worker2: a newer worker
	unsigned  promote.Image
	noProv    promote.Image
	bare      string
	gh        *githubtest.Server
	repoDir   string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{images: map[string]promote.Image{}}
	f.host = registrytest.Start(t)
	f.policyDir = t.TempDir()
	s, err := attestsign.NewEphemeral(f.policyDir)
	if err != nil {
		t.Fatal(err)
	}
	f.signer = s
	f.expect = admission.Expect{Policy: s.Policy()}
	good := attesttest.Options{Builder: attestsign.DryRunIdentity, Repository: "local/bitvault", Ref: "local"}
	push := func(repo string, o *attesttest.Options) promote.Image {
		r, err := name.NewRepository(f.host + "/bitvault/" + repo)
		if err != nil {
			t.Fatal(err)
		}
		fx := registrytest.Push(t, r, 2)
		if o != nil {
			attesttest.Attest(t, s, fx.Index, fx.Children, *o)
		}
		return promote.Image{Artifact: repo, Repository: r.String(), Digest: fx.Index.DigestStr()}
	}
	f.images["bitvaultd"] = push("bitvaultd", &good)
	f.images["bitvault-worker"] = push("bitvault-worker", &good)
	w2 := push("bitvault-worker", &good)
	f.images["worker2"] = w2
	f.unsigned = push("bitvaultd", nil)
	noProv := good
	noProv.Skip = []string{attesttest.Provenance}
	f.noProv = push("bitvaultd", &noProv)

	f.repoDir = t.TempDir()
	if err := gitopstest.Copy("../../deploy/gitops", filepath.Join(f.repoDir, "gitops")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(f.repoDir, "Dockerfile"), "FROM scratch\n")
	writeFile(t, filepath.Join(f.repoDir, "bvrelease.yaml"), `version: 1
project: bitvault
registry: `+f.host+`/bitvault
artifacts:
  - name: bitvaultd
    context: .
  - name: bitvault-worker
    context: .
gitops:
  repo: bitvault/gitops
  base: main
  template: gitops
  environments:
    dev: envs/dev/values.dev.yaml
    staging: envs/staging/values.staging.yaml
    qa: envs/qa/values.qa.yaml
  reviewers: [alice, bitvault/release-managers]
`)
	f.cfg, err = config.Load(filepath.Join(f.repoDir, "bvrelease.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f.bare = gitopstest.Bare(t, "../../deploy/gitops", "main")
	f.gh = githubtest.New(t, "bitvault", "gitops", token)
	return f
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// request is a real promotion of the good images to env.
func (f *fixture) request(t *testing.T, env string, images ...promote.Image) promote.Request {
	cfg := *f.cfg
	g := *f.cfg.GitOps
	g.Images = maps(f.cfg.GitOps.Images)
	cfg.GitOps = &g
	if len(images) == 0 {
		images = []promote.Image{f.images["bitvaultd"], f.images["bitvault-worker"]}
	}
	return promote.Request{
		Config: &cfg, Env: env, Version: "1.2.3", Images: images, Expect: f.expect,
		GitRemote: f.bare, GitHubAPI: f.gh.URL, Token: token, OutDir: filepath.Join(t.TempDir(), "promote"),
		Author: promote.DefaultAuthor,
	}
}

func maps(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func writes(calls []string) []string {
	var out []string
	for _, c := range calls {
		if !strings.HasPrefix(c, "GET ") {
			out = append(out, c)
		}
	}
	return out
}

// assertOnlyDigests: the values file on branch differs from main only on the
// digest lines of the given artifacts, which now hold their digests.
func assertOnlyDigests(t *testing.T, bare, branch, file string, images ...promote.Image) {
	t.Helper()
	before := strings.Split(gitopstest.Show(t, bare, "main", file), "\n")
	after := strings.Split(gitopstest.Show(t, bare, branch, file), "\n")
	if len(before) != len(after) {
		t.Fatalf("%s: %d lines became %d", file, len(before), len(after))
	}
	changed := 0
	for i := range before {
		if before[i] == after[i] {
			continue
		}
		changed++
		ok := false
		for _, im := range images {
			if strings.Contains(after[i], "digest: "+im.Digest+" # set by bvrelease promote") && strings.HasPrefix(strings.TrimSpace(before[i]), "digest: sha256:0000") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s:%d: unexpected change:\n- %s\n+ %s", file, i+1, before[i], after[i])
		}
	}
	if changed != len(images) {
		t.Errorf("%s: %d lines changed, want %d", file, changed, len(images))
	}
	// Nothing else in the repository changed.
	if diff := gitopstest.Git(t, bare, "diff", "--name-only", "main", branch); diff != file {
		t.Errorf("files changed on %s: %q, want only %s", branch, diff, file)
	}
}

// TestPromoteTwice: the first run opens one pull request; a second run with the
// same digests updates it (no second pull request, no new commit); a third with
// a newer worker digest updates branch and pull request; once main has the
// digests, a run is a no-op.
func TestPromoteTwice(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	branch := "bvrelease/promote-dev-v1.2.3"
	file := "envs/dev/values.dev.yaml"

	q := f.request(t, "dev")
	res, err := promote.Promote(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != promote.StatusOpened || res.Branch != branch || res.PR != 1 || res.URL == "" {
		t.Fatalf("first run: %+v", res)
	}
	prs := f.gh.PRs()
	if len(prs) != 1 || prs[0].Head != branch || prs[0].Base != "main" || prs[0].Title != "Promote bitvault v1.2.3 to dev" {
		t.Fatalf("pull requests %+v", prs)
	}
	if !slices.Equal(prs[0].Reviewers, []string{"alice"}) || !slices.Equal(prs[0].Teams, []string{"release-managers"}) {
		t.Errorf("reviewers %v teams %v", prs[0].Reviewers, prs[0].Teams)
	}
	for _, want := range []string{f.images["bitvaultd"].Ref(), f.images["bitvault-worker"].Ref(), "(sha256:0000",
		promote.AttestationRef(f.images["bitvaultd"].Repository, f.images["bitvaultd"].Digest), "| bitvaultd | index |", "| signature | ok |", "| provenance | ok |", "| vuln | ok |"} {
		if want == "(sha256:0000" {
			want = "`sha256:0000000000000000000000000000000000000000000000000000000000000000`"
		}
		if !strings.Contains(prs[0].Body, want) {
			t.Errorf("pull request body lacks %q:\n%s", want, prs[0].Body)
		}
	}
	assertOnlyDigests(t, f.bare, branch, file, f.images["bitvaultd"], f.images["bitvault-worker"])
	head1 := gitopstest.Git(t, f.bare, "rev-parse", branch)
	if res.Commit != head1 {
		t.Errorf("result commit %s, branch at %s", res.Commit, head1)
	}
	msg := gitopstest.Git(t, f.bare, "log", "-1", "--format=%an <%ae>%n%B", branch)
	for _, want := range []string{"bvrelease[bot] <bvrelease[bot]@users.noreply.github.com>", "Promote bitvault v1.2.3 to dev", "bitvaultd: " + f.images["bitvaultd"].Digest + " (was sha256:0000"} {
		if !strings.Contains(msg, want) {
			t.Errorf("commit lacks %q:\n%s", want, msg)
		}
	}
	if d, _ := os.ReadFile(res.DiffPath); !strings.Contains(string(d), "+    digest: "+f.images["bitvaultd"].Digest) {
		t.Errorf("%s:\n%s", res.DiffPath, d)
	}

	// Again, same digests: the open pull request is found and updated.
	first := len(f.gh.Calls())
	res, err = promote.Promote(ctx, f.request(t, "dev"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != promote.StatusUpdated || res.PR != 1 || len(f.gh.PRs()) != 1 {
		t.Fatalf("second run: %+v, %d pull requests", res, len(f.gh.PRs()))
	}
	if head := gitopstest.Git(t, f.bare, "rev-parse", branch); head != head1 {
		t.Errorf("second run moved the branch %s → %s although nothing changed", head1, head)
	}
	if got := writes(f.gh.Calls()[first:]); !slices.Equal(got, []string{"PATCH /repos/bitvault/gitops/pulls/1"}) {
		t.Errorf("second run wrote %v, want only the pull request's update", got)
	}

	// A newer worker digest for the same release: branch and body follow.
	res, err = promote.Promote(ctx, f.request(t, "dev", f.images["bitvaultd"], f.images["worker2"]))
	if err != nil {
		t.Fatal(err)
	}
	prs = f.gh.PRs()
	if res.Status != promote.StatusUpdated || len(prs) != 1 || !strings.Contains(prs[0].Body, f.images["worker2"].Digest) || strings.Contains(prs[0].Body, f.images["bitvault-worker"].Digest) {
		t.Fatalf("third run: %+v\n%s", res, prs[0].Body)
	}
	assertOnlyDigests(t, f.bare, branch, file, f.images["bitvaultd"], f.images["worker2"])
	if n := gitopstest.Git(t, f.bare, "rev-list", "--count", "main.."+branch); n != "1" {
		t.Errorf("branch has %s commits over main, want 1", n)
	}

	// The pull request is merged: the environment is at the digests.
	gitopstest.Git(t, f.bare, "update-ref", "refs/heads/main", branch)
	f.gh.Close(1)
	before := len(f.gh.Calls())
	res, err = promote.Promote(ctx, f.request(t, "dev", f.images["bitvaultd"], f.images["worker2"]))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != promote.StatusAlready || res.DiffPath != "" || len(f.gh.Calls()) != before {
		t.Fatalf("after merge: %+v; GitHub calls %v", res, f.gh.Calls()[before:])
	}
	if head := gitopstest.Git(t, f.bare, "rev-parse", "main"); head != gitopstest.Git(t, f.bare, "rev-parse", branch) {
		t.Errorf("already promoted, yet something was pushed")
	}
	rec := res.Record("", false)
	if rec.Status != promote.StatusAlready || rec.Branch != "" || len(rec.Images) != 2 || rec.Images[0].Previous != "" {
		t.Errorf("record %+v", rec)
	}
}

// TestPromoteWorkDirReused: a second run in the same work directory fetches
// instead of cloning, and sees the remote's changes.
func TestPromoteWorkDirReused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	work := filepath.Join(t.TempDir(), "gitops")
	q := f.request(t, "staging")
	q.WorkDir = work
	if _, err := promote.Promote(ctx, q); err != nil {
		t.Fatal(err)
	}
	// Someone promotes by hand on main meanwhile; a leftover file in the work tree.
	gitopstest.Commit(t, f.bare, "main", "README.md", "changed\n")
	writeFile(t, filepath.Join(work, "stray.txt"), "x")
	q = f.request(t, "staging", f.images["bitvaultd"], f.images["worker2"])
	q.WorkDir = work
	res, err := promote.Promote(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != promote.StatusUpdated {
		t.Fatalf("%+v", res)
	}
	if got := gitopstest.Show(t, f.bare, res.Branch, "README.md"); got != "changed" {
		t.Errorf("branch is not on the new main: README %q", got)
	}
	if _, err := os.Stat(filepath.Join(work, "stray.txt")); !os.IsNotExist(err) {
		t.Errorf("the work tree was not cleaned: %v", err)
	}
	cfgText, _ := os.ReadFile(filepath.Join(work, ".git", "config"))
	if strings.Contains(string(cfgText), token) {
		t.Errorf(".git/config holds the token")
	}
}

// TestPromoteRefused: each bad input or environment fails with what to fix, and
// nothing is pushed or opened where it is refused before.
func TestPromoteRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		edit   func(q *promote.Request)
		want   []string
		input  bool // an *InputError
		verify bool // a *VerifyError
		pushed bool // the branch exists afterwards
	}{
		{"token missing", func(q *promote.Request) { q.Token = "" },
			[]string{"no GitHub token: set GITOPS_TOKEN (gitops.token_env)", "pull-requests: write"}, true, false, false},
		{"token missing, custom variable", func(q *promote.Request) { q.Token = ""; q.Config.GitOps.TokenEnv = "GITOPS_PAT" },
			[]string{"set GITOPS_PAT"}, true, false, false},
		{"not a digest", func(q *promote.Request) { q.Images[0].Digest = "sha256:abc" },
			[]string{"bitvaultd=sha256:abc: not a digest; want sha256:<64 lower-case hex>"}, true, false, false},
		{"a tag, not a digest", func(q *promote.Request) { q.Images[0].Digest = "v1.2.3" },
			[]string{"bitvaultd=v1.2.3: not a digest"}, true, false, false},
		{"unknown environment", func(q *promote.Request) { q.Env = "production" },
			[]string{`--env "production": not an environment`, "use one of dev, qa, staging"}, true, false, false},
		{"unknown artifact", func(q *promote.Request) { q.Images[0].Artifact = "bitvault-api" },
			[]string{"bitvault-api: not an artifact", "known: bitvault-worker, bitvaultd"}, true, false, false},
		{"unsigned image", func(q *promote.Request) { q.Images[0] = f.unsigned },
			[]string{"refusing to promote: 3 check(s) failed", "bitvaultd index (" + f.unsigned.Digest + "): signature:", "no signature", "bitvaultd unknown (sha256:"}, false, true, false},
		{"no provenance", func(q *promote.Request) { q.Images[0] = f.noProv },
			[]string{"refusing to promote: 3 check(s) failed", "bitvaultd index (" + f.noProv.Digest + "): provenance: SLSA provenance", "bitvaultd unknown (sha256:"}, false, true, false},
		{"wrong signer", func(q *promote.Request) {
			q.Expect.Policy.Identity = "https://github.com/bitvault/bitvault/.github/workflows/release.yml@refs/tags/v1.2.3"
		}, []string{"bitvaultd index", "signature:", "wrong identity", "bitvault-worker index"}, false, true, false},
		{"values file missing", func(q *promote.Request) { q.Env = "qa" },
			[]string{"values file envs/qa/values.qa.yaml does not exist in bitvault/gitops@main", "fix gitops.environments.qa"}, false, false, false},
		{"key path missing", func(q *promote.Request) { q.Config.GitOps.Images["bitvaultd"] = "bitvaultd.image.digets" },
			[]string{"envs/dev/values.dev.yaml:8: key path bitvaultd.image.digets", `bitvaultd.image has no key "digets"`, "nearest existing key: bitvaultd.image.digest (line 10)", "gitops.images.<artifact>"}, false, false, false},
		{"base branch missing", func(q *promote.Request) { q.Config.GitOps.Base = "trunk" },
			[]string{`the base branch "trunk" does not exist`}, false, false, false},
		{"token without pull-requests: write", func(q *promote.Request) { f.gh.ReadOnly(true) },
			[]string{"403 Resource not accessible by integration", "the workflow/token needs `pull-requests: write`"}, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer f.gh.ReadOnly(false)
			for _, b := range strings.Fields(gitopstest.Git(t, f.bare, "for-each-ref", "--format=%(refname)", "refs/heads/bvrelease/")) {
				gitopstest.Git(t, f.bare, "update-ref", "-d", b)
			}
			q := f.request(t, "dev")
			calls := len(f.gh.Calls())
			tc.edit(&q)
			res, err := promote.Promote(ctx, q)
			if err == nil {
				t.Fatalf("promoted: %+v", res)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("the error shows the token: %v", err)
			}
			var ie *promote.InputError
			if errors.As(err, &ie) != tc.input {
				t.Errorf("input error = %v, want %v (%T)", !tc.input, tc.input, err)
			}
			if ve, ok := promote.IsVerifyError(err); ok != tc.verify || (ok && len(ve.Reports) != len(q.Images)) {
				t.Errorf("verify error = %v, want %v", ok, tc.verify)
			}
			branches := gitopstest.Git(t, f.bare, "for-each-ref", "--format=%(refname)", "refs/heads/bvrelease/")
			if (branches != "") != tc.pushed {
				t.Errorf("branches after the refusal: %q, want pushed=%v", branches, tc.pushed)
			}
			if !tc.pushed && len(writes(f.gh.Calls()[calls:])) > 0 {
				t.Errorf("GitHub written to: %v", f.gh.Calls()[calls:])
			}
		})
	}
	if n := len(f.gh.PRs()); n != 0 {
		t.Errorf("%d pull requests opened by refused promotions", n)
	}
}

// TestPromoteReviewersRejected: reviewers GitHub will not request are a
// warning; the pull request stands.
func TestPromoteReviewersRejected(t *testing.T) {
	f := newFixture(t)
	f.gh.RejectReviewers(true)
	res, err := promote.Promote(context.Background(), f.request(t, "dev"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != promote.StatusOpened || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "collaborators") {
		t.Fatalf("%+v", res)
	}
}

// TestPromotePlainGitRemote: gitops.repo a local path (file:// or not): the
// pushed branch is the proposal, no token needed, no pull request.
func TestPromotePlainGitRemote(t *testing.T) {
	f := newFixture(t)
	for _, repo := range []string{f.bare, "file://" + f.bare} {
		q := f.request(t, "dev")
		q.Config.GitOps.Repo, q.GitRemote, q.Token = repo, "", ""
		res, err := promote.Promote(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != promote.StatusPushed || res.PR != 0 {
			t.Fatalf("%s: %+v", repo, res)
		}
		assertOnlyDigests(t, f.bare, res.Branch, "envs/dev/values.dev.yaml", f.images["bitvaultd"], f.images["bitvault-worker"])
	}
	if len(f.gh.Calls()) != 0 {
		t.Errorf("GitHub called: %v", f.gh.Calls())
	}
}

// TestPromoteDryRun: against a copy of gitops.template, offline: the diff and
// the pull request body, written to <out>/<env>.diff and .md; the template and
// the remote untouched.
func TestPromoteDryRun(t *testing.T) {
	f := newFixture(t)
	q := f.request(t, "dev")
	q.DryRun, q.Token, q.GitRemote, q.GitHubAPI = true, "", "/nonexistent", "http://127.0.0.1:1/"
	tmpl, _ := os.ReadFile(filepath.Join(f.repoDir, "gitops", "envs/dev/values.dev.yaml"))
	res, err := promote.Promote(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != promote.StatusDryRun || res.PR != 0 {
		t.Fatalf("%+v", res)
	}
	d := f.images["bitvaultd"].Digest
	wantDiff := "--- a/envs/dev/values.dev.yaml\n+++ b/envs/dev/values.dev.yaml\n@@ -7,13 +7,13 @@\n bitvaultd:\n   image:\n     repository: ghcr.io/bitvault/bitvaultd\n" +
		"-    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000 # set by bvrelease promote\n" +
		"+    digest: " + d + " # set by bvrelease promote\n"
	diff, _ := os.ReadFile(res.DiffPath)
	plus, minus := 0, 0
	for _, l := range strings.Split(string(diff), "\n") {
		switch {
		case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
		case strings.HasPrefix(l, "+"):
			plus++
		case strings.HasPrefix(l, "-"):
			minus++
		}
	}
	if !strings.HasPrefix(string(diff), wantDiff) || plus != 2 || minus != 2 {
		t.Errorf("%s:\n%s\nwant it to start with\n%s", res.DiffPath, diff, wantDiff)
	}
	// The diff applies to the template with git apply.
	applied := t.TempDir()
	if err := gitopstest.Copy(filepath.Join(f.repoDir, "gitops"), applied); err != nil {
		t.Fatal(err)
	}
	gitopstest.Git(t, applied, "apply", res.DiffPath)
	if got, _ := os.ReadFile(filepath.Join(applied, "envs/dev/values.dev.yaml")); !strings.Contains(string(got), "digest: "+d+" # set by bvrelease promote") {
		t.Errorf("git apply of the diff gave:\n%s", got)
	}
	if body, _ := os.ReadFile(res.BodyPath); string(body) != res.Body || !strings.Contains(res.Body, "| bitvault-worker | `bitvault-worker.image.digest` | `"+f.images["bitvault-worker"].Ref()+"`") {
		t.Errorf("%s:\n%s", res.BodyPath, body)
	}
	if after, _ := os.ReadFile(filepath.Join(f.repoDir, "gitops", "envs/dev/values.dev.yaml")); string(after) != string(tmpl) {
		t.Errorf("the template was modified")
	}
	if len(f.gh.Calls()) != 0 {
		t.Errorf("a dry-run called GitHub: %v", f.gh.Calls())
	}
	// A dry-run still refuses what does not verify.
	q.Images[0] = f.unsigned
	if _, err := promote.Promote(context.Background(), q); err == nil || !strings.Contains(err.Error(), "refusing to promote") {
		t.Errorf("dry-run of an unsigned image: %v", err)
	}
}

// TestStage: the promote stage of a dry-run release verifies with
// dist/sign/policy.json, writes dist/promote/dev.diff and .md and records the
// promotion; in a real release it skips.
func TestStage(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dist := t.TempDir()
	r := release.New(f.cfg, dist, release.Options{DryRun: true})
	r.Record.Version = "0.0.0-abc-dirty"
	for _, a := range []string{"bitvaultd", "bitvault-worker"} {
		im := f.images[a]
		ar := r.Artifact(a)
		ar.Digest = im.Digest
		ar.Published = &release.PublishRecord{Repository: im.Repository, Reference: im.Ref()}
	}
	// The sign stage's policy for the dry-run CA.
	policy, _ := json.Marshal(f.signer.Policy())
	if err := os.MkdirAll(filepath.Dir(sign.PolicyPath(r)), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, sign.PolicyPath(r), string(policy))
	if err := (promote.Stage{}).Run(ctx, r); err != nil {
		t.Fatal(err)
	}
	if len(r.Record.Promotions) != 1 {
		t.Fatalf("promotions %+v", r.Record.Promotions)
	}
	p := r.Record.Promotions[0]
	if p.Env != "dev" || !p.DryRun || p.Status != promote.StatusDryRun || p.Diff != "promote/dev.diff" || p.Body != "promote/dev.md" ||
		p.Branch != "bvrelease/promote-dev-v0.0.0-abc-dirty" || len(p.Images) != 2 || p.Images[0].Previous != "sha256:0000000000000000000000000000000000000000000000000000000000000000" {
		t.Errorf("promotion record %+v", p)
	}
	for _, file := range []string{"promote/dev.diff", "promote/dev.md"} {
		if st, err := os.Stat(filepath.Join(dist, file)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", file, err)
		}
	}
	var sum strings.Builder
	record.Summary(&sum, r.Record, "")
	if got := spaces.ReplaceAllString(sum.String(), " "); !strings.Contains(got, "PROMOTION STATUS REPOSITORY PROPOSAL IMAGES DIFF") ||
		!strings.Contains(got, "dev dry-run bitvault/gitops:envs/dev/values.dev.yaml bvrelease/promote-dev-v0.0.0-abc-dirty 2 promote/dev.diff") {
		t.Errorf("summary:\n%s", sum.String())
	}
	// Signed by someone else: the stage fails, naming the check.
	other, _ := attestsign.NewEphemeral(t.TempDir())
	policy, _ = json.Marshal(other.Policy())
	writeFile(t, sign.PolicyPath(r), string(policy))
	if err := (promote.Stage{}).Run(ctx, r); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Errorf("other signer: %v", err)
	}

	r.DryRun = false
	err := promote.Stage{}.Run(ctx, r)
	if reason, ok := release.IsSkip(err); !ok || !strings.Contains(reason, "bvrelease promote --env dev") {
		t.Errorf("real release: %v", err)
	}
}

var spaces = regexp.MustCompile(` +`)

func TestBranch(t *testing.T) {
	for _, tc := range []struct{ env, version, want string }{
		{"dev", "1.2.3", "bvrelease/promote-dev-v1.2.3"},
		{"prod", "v1.2.3", "bvrelease/promote-prod-v1.2.3"},
		{"dev", "0.0.0-58f0f393955e-dirty", "bvrelease/promote-dev-v0.0.0-58f0f393955e-dirty"},
		{"dev", "1.0.0 ~^:?*[\\..x", "bvrelease/promote-dev-v1.0.0-.x"},
	} {
		if got := promote.Branch(tc.env, tc.version); got != tc.want {
			t.Errorf("Branch(%q, %q) = %q, want %q", tc.env, tc.version, got, tc.want)
		}
		if out, err := gitopstest.GitErr(".", "check-ref-format", "--branch", promote.Branch(tc.env, tc.version)); err != nil {
			t.Errorf("%s: %s", promote.Branch(tc.env, tc.version), out)
		}
	}
}
