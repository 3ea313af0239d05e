// Package promote proposes a release's image digests to a GitOps environment:
//
//  1. every digest is first verified as cluster admission will (attest/admission:
//     signatures by the expected identity, SLSA provenance, SBOM and vulnerability
//     attestations, referrers); one failed check and nothing is promoted;
//  2. in the environment's values file (gitops.environments.<env>) only each image's
//     digest (gitops.images.<artifact>, default <artifact>.image.digest) is rewritten,
//     byte for byte in place (release/promote/values);
//  3. on a branch bvrelease/promote-<env>-v<version> from gitops.base, committed and
//     pushed with a lease (release/promote/gitrepo, the git CLI);
//  4. and a pull request opened, or the open one for the branch updated, with the
//     digests, the provenance references and the verification table, reviewers
//     requested (release/promote/ghpr, go-github).
//
// An environment already at the digests is left alone ("already promoted"). A
// dry-run does steps 1 and 2 against a copy of gitops.template (deploy/gitops),
// offline, and shows the diff and the pull request body instead; it also runs as
// the `promote` stage of a dry-run release (env dev), after `record`.
package promote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/bitvault/bitvault/internal/dircopy"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bitvault/bitvault/attest/admission"
	"github.com/bitvault/bitvault/internal/atomicfile"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/promote/ghpr"
	"github.com/bitvault/bitvault/release/promote/gitrepo"
	"github.com/bitvault/bitvault/release/promote/values"
)

// Statuses of a promotion.
const (
	StatusDryRun  = "dry-run"          // the diff against the template; nothing pushed
	StatusOpened  = "opened"           // branch pushed, pull request opened
	StatusUpdated = "updated"          // branch pushed (or already right), open pull request updated
	StatusPushed  = "pushed"           // a plain git remote: the branch is the proposal
	StatusAlready = "already-promoted" // the environment is at these digests: nothing done
)

// DefaultAuthor commits promotions unless told otherwise.
var DefaultAuthor = gitrepo.Author{Name: "bvrelease[bot]", Email: "bvrelease[bot]@users.noreply.github.com"}

// Image is one digest to promote.
type Image struct {
	Artifact   string `json:"artifact"`
	Repository string `json:"repository"` // e.g. ghcr.io/bitvault/bitvaultd
	Digest     string `json:"digest"`     // the index: sha256:<64 hex>
}

// Ref is repository@digest.
func (i Image) Ref() string { return i.Repository + "@" + i.Digest }

// Request is one promotion.
type Request struct {
	Config  *config.Config
	Env     string
	Project string // names the release in titles (default: the configuration's project)
	Version string // names the branch: bvrelease/promote-<env>-v<version>
	Images  []Image

	// Expect is what every image must satisfy (ConfigExpect, PolicyExpect).
	Expect        admission.Expect
	RemoteOptions []remote.Option // registry options for the verification

	DryRun bool
	OutDir string // <env>.diff and <env>.md are written here (dist/promote); "" = not written

	GitRemote    string // overrides the remote derived from gitops.repo (--gitops-remote)
	GitHubServer string // for a GitHub gitops.repo, default https://github.com
	GitHubAPI    string // default https://api.github.com/
	Token        string // required to open a pull request; sent to http(s) git remotes
	WorkDir      string // the clone; reused (fetched) when it exists; "" = a temporary one
	Author       gitrepo.Author
	HTTPClient   *http.Client // for the GitHub API
	Log          io.Writer
}

// Result is what a promotion did.
type Result struct {
	Env     string
	Status  string
	Repo    string // gitops.repo
	File    string // the values file, relative to the repository
	Branch  string
	Commit  string
	PR      int
	URL     string
	Images  []Image
	Changes []values.Change
	// Previous maps each artifact to the digest the environment had.
	Previous map[string]string
	Keys     map[string]string // artifact → key path
	Reports  []admission.Report
	Diff     []byte
	Body     string
	DiffPath string // written files ("" = not written)
	BodyPath string
	Warnings []string
}

// InputError is a promotion refused for what it was asked: a bad digest, an
// unknown environment or artifact, no token.
type InputError struct{ Msg string }

