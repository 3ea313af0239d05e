// Package gitrepo drives the git CLI for promotion: clone (or fetch) the GitOps
// repository into a work directory, put a branch on the base branch, commit
// one file, and push the branch with a lease.
//
// For an http(s) remote a token is sent as an HTTP Authorization header
// (http.<scheme>://<host>/.extraheader, the way actions/checkout does),
// handed to git through GIT_CONFIG_COUNT/KEY/VALUE environment variables of
// the git process only: it is never part of a URL, never written to
// .git/config, and redacted from any git output this package returns.
package gitrepo

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// Remote is where the repository is fetched from and pushed to.
type Remote struct {
	URL   string // an https URL, a local path or a file:// URL
	Token string // for http(s) URLs: sent as basic x-access-token:<token>
}

// Author is who commits.
type Author struct{ Name, Email string }

// Repo is a work tree of the remote, with the remote as origin.
type Repo struct {
	Dir    string
	remote Remote
}

// Open clones remote into dir, or, when dir already holds a clone, points its
// origin at remote and fetches.
func Open(ctx context.Context, dir string, remote Remote) (*Repo, error) {
	r := &Repo{Dir: dir, remote: remote}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		if _, err := r.git(ctx, "remote", "set-url", "origin", remote.URL); err != nil {
			return nil, err
		}
		if _, err := r.git(ctx, "fetch", "--quiet", "--prune", "--no-tags", "origin", "+refs/heads/*:refs/remotes/origin/*"); err != nil {
			return nil, explainFetch(err)
		}
		return r, nil
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("work directory %s is not empty and not a git clone; remove it or choose another", dir)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	if _, err := r.gitIn(ctx, "", "clone", "--quiet", "--no-tags", "--no-checkout", remote.URL, dir); err != nil {
		return nil, explainFetch(err)
	}
	return r, nil
}

// Checkout makes branch point at origin/base, with a clean work tree.
func (r *Repo) Checkout(ctx context.Context, branch, base string) error {
	if _, ok, err := r.RemoteHead(ctx, base); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("the base branch %q does not exist in %s", base, Redact(r.remote.URL, r.remote.Token))
	}
	if _, err := r.git(ctx, "checkout", "--quiet", "--force", "-B", branch, "refs/remotes/origin/"+base); err != nil {
		return err
	}
	_, err := r.git(ctx, "clean", "--quiet", "-fdx")
	return err
}

// RemoteHead returns the commit of origin's branch as last fetched.
func (r *Repo) RemoteHead(ctx context.Context, branch string) (string, bool, error) {
	out, err := r.git(ctx, "for-each-ref", "--format=%(objectname)", "refs/remotes/origin/"+branch)
	if err != nil {
		return "", false, err
	}
	sha := strings.TrimSpace(out)
	return sha, sha != "", nil
}

// Commit commits path (relative to the work tree) as author and returns the commit.
func (r *Repo) Commit(ctx context.Context, path, message string, author Author) (string, error) {
	if _, err := r.git(ctx, "add", "--", filepath.ToSlash(path)); err != nil {
		return "", err
	}
	env := []string{
		"GIT_AUTHOR_NAME=" + author.Name, "GIT_AUTHOR_EMAIL=" + author.Email,
		"GIT_COMMITTER_NAME=" + author.Name, "GIT_COMMITTER_EMAIL=" + author.Email,
	}
	if _, err := r.run(ctx, r.Dir, env, "-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify", "-m", message); err != nil {
		return "", err
	}
	return r.Rev(ctx, "HEAD")
}

// Rev resolves a revision to an object name.
func (r *Repo) Rev(ctx context.Context, rev string) (string, error) {
	out, err := r.git(ctx, "rev-parse", "--verify", "--quiet", rev)
	return strings.TrimSpace(out), err
}

// SameChange reports whether origin's branch already holds exactly head's
// tree on top of origin's base (nothing to push).
func (r *Repo) SameChange(ctx context.Context, branch, base, head string) (bool, error) {
	remote, ok, err := r.RemoteHead(ctx, branch)
	if err != nil || !ok {
		return false, err
	}
	t1, err := r.Rev(ctx, remote+"^{tree}")
	if err != nil {
		return false, err
	}
	t2, err := r.Rev(ctx, head+"^{tree}")
	if err != nil {
		return false, err
	}
	if t1 != t2 {
		return false, nil
	}
	_, err = r.git(ctx, "merge-base", "--is-ancestor", "refs/remotes/origin/"+base, remote)
	var ee *exitError
	if errors.As(err, &ee) && ee.code == 1 {
		return false, nil
	}
	return err == nil, err
}

// Push sets origin's branch to HEAD, provided it is still at old (""
// = provided it does not exist): a concurrent push is never overwritten.
func (r *Repo) Push(ctx context.Context, branch, old string) error {
	_, err := r.git(ctx, "push", "--quiet", "--force-with-lease=refs/heads/"+branch+":"+old, "origin", "HEAD:refs/heads/"+branch)
	if err != nil {
		return explainPush(err)
	}
	_, err = r.git(ctx, "fetch", "--quiet", "--no-tags", "origin", "+refs/heads/"+branch+":refs/remotes/origin/"+branch)
	return err
}

