// Package plan is the first pipeline stage: it reads git and the
// configuration, decides the version, tags, SOURCE_DATE_EPOCH and which base
// images (upstream or offline stand-ins) stand behind every pinned FROM, and
// prints all of it before anything runs.
//
// A record left in dist/release.json by an earlier run of the same commit and
// configuration is kept, so later stages can skip what is already done.
package plan

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/builder/bases"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/config"
)

// Stage plans the release.
type Stage struct{}

func (Stage) Name() string { return "plan" }

func (Stage) Run(ctx context.Context, r *release.Release) error {
	src, err := ReadSource(ctx, r.Config.Root)
	if err != nil {
		return err
	}
	cfgBytes, err := os.ReadFile(r.Config.Path)
	if err != nil {
		return err
	}
	rec := release.Record{
		Schema:          release.Schema,
		Project:         r.Config.Project,
		Version:         src.Version(),
		Commit:          src.Commit,
		Dirty:           src.Dirty,
		SourceDateEpoch: src.CommitTime,
		DryRun:          r.DryRun,
		Registry:        r.Config.Registry,
		Platforms:       r.Config.Platforms,
		Tags:            src.Tags(),
		ConfigDigest:    fmt.Sprintf("sha256:%x", sha256.Sum256(cfgBytes)),
		BasesMode:       r.Config.Bases.Mode,
	}
	if r.Registry != "" {
		rec.Registry = r.Registry
	}
	if r.BasesMode != "" {
		rec.BasesMode = r.BasesMode
	}
	for _, t := range rec.Tags {
		if t == "latest" {
			return errors.New("refusing the tag 'latest': images are deployed by digest and tagged v<semver> and <git-sha> only")
		}
	}
	if prev, err := Load(r.RecordPath()); err == nil && prev.Commit == rec.Commit && prev.ConfigDigest == rec.ConfigDigest && prev.Dirty == rec.Dirty {
		rec.Artifacts = prev.Artifacts
		r.Logf("plan: resuming from %s (same commit and configuration)", r.RecordPath())
	}

	// Which external bases does each artifact use?
	uses := map[string][]string{}
	var refs []string
	for _, a := range r.Artifacts() {
		path := r.Config.Abs(a.Dockerfile)
		src, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("artifact %s: %w", a.Name, err)
		}
		bs, err := builder.BaseRefs(a.Dockerfile, src, a.Target)
		if err != nil {
			return fmt.Errorf("artifact %s: %w", a.Name, err)
		}
		for _, b := range bs {
			if !slices.Contains(refs, b) {
				refs = append(refs, b)
			}
			uses[b] = append(uses[b], a.Name)
		}
		ar := r.Artifact(a.Name)
		ar.Dockerfile, ar.Target = a.Dockerfile, a.Target
	}
	mode := rec.BasesMode
	if mode == config.BasesAuto {
		mode = config.BasesStandin
		if reason, ok := upstreamReachable(ctx, refs); ok {
			mode = config.BasesUpstream
		} else {
			r.Logf("plan: upstream base registries unreachable (%s): using offline stand-ins", reason)
		}
	}
	for _, ref := range refs {
		br := release.BaseRecord{Ref: ref, Used: mode, UsedBy: uses[ref]}
		if mode == config.BasesStandin {
			sd, ok := standinFor(r.Config, ref)
			if !ok {
				return fmt.Errorf("%s: FROM %s has no stand-in under bases.standins; add one (kind golang, distroless-static, node or distroless-nodejs) or run with --bases=upstream where the registry is reachable", r.Config.Path, ref)
			}
			br.Kind = sd.Kind
		}
		rec.Bases = append(rec.Bases, br)
	}
	rec.BasesMode = mode
	r.Record = rec
	Print(r)
	return nil
}

func standinFor(c *config.Config, ref string) (bases.Standin, bool) {
	for _, s := range c.Bases.Standins {
		if s.Ref == ref {
			return s, true
		}
	}
	return bases.Standin{}, false
}

// upstreamReachable asks each base's registry for its manifest, briefly.
func upstreamReachable(ctx context.Context, refs []string) (string, bool) {
	for _, ref := range refs {
		r, err := name.ParseReference(ref)
		if err != nil {
			return err.Error(), false
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = remote.Head(r, remote.WithContext(cctx), remote.WithTransport(http.DefaultTransport))
		cancel()
		if err != nil {
			return fmt.Sprintf("%s: %v", r.Context().RegistryStr(), firstLine(err.Error())), false
		}
	}
	return "", true
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// Load reads a release record.
func Load(path string) (release.Record, error) {
	var rec release.Record
	data, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return rec, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

// Print writes the plan as a table to the run's log.
func Print(r *release.Release) {
	if r.Log == nil {
		return
	}
	rec := r.Record
	w := tabwriter.NewWriter(r.Log, 2, 4, 2, ' ', 0)
	fmt.Fprintf(w, "PLAN\t%s %s\n", rec.Project, rec.Version)
	fmt.Fprintf(w, "commit\t%s (dirty: %v)\n", rec.Commit, rec.Dirty)
	fmt.Fprintf(w, "SOURCE_DATE_EPOCH\t%d (%s)\n", rec.SourceDateEpoch, time.Unix(rec.SourceDateEpoch, 0).UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "registry\t%s (dry-run: %v)\n", rec.Registry, rec.DryRun)
	fmt.Fprintf(w, "tags\t%s\n", strings.Join(rec.Tags, ", "))
	fmt.Fprintf(w, "platforms\t%s\n", strings.Join(rec.Platforms, ", "))
	for _, a := range r.Artifacts() {
		t := a.Target
		if t == "" {
			t = "(last stage)"
		}
		fmt.Fprintf(w, "artifact\t%s\t%s target %s\n", a.Name, a.Dockerfile, t)
	}
	for _, b := range rec.Bases {
		fmt.Fprintf(w, "base\t%s\t%s for %s\n", b.Used, b.Ref, strings.Join(b.UsedBy, ", "))
	}
	w.Flush()
}