func (e *InputError) Error() string { return e.Msg }

func inputErr(format string, args ...any) error {
	return &InputError{Msg: fmt.Sprintf(format, args...)}
}

var (
	digestRE    = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
	ownerNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+$`)
	branchBad   = regexp.MustCompile(`[^A-Za-z0-9._+-]+`)
)

// IsDigest reports whether s is a sha256 digest (sha256:<64 lower-case hex>).
func IsDigest(s string) bool { return digestRE.MatchString(s) }

// Branch is the branch a promotion of version to env is proposed on.
func Branch(env, version string) string {
	v := strings.Trim(branchBad.ReplaceAllString(version, "-"), "-.")
	for strings.Contains(v, "..") {
		v = strings.ReplaceAll(v, "..", ".")
	}
	return "bvrelease/promote-" + env + "-v" + strings.TrimPrefix(v, "v")
}

// DigestsVersion names a promotion of loose digests (no release record).
func DigestsVersion(images []Image) string {
	h := sha256.New()
	for _, i := range images {
		fmt.Fprintf(h, "%s=%s\n", i.Artifact, i.Digest)
	}
	return "0.0.0-digests-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// IsGitHub reports whether gitops.repo names a GitHub repository (owner/name)
// rather than a local path or a git URL.
func IsGitHub(repo string) bool { return ownerNameRE.MatchString(repo) }

// validate checks what was asked before anything is verified or fetched.
func (q *Request) validate() error {
	cfg := q.Config
	if cfg == nil || cfg.GitOps == nil {
		return inputErr("bvrelease.yaml has no gitops section: add gitops.repo, gitops.environments (see deploy/gitops/README.md)")
	}
	g := cfg.GitOps
	if _, ok := g.Environments[q.Env]; !ok {
		envs := make([]string, 0, len(g.Environments))
		for e := range g.Environments {
			envs = append(envs, e)
		}
		slices.Sort(envs)
		return inputErr("--env %q: not an environment of gitops.environments in %s; use one of %s", q.Env, cfg.Path, strings.Join(envs, ", "))
	}
	if len(q.Images) == 0 {
		return inputErr("nothing to promote: no published image in the release record (run the release first) and no --digest")
	}
	seen := map[string]bool{}
	for _, im := range q.Images {
		if _, ok := g.Images[im.Artifact]; !ok {
			known := make([]string, 0, len(g.Images))
			for a := range g.Images {
				known = append(known, a)
			}
			slices.Sort(known)
			return inputErr("%s: not an artifact of %s (gitops.images / artifacts); known: %s", im.Artifact, cfg.Path, strings.Join(known, ", "))
		}
		if seen[im.Artifact] {
			return inputErr("%s: given twice", im.Artifact)
		}
		seen[im.Artifact] = true
		if !IsDigest(im.Digest) {
			return inputErr("%s=%s: not a digest; want sha256:<64 lower-case hex> (an image index digest, as in dist/release.json)", im.Artifact, im.Digest)
		}
		if _, err := name.NewDigest(im.Ref()); err != nil {
			return inputErr("%s: %s is not an image reference: %v", im.Artifact, im.Ref(), err)
		}
	}
	if !q.DryRun && IsGitHub(g.Repo) && q.Token == "" {
		return inputErr("no GitHub token: set %s (gitops.token_env) to a token that can push to %s and open pull requests there (contents: write, pull-requests: write); or --dry-run", g.TokenEnv, g.Repo)
	}
	return nil
}

func (q *Request) logf(format string, args ...any) {
	if q.Log != nil {
		fmt.Fprintf(q.Log, format+"\n", args...)
	}
}

// Promote verifies the images and proposes them to the environment.
func Promote(ctx context.Context, q Request) (*Result, error) {
	if err := q.validate(); err != nil {
		return nil, err
	}
	g := q.Config.GitOps
	if q.Project == "" {
		q.Project = q.Config.Project
	}
	if q.Version == "" {
		q.Version = DigestsVersion(q.Images)
	}
	if q.Author.Name == "" || q.Author.Email == "" {
		q.Author = DefaultAuthor
	}
	res := &Result{Env: q.Env, Repo: g.Repo, File: g.Environments[q.Env], Images: q.Images, Branch: Branch(q.Env, q.Version),
		Previous: map[string]string{}, Keys: map[string]string{}}
	for _, im := range q.Images {
		res.Keys[im.Artifact] = g.Images[im.Artifact]
	}

	reports, err := Verify(ctx, q.Images, q.Expect, q.RemoteOptions...)
	res.Reports = reports
	if err != nil {
		return res, err
	}
	q.logf("promote: %d image(s) verified as admission will", len(q.Images))

	if q.DryRun {
		err = q.dryRun(res)
	} else {
		err = q.promote(ctx, res)
	}
	if err != nil {
		return res, err
	}
	return res, q.write(res)
}

// edit applies the digests to the values file at root/file.
func (q *Request) edit(res *Result, root, where string) error {
	path := filepath.Join(root, filepath.FromSlash(res.File))
	before, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("values file %s does not exist in %s: fix gitops.environments.%s in %s", res.File, where, q.Env, q.Config.Path)
	}
	if err != nil {
		return err
	}
	var ups []values.Update
	for _, im := range q.Images {
		ups = append(ups, values.Update{Path: res.Keys[im.Artifact], Value: im.Digest})
	}
	after, changes, err := values.Set(res.File, before, ups)
	if err != nil {
		var pe *values.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("%w (in %s; the key path is gitops.images.<artifact> in %s, default <artifact>.image.digest)", err, where, q.Config.Path)
		}
		return fmt.Errorf("%s: %w", where, err)
	}
	res.Changes = changes
	for _, im := range q.Images {
		res.Previous[im.Artifact] = im.Digest // unchanged unless a change says otherwise
		for _, c := range changes {
			if c.Path == res.Keys[im.Artifact] {
				res.Previous[im.Artifact] = c.Old
			}
		}
	}
	if len(changes) == 0 {
		return nil
	}
	res.Diff = UnifiedDiff(res.File, before, after)
	return atomicfile.Write(path, after, 0o644)
}

// dryRun promotes against a copy of gitops.template, offline.
func (q *Request) dryRun(res *Result) error {
	g := q.Config.GitOps
	if g.Template == "" {
		return inputErr("a dry-run promotes against gitops.template (a copy of the GitOps repository's layout, e.g. deploy/gitops), and %s names none", q.Config.Path)
	}
	tmp, err := os.MkdirTemp("", "bvrelease-promote-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := dircopy.Copy(q.Config.Abs(g.Template), tmp); err != nil {
		return fmt.Errorf("gitops.template: %w", err)
	}
	if err := q.edit(res, tmp, "the template "+g.Template); err != nil {
		return err
	}
	if len(res.Changes) == 0 {
		res.Status = StatusAlready
		return nil
	}
	res.Status = StatusDryRun
	res.Body = q.body(res)
	return nil
}

// remote returns the git remote and, for a GitHub gitops.repo, owner/name.
func (q *Request) remote() (string, string, error) {
	repo := q.Config.GitOps.Repo
	var url, gh string
	switch {
	case IsGitHub(repo):
		gh = repo
		server := q.GitHubServer
		if server == "" {
			server = "https://github.com"
		}
		url = strings.TrimSuffix(server, "/") + "/" + repo + ".git"
	case strings.Contains(repo, "://"):
		url = repo
	case repo == "":
		return "", "", inputErr("gitops.repo is empty in %s: name the GitOps repository (owner/name on GitHub, or a path or git URL)", q.Config.Path)
	default:
		url = q.Config.Abs(repo)
	}
	if o := q.GitRemote; o != "" {
		url = o
		if !strings.Contains(o, "://") && !filepath.IsAbs(o) {
			abs, err := filepath.Abs(o)
			if err != nil {
				return "", "", err
			}
			url = abs
		}
	}
	return url, gh, nil
}

// promote: clone or fetch, branch, edit, commit, push, pull request.
func (q *Request) promote(ctx context.Context, res *Result) error {
	g := q.Config.GitOps
	url, gh, err := q.remote()
	if err != nil {
		return err
	}
	dir := q.WorkDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "bvrelease-gitops-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "gitops")
	}
	where := fmt.Sprintf("%s@%s", g.Repo, g.Base)
	q.logf("promote: fetching %s (%s)", g.Repo, gitrepo.Redact(url, q.Token))
	repo, err := gitrepo.Open(ctx, dir, gitrepo.Remote{URL: url, Token: q.Token})
	if err != nil {
		return err
	}
	if err := repo.Checkout(ctx, res.Branch, g.Base); err != nil {
		return err
	}
	if err := q.edit(res, dir, where); err != nil {
		return err
	}
	if len(res.Changes) == 0 {
		res.Status = StatusAlready
		q.logf("promote: %s is already at these digests on %s", q.Env, where)
		return nil
	}
	res.Body = q.body(res)
	commit, err := repo.Commit(ctx, res.File, q.commitMessage(res), q.Author)
	if err != nil {
		return err
	}
	old, exists, err := repo.RemoteHead(ctx, res.Branch)
	if err != nil {
		return err
	}
	same := false
	if exists {
		if same, err = repo.SameChange(ctx, res.Branch, g.Base, commit); err != nil {
			return err
		}
	}
	if same {
		res.Commit = old
		q.logf("promote: branch %s already holds this change", res.Branch)
	} else {
		if err := repo.Push(ctx, res.Branch, old); err != nil {
			return err
		}
		res.Commit = commit
		q.logf("promote: pushed %s (%.12s)", res.Branch, commit)
	}
	if gh == "" {
		res.Status = StatusPushed
		return nil
	}
	c, err := ghpr.New(q.GitHubAPI, q.Token, gh, q.HTTPClient)
	if err != nil {
		return err
	}
	pr, err := c.Ensure(ctx, ghpr.PR{Base: g.Base, Head: res.Branch, Title: q.title(), Body: res.Body, Reviewers: g.Reviewers})
	if err != nil {
		return err
	}
	res.PR, res.URL, res.Warnings = pr.Number, pr.URL, pr.Warnings
	res.Status = StatusUpdated
	if pr.Created {
		res.Status = StatusOpened
	}
	for _, w := range pr.Warnings {
		q.logf("promote: warning: %s", w)
	}
	return nil
}

// write leaves the diff and the pull request body in OutDir.
func (q *Request) write(res *Result) error {
	if q.OutDir == "" || res.Status == StatusAlready {
		return nil
	}
	res.DiffPath = filepath.Join(q.OutDir, q.Env+".diff")
	res.BodyPath = filepath.Join(q.OutDir, q.Env+".md")
	if err := atomicfile.Write(res.DiffPath, res.Diff, 0o644); err != nil {
		return err
	}
	return atomicfile.Write(res.BodyPath, []byte(res.Body), 0o644)
}

// Record is the release record's entry for res; dist makes paths relative.
func (res *Result) Record(dist string, dryRun bool) release.PromotionRecord {
	rel := func(p string) string {
		if p == "" {
			return ""
		}
		if r, err := filepath.Rel(dist, p); err == nil && !strings.HasPrefix(r, "..") {
			return filepath.ToSlash(r)
		}
		return p
	}
	pr := release.PromotionRecord{Env: res.Env, DryRun: dryRun, Status: res.Status, Repo: res.Repo, File: res.File,
		Commit: res.Commit, PR: res.PR, URL: res.URL, Diff: rel(res.DiffPath), Body: rel(res.BodyPath)}
	if res.Status != StatusAlready {
		pr.Branch = res.Branch
	}
	for _, im := range res.Images {
		prev := res.Previous[im.Artifact]
		if prev == im.Digest {
			prev = ""
		}
		pr.Images = append(pr.Images, release.PromotedImage{Artifact: im.Artifact, Key: res.Keys[im.Artifact], Digest: im.Digest, Previous: prev})
	}
	return pr
}

// FromRecord lists the published images of a release record.
func FromRecord(rec release.Record) []Image {
	var out []Image
	for _, a := range rec.Artifacts {
		if a.Published == nil || a.Digest == "" {
			continue
		}
		out = append(out, Image{Artifact: a.Name, Repository: a.Published.Repository, Digest: a.Digest})
	}
	return out
}
