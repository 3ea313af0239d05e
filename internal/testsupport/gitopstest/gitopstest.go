// Package gitopstest gives tests a GitOps repository: a local bare git
// repository seeded with a directory (deploy/gitops) on a base branch, to
// clone from and push to like the real one, and helpers to read it back.
package gitopstest

import (
	"github.com/bitvault/bitvault/internal/dircopy"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Git runs git in dir with a fixed identity and returns its trimmed output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := GitErr(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// GitErr is Git returning the error.
func GitErr(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", append([]string{"-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=seed", "GIT_AUTHOR_EMAIL=seed@example.invalid",
		"GIT_COMMITTER_NAME=seed", "GIT_COMMITTER_EMAIL=seed@example.invalid", "GIT_TERMINAL_PROMPT=0")
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// Bare creates a bare repository whose branch base holds a copy of the
// directory template, and returns its path.
func Bare(t testing.TB, template, base string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed (scripts/setup.sh installs it)")
	}
	root := t.TempDir()
	bare := filepath.Join(root, "gitops.git")
	Git(t, root, "init", "--quiet", "--bare", bare)
	work := filepath.Join(root, "seed")
	Git(t, root, "init", "--quiet", "-b", base, work)
	if err := Copy(template, work); err != nil {
		t.Fatal(err)
	}
	Git(t, work, "add", "-A")
	Git(t, work, "commit", "--quiet", "-m", "seed")
	Git(t, work, "push", "--quiet", bare, base+":refs/heads/"+base)
	return bare
}

// Copy copies the regular files under src into dst.
func Copy(src, dst string) error { return dircopy.Copy(src, dst) }

// Show returns path at rev in the bare repository.
func Show(t testing.TB, bare, rev, path string) string {
	t.Helper()
	return Git(t, bare, "show", rev+":"+path)
}

// Commit writes path at branch in the bare repository with a new commit (a
// merge done on GitHub, say).
func Commit(t testing.TB, bare, branch, path, content string) {
	t.Helper()
	work := filepath.Join(t.TempDir(), "w")
	Git(t, filepath.Dir(work), "clone", "--quiet", "-b", branch, bare, work)
	if err := os.WriteFile(filepath.Join(work, path), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	Git(t, work, "commit", "--quiet", "-am", "edit "+path)
	Git(t, work, "push", "--quiet", "origin", branch)
}
