package pipeline_test

import (
	"cmp"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gopkg.in/yaml.v3"

	"github.com/bitvault/bitvault/internal/testsupport/githubtest"
	"github.com/bitvault/bitvault/internal/testsupport/gitopstest"
	"github.com/bitvault/bitvault/internal/testsupport/kyvernotest"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
	"github.com/bitvault/bitvault/internal/testsupport/sigstoretest"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/pipeline"
	"github.com/bitvault/bitvault/release/policy"
	"github.com/bitvault/bitvault/release/promote"
	"github.com/bitvault/bitvault/release/publish"
	"github.com/bitvault/bitvault/release/sign"
)

// TestReleasePromoteAdmit is issue 4 end to end, played as CI plays it:
//
//  1. release.yml: the keyless release of TestKeylessRelease (the job's OIDC token, a Fulcio
//     certificate for the release workflow on refs/tags/v1.2.3, every signature and attestation
//     in Rekor — sigstoretest's — an offline vulnerability DB) publishes the three images to an
//     embedded registry as <registry>/bitvault/<artifact> and records dist/release.json;
//  2. promote.yml: `bvrelease promote --env dev --from dist/release.json` (promoteFrom: what
//     the command does with those flags, through release/promote) against a bare GitOps
//     repository seeded with deploy/gitops (gitopstest) and a fake GitHub API (githubtest),
//     run twice: the first opens the pull request, the second finds the branch already holding
//     the change and updates the same pull request — one pull request, one branch commit; on
//     the branch only the three digest lines of envs/dev/values.dev.yaml changed, each to the
//     released index digest;
//  3. admission: a Deployment of bitvaultd whose image is <registry>/bitvault/bitvaultd@<the
//     digest on the promoted branch> (read back with git show), given to the real Kyverno CLI
//     with the verify-images policy release/policy generates from bvrelease.yaml (adapted by
//     kyvernotest to the loopback registry and sigstoretest's roots and Rekor key; identity and
//     builder patterns as generated), is admitted; the same Deployment with the digest swapped
//     for an unsigned image's, or for the released bitvault-worker index's (copied into the
//     bitvaultd repository), is refused; and the generated pod-security policy admits the
//     promoted Deployment.
func TestReleasePromoteAdmit(t *testing.T) {
	ctx := context.Background()
	kyverno := kyvernotest.Binary(t) // skip (or fail) before the long part
	host, stop, err := publish.StartEmbeddedRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ss := sigstoretest.New(t, ciWorkflow)
	trusted := githubActions(t, ss, ciWorkflow)
	cfg := repoConfig(t)

	// 1. The release.
	start := time.Now()
	o := release.Options{Registry: host + "/bitvault", AllowDirty: true, VulnDB: vulnDB(t, xtextAdvisory),
		FulcioURL: ss.FulcioURL, RekorURL: ss.RekorURL, TrustedRoot: trusted}
	if err := pipeline.Run(ctx, newRelease(t, o), pipeline.Release()...); err != nil {
		t.Fatal(err)
	}
	t.Logf("release: %s", time.Since(start).Round(time.Second))
	recordPath := filepath.Join(dist, "release.json")
	rec := readRecord(t)
	if rec.DryRun {
		t.Fatal("the release was recorded as a dry-run")
	}
	released := map[string]string{} // artifact → index digest
	for _, a := range rec.Artifacts {
		if a.Published == nil || a.Published.Repository != host+"/bitvault/"+a.Name {
			t.Fatalf("%s: published %+v, want it in %s/bitvault/%s", a.Name, a.Published, host, a.Name)
		}
		released[a.Name] = a.Digest
	}
	if len(released) != 3 {
		t.Fatalf("released %v, want bitvaultd, bitvault-worker and bitvault-web", released)
	}

	// 2. The promotion, twice.
	const env = "dev"
	g := cfg.GitOps
	file, branch := g.Environments[env], promote.Branch(env, rec.Version)
	bare := gitopstest.Bare(t, filepath.Join("..", "..", g.Template), g.Base)
	baseHead := gitopstest.Git(t, bare, "rev-parse", g.Base)
	owner, repoName, _ := strings.Cut(g.Repo, "/")
	gh := githubtest.New(t, owner, repoName, "tok")
	t.Setenv(g.TokenEnv, "tok")
	work := filepath.Join(t.TempDir(), "gitops") // --work-dir: cloned once, fetched the second time
	var results []*promote.Result
	for i := range 2 {
		start := time.Now()
		res := promoteFrom(t, cfg, recordPath, env, trusted, bare, gh.URL, work)
		t.Logf("promote #%d: %s, pull request #%d, commit %.12s (%s)", i+1, res.Status, res.PR, res.Commit, time.Since(start).Round(time.Millisecond))
		results = append(results, res)
	}
	first, second := results[0], results[1]
	if first.Status != promote.StatusOpened || first.PR != 1 || first.Branch != branch {
		t.Errorf("first promotion: %s #%d on %s, want %s #1 on %s", first.Status, first.PR, first.Branch, promote.StatusOpened, branch)
	}
	if second.Status != promote.StatusUpdated || second.PR != first.PR || second.Commit != first.Commit {
		t.Errorf("second promotion: %s #%d at %.12s, want %s #%d at %.12s (the branch already holds the change)",
			second.Status, second.PR, second.Commit, promote.StatusUpdated, first.PR, first.Commit)
	}
	prs := gh.PRs()
	if len(prs) != 1 {
		t.Fatalf("%d pull requests, want one: %+v", len(prs), prs)
	}
	pr := prs[0]
	if pr.Head != branch || pr.Base != g.Base || pr.State != "open" || len(pr.Teams) != 1 {
		t.Errorf("pull request %+v, want open from %s to %s with the release managers requested", pr, branch, g.Base)
	}
	for art, d := range released {
		if !strings.Contains(pr.Body, d) {
			t.Errorf("the pull request body does not name %s's digest %s:\n%s", art, d, pr.Body)
		}
	}
	creates := 0
	for _, c := range gh.Calls() {
		if c == "POST /repos/"+g.Repo+"/pulls" {
			creates++
		}
	}
	if creates != 1 {
		t.Errorf("%d pull request creations, want 1: %v", creates, gh.Calls())
	}
	if got := gitopstest.Git(t, bare, "rev-parse", branch); got != first.Commit {
		t.Errorf("branch %s at %s, want the promotion's commit %s", branch, got, first.Commit)
	}
	if n := gitopstest.Git(t, bare, "rev-list", "--count", g.Base+".."+branch); n != "1" {
		t.Errorf("branch %s is %s commits ahead of %s, want 1", branch, n, g.Base)
	}
	if got := gitopstest.Git(t, bare, "rev-parse", g.Base); got != baseHead {
		t.Errorf("%s moved: %s → %s", g.Base, baseHead, got)
	}
	if changed := gitopstest.Git(t, bare, "diff", "--name-only", g.Base, branch); changed != file {
		t.Errorf("the promotion changed %q, want only %s", changed, file)
	}
	t.Logf("git diff %s %s:\n%s", g.Base, branch, gitopstest.Git(t, bare, "diff", g.Base, branch))
	before, after := gitopstest.Show(t, bare, g.Base, file), gitopstest.Show(t, bare, branch, file)
	onlyDigestLines(t, file, before, after, released)
	var rec2 release.Record // the promotion is recorded in the release record it promoted
	if data, err := os.ReadFile(recordPath); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(data, &rec2); err != nil {
		t.Fatal(err)
	}
	if i := slices.IndexFunc(rec2.Promotions, func(p release.PromotionRecord) bool { return p.Env == env }); i < 0 ||
		rec2.Promotions[i].Status != promote.StatusUpdated || rec2.Promotions[i].PR != 1 || rec2.Promotions[i].Branch != branch {
		t.Errorf("record promotions %+v, want %s updated as #1 on %s", rec2.Promotions, env, branch)
	}

	// 3. Admission of what was promoted.
	var values struct {
		Bitvaultd struct {
			Image struct{ Digest string } `yaml:"image"`
		} `yaml:"bitvaultd"`
	}
	if err := yaml.Unmarshal([]byte(after), &values); err != nil {
		t.Fatalf("%s on %s: %v", file, branch, err)
	}
	promoted := values.Bitvaultd.Image.Digest
	if promoted != released["bitvaultd"] {
		t.Fatalf("%s on %s: bitvaultd.image.digest %s, want the released %s", file, branch, promoted, released["bitvaultd"])
	}
	repo, err := name.NewRepository(host + "/bitvault/bitvaultd")
	if err != nil {
		t.Fatal(err)
	}
	unsigned := registrytest.Push(t, repo, 2) // in the release's repository, never signed
	workerRef, err := name.NewDigest(host + "/bitvault/bitvault-worker@" + released["bitvault-worker"])
	if err != nil {
		t.Fatal(err)
	}
	workerIdx, err := remote.Index(workerRef)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(repo.Digest(workerRef.DigestStr()), workerIdx); err != nil { // its signatures stay in bitvault-worker
		t.Fatal(err)
	}

	generated := t.TempDir()
	files, err := policy.Generate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.Write(generated, files); err != nil {
		t.Fatal(err)
	}
	verifyImages := kyvernotest.Policy(t, filepath.Join(generated, policy.VerifyImagesFile), t.TempDir(), kyvernotest.Trust{
		Images: host + "/bitvault/*", Issuer: sigstoretest.GitHubIssuer, Roots: ss.RootPEM(),
		RekorURL: ss.RekorURL, RekorKey: ss.RekorPublicKeyPEM(),
	})
	promotedImage := repo.Digest(promoted).String()
	for _, tc := range []struct {
		name, image string
		admit       bool
		want        string // admitted: the digest whose attestations Kyverno verified; refused: in its messages
	}{
		{"promoted digest", promotedImage, true, promotedImage},
		{"digest swapped for an unsigned image", repo.Digest(unsigned.Index.DigestStr()).String(), false, "no signatures found"},
		{"digest swapped for bitvault-worker", repo.Digest(workerRef.DigestStr()).String(), false, "no signatures found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, r, out := kyvernotest.Apply(t, kyverno, verifyImages, kyvernotest.WriteResource(t, kyvernotest.Deployment("bitvaultd", tc.image)))
			n, msgs := r.Summary, r.Messages()
			t.Logf("kyverno apply (%s): exit %d, %+v\n%s", time.Since(start).Round(time.Millisecond), code, n, msgs)
			for _, res := range r.Results {
				if res.Policy != "bitvault-verify-images" {
					t.Errorf("a result of policy %s, want bitvault-verify-images", res.Policy)
				}
			}
			if tc.admit {
				if code != 0 || n.Pass < 1 || n.Fail != 0 || n.Error != 0 || !strings.Contains(msgs, "pass: verified image attestations for "+tc.want+"\n") {
					t.Fatalf("kyverno apply: exit %d, %+v; want %s admitted, its attestations verified:\n%s", code, n, tc.image, out)
				}
				return
			}
			if code != 1 || n.Fail < 1 || n.Pass != 0 || n.Error != 0 || !strings.Contains(msgs, "fail: ") || !strings.Contains(msgs, tc.want) {
				t.Fatalf("kyverno apply: exit %d, %+v; want %s refused with %q:\n%s", code, n, tc.image, tc.want, out)
			}
		})
	}
	t.Run("pod security", func(t *testing.T) {
		ps := filepath.Join(generated, policy.PodSecurityFile)
		rules := kyvernotest.At(t, kyvernotest.Load(t, ps), "spec", "rules").([]any)
		code, r, out := kyvernotest.Apply(t, kyverno, ps, kyvernotest.WriteResource(t, kyvernotest.Deployment("bitvaultd", promotedImage)))
		t.Logf("kyverno apply %s: exit %d, %+v", policy.PodSecurityFile, code, r.Summary)
		if n := r.Summary; code != 0 || n.Fail != 0 || n.Error != 0 || n.Pass != len(rules) {
			t.Fatalf("kyverno apply %s: exit %d, %+v; want every one of its %d rules passed:\n%s", policy.PodSecurityFile, code, n, len(rules), out)
		}
	})
}

