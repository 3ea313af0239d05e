package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/bitvault/bitvault/attest/admission"
	"github.com/bitvault/bitvault/internal/atomicfile"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/attest"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/promote"
	"github.com/bitvault/bitvault/release/promote/ghpr"
	"github.com/bitvault/bitvault/release/promote/gitrepo"
	"github.com/bitvault/bitvault/release/sign"
)

type promoteOptions struct {
	Config       string
	Dist         string
	Env          string
	From         string
	Digests      []string
	Registry     string
	Version      string
	DryRun       bool
	GitOpsRemote string
	GitHubAPI    string
	WorkDir      string
	Author       string
	TrustedRoot  string
}

func (o *promoteOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVarP(&o.Config, "config", "c", config.FileName, "release configuration (its gitops section names the repository, environments and key paths; its signing section whom to trust)")
	fs.StringVar(&o.Dist, "dist", "", "output directory (default: dist/ beside the configuration); the diff and pull request body go to <dist>/promote/<env>.diff and .md")
	fs.StringVar(&o.Env, "env", "", "the environment to promote to: one of gitops.environments (dev, staging, prod)")
	fs.StringVar(&o.From, "from", "", "promote the published digests of this release record (default: <dist>/release.json when no --digest is given)")
	fs.StringArrayVar(&o.Digests, "digest", nil, "promote ARTIFACT=sha256:<digest> (repeatable) instead of a release record; the image is <registry>/<artifact>")
	fs.StringVar(&o.Registry, "registry", "", "with --digest: the repository prefix the images are in (default: registry from the configuration)")
	fs.StringVar(&o.Version, "version", "", "the version the branch and pull request are named for (default: the record's; with --digest, one derived from the digests)")
	fs.BoolVar(&o.DryRun, "dry-run", false, "no git, no GitHub: promote against a copy of gitops.template and print the diff and the pull request body")
	fs.StringVar(&o.GitOpsRemote, "gitops-remote", "", "git remote to clone and push instead of the one gitops.repo names (a path, file:// or https URL); pull requests still go to gitops.repo on GitHub")
	fs.StringVar(&o.GitHubAPI, "github-api", "", "GitHub REST API URL (default: $GITHUB_API_URL, else "+ghpr.DefaultAPI+")")
	fs.StringVar(&o.WorkDir, "work-dir", "", "where the GitOps repository is cloned, and fetched on later runs (default: <dist>/promote/gitops)")
	fs.StringVar(&o.Author, "author", "", fmt.Sprintf("commit author, 'Name <email>' (default: %s <%s>)", promote.DefaultAuthor.Name, promote.DefaultAuthor.Email))
	fs.StringVar(&o.TrustedRoot, "trusted-root", "", "Sigstore trusted_root.json to verify a release's images against (default: signing.trusted_root, else Sigstore's public-good root)")
}