func explainFetch(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "could not read Username") || strings.Contains(msg, "Authentication failed") || httpStatus(msg, "401"):
		return fmt.Errorf("%w\nthe remote did not accept the credentials: check the token (gitops.token_env in bvrelease.yaml, default GITOPS_TOKEN)", err)
	case httpStatus(msg, "403") || strings.Contains(msg, "not found") || strings.Contains(msg, "does not appear to be a git repository"):
		return fmt.Errorf("%w\ncheck gitops.repo (or --gitops-remote), and that the token can read the repository (contents: read)", err)
	}
	return err
}

func explainPush(err error) error {
	msg := err.Error()
	switch {
	// First: a refused lease also prints the remote's URL, whose port may contain "403".
	case strings.Contains(msg, "stale info") || strings.Contains(msg, "fetch first") || strings.Contains(msg, "non-fast-forward"):
		return fmt.Errorf("%w\nthe branch changed on the remote while promoting; run the promotion again", err)
	case httpStatus(msg, "403") || strings.Contains(msg, "denied") || strings.Contains(msg, "not allowed"):
		return fmt.Errorf("%w\nthe remote refused the push: the token needs write access to the repository's contents (a workflow token: permissions: contents: write; a fine-grained token: Contents: Read and write)", err)
	case httpStatus(msg, "401") || strings.Contains(msg, "Authentication failed") || strings.Contains(msg, "could not read Username"):
		return fmt.Errorf("%w\nthe remote did not accept the credentials: check the token (gitops.token_env in bvrelease.yaml, default GITOPS_TOKEN)", err)
	}
	return err
}

// httpStatus reports whether git's output names an HTTP status ("The requested URL returned
// error: 403", "HTTP 403"), not just the digits somewhere (a port, a hash).
func httpStatus(msg, code string) bool {
	return strings.Contains(msg, "error: "+code) || strings.Contains(msg, "HTTP "+code) || strings.Contains(msg, code+" Forbidden") || strings.Contains(msg, code+" Unauthorized")
}

type exitError struct {
	args   []string
	code   int
	output string
}

func (e *exitError) Error() string {
	return fmt.Sprintf("git %s: exit status %d: %s", strings.Join(e.args, " "), e.code, strings.TrimSpace(e.output))
}

func (r *Repo) git(ctx context.Context, args ...string) (string, error) {
	return r.gitIn(ctx, r.Dir, args...)
}

func (r *Repo) gitIn(ctx context.Context, dir string, args ...string) (string, error) {
	return r.run(ctx, dir, nil, args...)
}

// run runs git in dir with the auth environment and extra variables; its
// errors carry git's output with the token redacted.
func (r *Repo) run(ctx context.Context, dir string, extra []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=", "LC_ALL=C"), AuthEnv(os.Getenv, r.remote.URL, r.remote.Token)...)
	cmd.Env = append(cmd.Env, extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		shown := make([]string, len(args))
		for i, a := range args {
			shown[i] = Redact(a, r.remote.Token)
		}
		out := Redact(stderr.String()+stdout.String(), r.remote.Token)
		if errors.As(err, &ee) {
			return stdout.String(), &exitError{args: shown, code: ee.ExitCode(), output: out}
		}
		if errors.Is(err, exec.ErrNotFound) {
			return "", fmt.Errorf("git is not installed (scripts/setup.sh installs it): %w", err)
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(shown, " "), err)
	}
	return stdout.String(), nil
}

// AuthEnv returns the environment that makes git send token as an HTTP
// Authorization header to remote's host, appended to any GIT_CONFIG_COUNT
// entries already in the environment; nil for a local remote or no token.
func AuthEnv(getenv func(string) string, remote, token string) []string {
	if token == "" {
		return nil
	}
	u, err := url.Parse(remote)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil
	}
	n, _ := strconv.Atoi(getenv("GIT_CONFIG_COUNT"))
	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token))
	return []string{
		"GIT_CONFIG_COUNT=" + strconv.Itoa(n+1),
		fmt.Sprintf("GIT_CONFIG_KEY_%d=http.%s://%s/.extraheader", n, u.Scheme, u.Host),
		fmt.Sprintf("GIT_CONFIG_VALUE_%d=AUTHORIZATION: basic %s", n, basic),
	}
}

// Redact removes token (and its basic-auth encoding) and any URL password from s.
func Redact(s, token string) string {
	if token != "" {
		s = strings.ReplaceAll(s, base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token)), "***")
		s = strings.ReplaceAll(s, token, "***")
	}
	if u, err := url.Parse(s); err == nil && u.User != nil && u.Scheme != "" {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "***")
			return u.String()
		}
	}
	return s
}