// promoteFrom is `bvrelease promote --env ENV --from RECORD --trusted-root TRUSTED
// --gitops-remote REMOTE --github-api API --work-dir WORK` (cmd/bvrelease/promote.go) through
// release/promote: the record's published images, project and version; a real release is
// checked against bvrelease.yaml's signing section with the trusted root; the token from
// gitops.token_env; the promotion written back into the record. It fails the test unless the
// promotion succeeded.
func promoteFrom(t *testing.T, cfg *config.Config, recordPath, env, trusted, remoteURL, api, work string) *promote.Result {
	t.Helper()
	ctx := context.Background()
	data, err := os.ReadFile(recordPath)
	if err != nil {
		t.Fatal(err)
	}
	var rec release.Record
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("%s: %v", recordPath, err)
	}
	if rec.DryRun {
		t.Fatalf("%s is a dry-run release", recordPath)
	}
	expect, err := promote.ConfigExpect(cfg, trusted)
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	res, err := promote.Promote(ctx, promote.Request{
		Config: cfg, Env: env, Project: rec.Project, Version: rec.Version, Images: promote.FromRecord(rec),
		Expect: expect, RemoteOptions: sign.RemoteOptions(ctx), OutDir: filepath.Join(filepath.Dir(recordPath), "promote"),
		GitRemote: remoteURL, GitHubAPI: api, Token: os.Getenv(cfg.GitOps.TokenEnv), WorkDir: work,
		Author: promote.DefaultAuthor, Log: &log,
	})
	t.Logf("promote:\n%s", log.String())
	if err != nil {
		t.Fatalf("promote --env %s --from %s: %v", env, recordPath, err)
	}
	if len(res.Reports) != len(res.Images) {
		t.Errorf("%d verification reports for %d images", len(res.Reports), len(res.Images))
	}
	for _, rep := range res.Reports {
		if rep.Failed() != 0 {
			t.Errorf("%s: %d failed checks, yet promoted", rep.Image, rep.Failed())
		}
	}
	rec.SetPromotion(res.Record(filepath.Dir(recordPath), false))
	out, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(recordPath, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	return res
}