func newPromoteCommand() *cobra.Command {
	o := &promoteOptions{}
	cmd := &cobra.Command{
		Use:   "promote --env ENV [--from dist/release.json | --digest ARTIFACT=sha256:...]",
		Short: "Propose a release's digests to a GitOps environment: verify, edit the values file, branch, pull request",
		Long: `Promote a release's image digests to a GitOps environment:

  1. verify every image as admission will (bvrelease verify): a failed check refuses the promotion
  2. in gitops.environments.<env>, set each image's digest (gitops.images.<artifact>, default
     <artifact>.image.digest) — only those values change, comments and formatting stay
  3. commit on the branch bvrelease/promote-<env>-v<version> from gitops.base and push it
  4. open the pull request (or update the open one), with the digests, provenance references and
     the verification results, and request gitops.reviewers

The token (gitops.token_env, default GITOPS_TOKEN) needs contents: write and pull-requests: write
on gitops.repo. An environment already at the digests is left alone (exit 0).
--dry-run needs no token and no network for git: it promotes against a copy of gitops.template
and prints the diff and the pull request body. A dry-run release can only be promoted with
--dry-run (its images are signed by the dry-run CA).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func (o *promoteOptions) run(cmd *cobra.Command) error {
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	if o.Env == "" {
		return usageError{errors.New("--env: say which environment to promote to (one of gitops.environments in bvrelease.yaml)")}
	}
	if o.From != "" && len(o.Digests) > 0 {
		return usageError{errors.New("--from and --digest: promote a release record or digests, not both")}
	}
	cfg, err := config.Load(o.Config)
	if err != nil {
		return err
	}
	if cfg.GitOps == nil {
		return usageError{fmt.Errorf("%s has no gitops section: add gitops.repo and gitops.environments", o.Config)}
	}
	dist := o.Dist
	if dist == "" {
		dist = filepath.Join(cfg.Root, "dist")
	}
	author := promote.DefaultAuthor
	if o.Author != "" {
		a, err := mail.ParseAddress(o.Author)
		if err != nil || a.Name == "" {
			return usageError{fmt.Errorf("--author %q: want 'Name <email>'", o.Author)}
		}
		author = gitrepo.Author{Name: a.Name, Email: a.Address}
	}

	q := promote.Request{Config: cfg, Env: o.Env, Version: o.Version, DryRun: o.DryRun, OutDir: filepath.Join(dist, "promote"),
		GitRemote: o.GitOpsRemote, GitHubAPI: o.GitHubAPI, GitHubServer: os.Getenv("GITHUB_SERVER_URL"),
		Token: os.Getenv(cfg.GitOps.TokenEnv), WorkDir: o.WorkDir, Author: author, RemoteOptions: sign.RemoteOptions(ctx), Log: cmd.ErrOrStderr()}
	if q.GitHubAPI == "" {
		q.GitHubAPI = os.Getenv("GITHUB_API_URL")
	}
	if q.WorkDir == "" {
		q.WorkDir = filepath.Join(dist, "promote", "gitops")
	}

	var rec *release.Record
	recordPath := o.From
	if len(o.Digests) > 0 {
		registry := o.Registry
		if registry == "" {
			registry = cfg.Registry
		}
		for _, d := range o.Digests {
			art, dig, ok := strings.Cut(d, "=")
			if !ok || art == "" {
				return usageError{fmt.Errorf("--digest %q: want ARTIFACT=sha256:<digest>", d)}
			}
			q.Images = append(q.Images, promote.Image{Artifact: art, Repository: strings.TrimSuffix(registry, "/") + "/" + art, Digest: dig})
		}
		if q.Expect, err = promote.ConfigExpect(cfg, o.TrustedRoot); err != nil {
			return err
		}
	} else {
		if recordPath == "" {
			recordPath = filepath.Join(dist, "release.json")
		}
		data, err := os.ReadFile(recordPath)
		if errors.Is(err, fs.ErrNotExist) {
			return usageError{fmt.Errorf("no release record at %s: run a release first (bvrelease release), or give --from RECORD or --digest ARTIFACT=sha256:...", recordPath)}
		}
		if err != nil {
			return err
		}
		rec = &release.Record{}
		if err := json.Unmarshal(data, rec); err != nil {
			return fmt.Errorf("%s: %w", recordPath, err)
		}
		q.Images, q.Project = promote.FromRecord(*rec), rec.Project
		if q.Version == "" {
			q.Version = rec.Version
		}
		if rec.DryRun {
			if !o.DryRun {
				return usageError{fmt.Errorf("%s is a dry-run release (signed by the dry-run CA, published to a local registry): it can only be promoted with --dry-run", recordPath)}
			}
			// Checked as the verify stage checks it: the policy its sign stage wrote.
			policy := filepath.Join(filepath.Dir(recordPath), "sign", "policy.json")
			if q.Expect, err = promote.PolicyExpect(cfg, policy, admission.Builder{ID: attest.BuilderID()}); err != nil {
				return err
			}
		} else if q.Expect, err = promote.ConfigExpect(cfg, o.TrustedRoot); err != nil {
			return err
		}
	}

	res, err := promote.Promote(ctx, q)
	if res != nil && len(res.Reports) > 0 {
		fmt.Fprintln(out, "VERIFY")
		if perr := printReports(out, "table", res.Reports); perr != nil && err == nil {
			err = perr
		}
		fmt.Fprintln(out)
	}
	if res != nil && res.Status != "" && rec != nil {
		rec.SetPromotion(res.Record(filepath.Dir(recordPath), o.DryRun))
		if werr := writeRecord(recordPath, rec); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		var ie *promote.InputError
		if errors.As(err, &ie) {
			return usageError{err}
		}
		return err
	}
	printPromotion(out, cfg, res, o.DryRun)
	return nil
}

func writeRecord(path string, rec *release.Record) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'), 0o644)
}

func printPromotion(out io.Writer, cfg *config.Config, res *promote.Result, dryRun bool) {
	g := cfg.GitOps
	where := fmt.Sprintf("%s@%s", g.Repo, g.Base)
	if dryRun {
		where = fmt.Sprintf("gitops.template %s", g.Template)
	}
	if res.Status == promote.StatusAlready {
		fmt.Fprintf(out, "already promoted: %s (%s in %s) is at these digests; nothing to do\n", res.Env, res.File, where)
		return
	}
	if dryRun {
		fmt.Fprintf(out, "DIFF (%s)\n%s\n", res.DiffPath, res.Diff)
		fmt.Fprintf(out, "PULL REQUEST BODY (%s)\n%s\n", res.BodyPath, res.Body)
	}
	var images []string
	for _, im := range res.Images {
		images = append(images, im.Artifact)
	}
	sort.Strings(images)
	switch res.Status {
	case promote.StatusDryRun:
		fmt.Fprintf(out, "dry-run: would propose %s to %s on %s as branch %s\n", strings.Join(images, ", "), res.Env, g.Repo, res.Branch)
	case promote.StatusOpened:
		fmt.Fprintf(out, "promote: %s: opened pull request #%d %s (branch %s)\n", res.Env, res.PR, res.URL, res.Branch)
	case promote.StatusUpdated:
		fmt.Fprintf(out, "promote: %s: updated pull request #%d %s (branch %s)\n", res.Env, res.PR, res.URL, res.Branch)
	case promote.StatusPushed:
		fmt.Fprintf(out, "promote: %s: pushed branch %s to %s (not a GitHub repository: open the pull request there)\n", res.Env, res.Branch, g.Repo)
	}
	for _, w := range res.Warnings {
		fmt.Fprintf(out, "warning: %s\n", w)
	}
}
