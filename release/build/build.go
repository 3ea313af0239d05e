// Package build is the pipeline stage that builds every artifact with
// BuildKit into dist/oci, one solve per image for all platforms.
//
// An artifact whose inputs (see InputsDigest) match the record of an earlier
// run and whose index is still in dist/oci is not built again. With
// VerifyReproducible every artifact is built a second time by a daemon with
// wiped state (a fresh managed buildkitd, or --no-cache on BUILDKIT_HOST) into
// a scratch layout, and the stage fails unless every digest matches.
package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/builder/buildkitd"
	"github.com/bitvault/bitvault/release"
)

// Stage builds images.
type Stage struct{}

func (Stage) Name() string { return "build" }

// Requests returns the build request of every selected artifact.
func Requests(r *release.Release) ([]builder.Request, error) {
	secrets, err := r.Config.SecretValues(os.Getenv)
	if err != nil {
		return nil, err
	}
	var reqs []builder.Request
	for _, a := range r.Artifacts() {
		args := map[string]string{"VERSION": r.Record.Version, "COMMIT": r.Record.Commit}
		for k, v := range a.BuildArgs {
			args[k] = v
		}
		reqs = append(reqs, builder.Request{
			Name:            a.Name,
			ContextDir:      r.Config.Abs(a.Context),
			Dockerfile:      r.Config.Abs(a.Dockerfile),
			Target:          a.Target,
			Platforms:       r.Config.Platforms,
			BuildArgs:       args,
			SourceDateEpoch: r.Record.SourceDateEpoch,
			Bases:           r.NamedContexts,
			Secrets:         secrets,
		})
	}
	return reqs, nil
}

func (Stage) Run(ctx context.Context, r *release.Release) error {
	reqs, err := Requests(r)
	if err != nil {
		return err
	}
	lp, err := builder.OpenLayout(r.OCIDir())
	if err != nil {
		return err
	}
	built := 0
	for _, req := range reqs {
		ar := r.Artifact(req.Name)
		inputs, err := InputsDigest(req)
		if err != nil {
			return fmt.Errorf("build %s: %w", req.Name, err)
		}
		if ar.InputsDigest == inputs && ar.Digest != "" {
			if have, err := builder.Describe(lp, req.Name); err == nil && have.Digest.String() == ar.Digest {
				r.Logf("build: %s up to date (%s)", req.Name, ar.Digest)
				continue
			}
		}
		d, err := r.Connect(ctx)
		if err != nil {
			return err
		}
		b := &builder.Builder{Client: d.Client, Layout: r.OCIDir(), Out: os.Stderr, Progress: r.Progress}
		res, err := b.Build(ctx, req)
		if err != nil {
			return err
		}
		if ar.Digest != res.Digest.String() {
			ar.Check, ar.Published = nil, nil // a new image needs checking and publishing again
		}
		ar.InputsDigest = inputs
		ar.Digest = res.Digest.String()
		ar.Manifests = res.Manifests
		ar.BuildSeconds = res.Duration.Seconds()
		ar.BuiltAt = time.Now().UTC().Truncate(time.Second)
		built++
		r.Logf("build: %s %s (%.1fs)", req.Name, res.Digest, res.Duration.Seconds())
	}
	if r.VerifyReproducible {
		if err := verifyReproducible(ctx, r, reqs); err != nil {
			return err
		}
	}
	if built == 0 && !r.VerifyReproducible {
		return release.Skip("every image is up to date in %s", r.OCIDir())
	}
	return nil
}

// verifyReproducible rebuilds everything from scratch and compares digests.
func verifyReproducible(ctx context.Context, r *release.Release, reqs []builder.Request) error {
	scratch, err := os.MkdirTemp("", "bvrelease-repro-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	opts := buildkitd.Options{Host: r.BuildkitHost, Log: r.Log}
	noCache := r.BuildkitHost != ""
	if !noCache {
		opts.StateDir = scratch + "/state"
		r.Logf("build: verify-reproducible: second build on a fresh buildkitd with empty state")
	} else {
		r.Logf("build: verify-reproducible: second build on %s with --no-cache", r.BuildkitHost)
	}
	d, err := buildkitd.Connect(ctx, opts)
	if err != nil {
		return fmt.Errorf("verify-reproducible: %w", err)
	}
	defer d.Close()
	b := &builder.Builder{Client: d.Client, Layout: scratch + "/oci", Out: os.Stderr, Progress: r.Progress}
	var diffs []string
	w := tabwriter.NewWriter(r.Log, 2, 4, 2, ' ', 0)
	fmt.Fprintln(w, "REPRODUCIBLE\tARTIFACT\tPLATFORM\tFIRST\tSECOND")
	for _, req := range reqs {
		req.NoCache = noCache
		second, err := b.Build(ctx, req)
		if err != nil {
			return fmt.Errorf("verify-reproducible: %w", err)
		}
		first := r.Artifact(req.Name)
		row := func(platform, a, b string) {
			ok := "yes"
			if a != b {
				ok = "NO"
				diffs = append(diffs, fmt.Sprintf("%s %s: %s != %s", req.Name, platform, a, b))
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", ok, req.Name, platform, short(a), short(b))
		}
		row("index", first.Digest, second.Digest.String())
		for i, m := range second.Manifests {
			a := ""
			if i < len(first.Manifests) {
				a = first.Manifests[i].Digest.String()
			}
			row(m.Platform, a, m.Digest.String())
		}
	}
	w.Flush()
	if len(diffs) > 0 {
		return errors.New("not reproducible: " + strings.Join(diffs, "; ") + "; compare the two builds' layers (e.g. with 'crane export') to find the file that differs")
	}
	return nil
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}
