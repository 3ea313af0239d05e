package plan

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func gitRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	run := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@localhost", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@localhost",
			"GIT_AUTHOR_DATE=@1700000000 +0000", "GIT_COMMITTER_DATE=@1700000000 +0000")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q")
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644)
	run("add", "a.txt")
	run("commit", "-qm", "one")
	return dir
}

func TestReadSource(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		edit      func(t *testing.T, dir string)
		version   string // with <sha> for the short commit
		firstTag  string
		wantDirty bool
	}{
		{"untagged clean", nil, "0.0.0-<sha>", "v0.0.0-<sha>", false},
		{"tagged", func(t *testing.T, dir string) { git(ctx, dir, "tag", "v1.2.3") }, "1.2.3", "v1.2.3", false},
		{"tagged, highest wins, non-semver ignored", func(t *testing.T, dir string) {
			git(ctx, dir, "tag", "v1.2.3")
			git(ctx, dir, "tag", "v1.10.0")
			git(ctx, dir, "tag", "vnext")
		}, "1.10.0", "v1.10.0", false},
		{"modified file", func(t *testing.T, dir string) { os.WriteFile(filepath.Join(dir, "a.txt"), []byte("b\n"), 0o644) }, "0.0.0-<sha>-dirty", "v0.0.0-<sha>-dirty", true},
		{"untracked file", func(t *testing.T, dir string) { os.WriteFile(filepath.Join(dir, "new.txt"), []byte("b\n"), 0o644) }, "0.0.0-<sha>-dirty", "v0.0.0-<sha>-dirty", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := gitRepo(t)
			if tc.edit != nil {
				tc.edit(t, dir)
			}
			s, err := ReadSource(ctx, dir)
			if err != nil {
				t.Fatal(err)
			}
			short := s.Commit[:12]
			if want := strings.ReplaceAll(tc.version, "<sha>", short); s.Version() != want {
				t.Errorf("version = %s, want %s", s.Version(), want)
			}
			tags := s.Tags()
			if want := strings.ReplaceAll(tc.firstTag, "<sha>", short); tags[0] != want || tags[1] != s.Commit || len(tags) != 2 {
				t.Errorf("tags = %v, want [%s %s]", tags, want, s.Commit)
			}
			if s.Dirty != tc.wantDirty {
				t.Errorf("dirty = %v, want %v", s.Dirty, tc.wantDirty)
			}
			if s.CommitTime != 1700000000 {
				t.Errorf("commit time = %d, want the committer date 1700000000", s.CommitTime)
			}
		})
	}
}

func TestReadSourceNotARepo(t *testing.T) {
	_, err := ReadSource(context.Background(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not a git work tree") || !strings.Contains(err.Error(), "git init") {
		t.Fatalf("err = %v, want advice to commit", err)
	}
}
