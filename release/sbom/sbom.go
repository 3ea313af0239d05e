// Package sbom is the pipeline stage that writes an SPDX and a CycloneDX SBOM
// for every platform manifest of every artifact (attest/sbom, syft as a
// library) under dist/sbom/<artifact>/<os>-<arch>.{spdx,cdx}.json. An SBOM
// already written for the same manifest digest is not generated again.
package sbom

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	attestsbom "github.com/bitvault/bitvault/attest/sbom"
	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/internal/atomicfile"
	"github.com/bitvault/bitvault/release"
)

// Stage writes SBOMs.
type Stage struct{}

func (Stage) Name() string { return "sbom" }

func (Stage) Run(ctx context.Context, r *release.Release) error {
	lp, err := builder.OpenLayout(r.OCIDir())
	if err != nil {
		return err
	}
	made := 0
	for _, a := range r.Artifacts() {
		ar := r.Artifact(a.Name)
		idx, _, err := builder.Index(lp, a.Name)
		if err != nil {
			return fmt.Errorf("sbom %s: %w", a.Name, err)
		}
		var recs []release.SBOMRecord
		for _, m := range ar.Manifests {
			if prev, ok := find(ar.SBOMs, m.Platform); ok && prev.Digest == m.Digest.String() && exists(r.Dist, prev.SPDX, prev.CycloneDX) {
				recs = append(recs, prev)
				continue
			}
			start := time.Now()
			img, err := idx.Image(m.Digest)
			if err != nil {
				return fmt.Errorf("sbom %s %s: %w", a.Name, m.Platform, err)
			}
			docs, err := attestsbom.Generate(ctx, img, attestsbom.Options{
				Name: a.Name, Platform: m.Platform, Digest: m.Digest,
				Created: time.Unix(r.Record.SourceDateEpoch, 0).UTC(),
			})
			if err != nil {
				return fmt.Errorf("sbom %s %s: %w", a.Name, m.Platform, err)
			}
			rec, err := write(r.Dist, a.Name, m.Platform, m.Digest, docs)
			if err != nil {
				return fmt.Errorf("sbom %s %s: %w", a.Name, m.Platform, err)
			}
			rec.Seconds = time.Since(start).Seconds()
			recs = append(recs, rec)
			made++
			r.Logf("sbom: %s %s: %d packages (%.1fs)", a.Name, m.Platform, rec.Packages, rec.Seconds)
		}
		ar.SBOMs = recs
	}
	if made == 0 {
		return release.Skip("every SBOM is up to date")
	}
	return nil
}

func write(dist, name, platform string, digest v1.Hash, docs *attestsbom.Documents) (release.SBOMRecord, error) {
	base := filepath.Join("sbom", name, strings.ReplaceAll(platform, "/", "-"))
	rec := release.SBOMRecord{Platform: platform, Digest: digest.String(), SPDX: base + ".spdx.json", CycloneDX: base + ".cdx.json"}
	if err := atomicfile.Write(filepath.Join(dist, rec.SPDX), docs.SPDX, 0o644); err != nil {
		return rec, err
	}
	if err := atomicfile.Write(filepath.Join(dist, rec.CycloneDX), docs.CycloneDX, 0o644); err != nil {
		return rec, err
	}
	n, err := attestsbom.Summary(docs)
	if err != nil {
		return rec, err
	}
	rec.Packages = n
	return rec, nil
}

func find(recs []release.SBOMRecord, platform string) (release.SBOMRecord, bool) {
	for _, r := range recs {
		if r.Platform == platform {
			return r, true
		}
	}
	return release.SBOMRecord{}, false
}

func exists(dist string, paths ...string) bool {
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join(dist, p)); err != nil {
			return false
		}
	}
	return true
}