// onlyDigestLines fails the test unless after is before with exactly the digest line of each
// released artifact's image changed — to its released digest, the rest of the line (indent,
// key, comment) kept — and nothing else.
func onlyDigestLines(t *testing.T, file, before, after string, released map[string]string) {
	t.Helper()
	b, a := strings.Split(before, "\n"), strings.Split(after, "\n")
	if len(a) != len(b) {
		t.Fatalf("%s: %d lines became %d:\n%s", file, len(b), len(a), after)
	}
	var section string // the top-level key a line is under
	changed := map[string]bool{}
	for i := range b {
		if l := b[i]; l != "" && l[0] != ' ' && l[0] != '#' {
			section, _, _ = strings.Cut(l, ":")
		}
		if a[i] == b[i] {
			continue
		}
		d, ok := released[section]
		old, _, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(b[i]), "digest:")), " ")
		if !ok || !strings.HasPrefix(strings.TrimSpace(b[i]), "digest: ") || changed[section] || a[i] != strings.Replace(b[i], old, d, 1) {
			t.Errorf("%s line %d under %s: %q became %q; only %s.image.digest may change, to %s", file, i+1, section, b[i], a[i], section, cmp.Or(d, "(not released)"))
			continue
		}
		changed[section] = true
	}
	for art := range released {
		if !changed[art] {
			t.Errorf("%s: %s's digest line did not change to %s", file, art, released[art])
		}
	}
	if t.Failed() {
		t.Logf("%s before:\n%s\nafter:\n%s", file, before, after)
	}
}
