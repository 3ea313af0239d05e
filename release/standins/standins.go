// Package standins is the pipeline stage that prepares the offline base
// images: for every pinned FROM the plan assigned to a stand-in, it builds
// (or finds already built) the stand-in index in dist/bases and hands it to
// the build stage as a BuildKit named context keyed by the FROM reference.
package standins

import (
	"context"
	"os"
	"path/filepath"

	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/builder/bases"
	"github.com/bitvault/bitvault/release"
)

// Stage prepares stand-ins.
type Stage struct {
	// UpdateLock resolves inputs anew and rewrites the lock file.
	UpdateLock bool
}

func (Stage) Name() string { return "bases" }

// CacheDir is where downloaded base inputs are kept between runs.
func CacheDir() string {
	if d := os.Getenv("BITVAULT_CACHE_DIR"); d != "" {
		return filepath.Join(d, "bases")
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "bitvault", "bases")
}

func (s Stage) Run(ctx context.Context, r *release.Release) error {
	var want []bases.Standin
	for _, b := range r.Record.Bases {
		if b.Used != "standin" {
			continue
		}
		for _, s := range r.Config.Bases.Standins {
			if s.Ref == b.Ref {
				want = append(want, s)
			}
		}
	}
	if len(want) == 0 {
		return release.Skip("every base comes from its upstream registry")
	}
	spec := r.Config.Bases.Spec
	spec.Standins = want
	built, err := bases.Build(ctx, bases.Options{
		Spec:       spec,
		Platforms:  r.Config.Platforms,
		LayoutDir:  r.BasesDir(),
		CacheDir:   CacheDir(),
		LockFile:   r.Config.Abs(r.Config.Bases.Lock),
		Log:        r.Log,
		UpdateLock: s.UpdateLock,
	})
	if err != nil {
		return err
	}
	r.NamedContexts = nil
	for _, b := range built {
		r.NamedContexts = append(r.NamedContexts, builder.NamedContext{Ref: b.Ref, Layout: r.BasesDir(), Digest: b.Digest})
		for i := range r.Record.Bases {
			if r.Record.Bases[i].Ref == b.Ref {
				r.Record.Bases[i].Digest = b.Digest.String()
				r.Record.Bases[i].Kind = b.Kind
				r.Record.Bases[i].Inputs = b.Inputs
			}
		}
	}
	return nil
}
