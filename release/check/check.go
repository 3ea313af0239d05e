// Package check is the pipeline stage that enforces the image design rules
// (builder/rules) on every artifact's Dockerfile and on every platform image
// of its built index in dist/oci. A verdict is recorded per index digest, so
// a resumed run does not check the same image twice.
package check

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/builder/rules"
	"github.com/bitvault/bitvault/release"
)

// Stage checks images.
type Stage struct {
	// DockerfilesOnly checks the Dockerfiles and skips the built images.
	DockerfilesOnly bool
}

func (Stage) Name() string { return "check" }

// Dockerfiles checks every selected artifact's Dockerfile.
func Dockerfiles(r *release.Release) ([]rules.Violation, error) {
	var all []rules.Violation
	for _, a := range r.Artifacts() {
		src, err := os.ReadFile(r.Config.Abs(a.Dockerfile))
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", a.Name, err)
		}
		vs, err := rules.CheckDockerfile(a.Dockerfile, src, rules.DockerfileOptions{Target: a.Target})
		if err != nil {
			return nil, fmt.Errorf("check %s: %w", a.Name, err)
		}
		all = append(all, vs...)
	}
	return all, nil
}

func (s Stage) Run(ctx context.Context, r *release.Release) error {
	all, err := Dockerfiles(r)
	if err != nil {
		return err
	}
	if s.DockerfilesOnly {
		return report(r, all)
	}
	lp, err := builder.OpenLayout(r.OCIDir())
	if err != nil {
		return err
	}
	for _, a := range r.Artifacts() {
		ar := r.Artifact(a.Name)
		if ar.Check != nil && ar.Check.Digest == ar.Digest && ar.Check.Passed {
			r.Logf("check: %s %s already passed", a.Name, ar.Digest)
			continue
		}
		idx, desc, err := builder.Index(lp, a.Name)
		if err != nil {
			return fmt.Errorf("check %s: %w", a.Name, err)
		}
		vs, err := rules.CheckIndex(idx, rules.ImageOptions{
			Name:            a.Name,
			SourceDateEpoch: time.Unix(r.Record.SourceDateEpoch, 0).UTC(),
			Platforms:       r.Config.Platforms,
		})
		if err != nil {
			return fmt.Errorf("check %s: %w", a.Name, err)
		}
		// Dockerfile violations of this artifact belong to its verdict too.
		for _, v := range all {
			if v.File == a.Dockerfile {
				vs = append(vs, v)
			}
		}
		ar.Check = &release.CheckRecord{Digest: desc.Digest.String(), Passed: len(vs) == 0, Violations: vs}
		all = append(all, imageOnly(vs)...)
	}
	return report(r, dedupe(all))
}

func imageOnly(vs []rules.Violation) []rules.Violation {
	var out []rules.Violation
	for _, v := range vs {
		if v.File == "" {
			out = append(out, v)
		}
	}
	return out
}

func dedupe(vs []rules.Violation) []rules.Violation {
	seen := map[string]bool{}
	var out []rules.Violation
	for _, v := range vs {
		if k := v.String(); !seen[k] {
			seen[k] = true
			out = append(out, v)
		}
	}
	return out
}

// Failed is the error of a check that found violations; it lists them all.
type Failed struct{ Violations []rules.Violation }

func (f *Failed) Error() string {
	msg := fmt.Sprintf("%d image design rule violation(s):", len(f.Violations))
	for _, v := range f.Violations {
		msg += "\n  " + v.String()
	}
	return msg
}

func report(r *release.Release, vs []rules.Violation) error {
	if len(vs) == 0 {
		r.Logf("check: every Dockerfile and image follows the design rules")
		return nil
	}
	return &Failed{Violations: vs}
}

// AsFailed unwraps a check failure.
func AsFailed(err error) (*Failed, bool) {
	var f *Failed
	ok := errors.As(err, &f)
	return f, ok
}
