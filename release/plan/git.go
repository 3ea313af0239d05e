package plan

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"
)

// Source is what git says about the tree being released.
type Source struct {
	Commit     string // full SHA of HEAD
	Tag        string // vX.Y.Z pointing at HEAD, if any
	Dirty      bool   // tracked files modified, or untracked files not ignored
	CommitTime int64  // committer time of HEAD, the SOURCE_DATE_EPOCH
}

var semverTag = regexp.MustCompile(`^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?$`)

// ReadSource inspects the git work tree at dir.
func ReadSource(ctx context.Context, dir string) (Source, error) {
	var s Source
	out, err := git(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return s, fmt.Errorf("%s is not a git work tree with a commit (%w); bvrelease versions releases from git: run 'git init && git commit' first", dir, err)
	}
	s.Commit = out
	if out, err = git(ctx, dir, "log", "-1", "--format=%ct", "HEAD"); err != nil {
		return s, err
	}
	if s.CommitTime, err = strconv.ParseInt(out, 10, 64); err != nil {
		return s, fmt.Errorf("commit time of HEAD: %w", err)
	}
	if out, err = git(ctx, dir, "tag", "--points-at", "HEAD", "--list", "v*"); err != nil {
		return s, err
	}
	for _, t := range strings.Fields(out) {
		if semverTag.MatchString(t) && (s.Tag == "" || semver.Compare(t, s.Tag) > 0) {
			s.Tag = t
		}
	}
	if out, err = git(ctx, dir, "status", "--porcelain", "--untracked-files=normal"); err != nil {
		return s, err
	}
	s.Dirty = out != ""
	return s, nil
}

// Version is the release version: the tag without its v, or 0.0.0-<short sha>,
// with -dirty appended for a modified tree.
func (s Source) Version() string {
	v := "0.0.0-" + s.Commit[:12]
	if s.Tag != "" {
		v = strings.TrimPrefix(s.Tag, "v")
	}
	if s.Dirty {
		v += "-dirty"
	}
	return v
}

// Tags are the human tags pushed for every image: v<version> and the commit
// SHA. 'latest' is never among them.
func (s Source) Tags() []string {
	return []string{"v" + s.Version(), s.Commit}
}

func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}
