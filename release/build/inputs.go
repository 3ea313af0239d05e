package build

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/bitvault/bitvault/builder"
)

// InputsDigest fingerprints everything a build reads: the Dockerfile, every
// file of the context that .dockerignore lets through (path, mode, content),
// and the request's target, platforms, arguments, epoch and bases. Equal
// fingerprints mean the build would produce the same image, so a resumed run
// may skip it. Secrets are deliberately not part of it.
func InputsDigest(req builder.Request) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "target=%s\nplatforms=%s\nepoch=%d\n", req.Target, strings.Join(req.Platforms, ","), req.SourceDateEpoch)
	keys := make([]string, 0, len(req.BuildArgs))
	for k := range req.BuildArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "arg %s=%s\n", k, req.BuildArgs[k])
	}
	for _, b := range req.Bases {
		fmt.Fprintf(h, "base %s=%s\n", b.Ref, b.Digest)
	}
	df, err := os.ReadFile(req.Dockerfile)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "dockerfile %x\n", sha256.Sum256(df))
	ignore, err := ignorePatterns(req)
	if err != nil {
		return "", err
	}
	pm, err := patternmatcher.New(ignore)
	if err != nil {
		return "", fmt.Errorf("%s: .dockerignore: %w", req.ContextDir, err)
	}
	err = filepath.WalkDir(req.ContextDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(req.ContextDir, path)
		if rel == "." {
			return nil
		}
		rel = filepath.ToSlash(rel)
		if skip, _ := pm.MatchesOrParentMatches(rel); skip {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			fmt.Fprintf(h, "L %s %s\n", rel, target)
		case d.IsDir():
			fmt.Fprintf(h, "D %s %o\n", rel, info.Mode().Perm())
		case d.Type().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			fh := sha256.New()
			_, err = io.Copy(fh, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "F %s %o %x\n", rel, info.Mode().Perm(), fh.Sum(nil))
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash context %s: %w", req.ContextDir, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// ignorePatterns reads <Dockerfile>.dockerignore, else <context>/.dockerignore,
// the same precedence BuildKit's Dockerfile frontend uses.
func ignorePatterns(req builder.Request) ([]string, error) {
	for _, p := range []string{req.Dockerfile + ".dockerignore", filepath.Join(req.ContextDir, ".dockerignore")} {
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		pats, err := ignorefile.ReadAll(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return pats, nil
	}
	return nil, nil
}
