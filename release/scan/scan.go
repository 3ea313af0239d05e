// Package scan is the pipeline stage that scans every platform manifest with
// the pinned trivy (attest/scan) and gates the release: a CRITICAL or HIGH
// finding that has a fix fails it, unless .bvrelease/vuln-allow.yaml allows
// it with a reason and an unexpired date (an expired entry fails too).
//
// The vulnerability DB is trivy's normal download, or --vuln-db DIR offline.
// With neither, a real release fails; a dry-run records every manifest as
// "not-scanned" with the reason — never as clean.
package scan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	attestscan "github.com/bitvault/bitvault/attest/scan"
	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/internal/atomicfile"
	"github.com/bitvault/bitvault/release"
)

// Stage scans images.
type Stage struct{}

func (Stage) Name() string { return "scan" }

// CacheDir is trivy's cache between runs.
func CacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "bitvault", "trivy")
}

func (Stage) Run(ctx context.Context, r *release.Release) error {
	allow, err := attestscan.LoadAllowList(r.Config.Abs(attestscan.DefaultAllowList))
	if err != nil {
		return err
	}
	lp, err := builder.OpenLayout(r.OCIDir())
	if err != nil {
		return err
	}
	var reports []*attestscan.Report
	type slot struct {
		ar  *release.ArtifactRecord
		idx int
	}
	slots := map[*attestscan.Report]slot{}
	notScanned := ""
	for _, a := range r.Artifacts() {
		ar := r.Artifact(a.Name)
		idx, _, err := builder.Index(lp, a.Name)
		if err != nil {
			return fmt.Errorf("scan %s: %w", a.Name, err)
		}
		ar.Scans = nil
		for _, m := range ar.Manifests {
			start := time.Now()
			img, err := idx.Image(m.Digest)
			if err != nil {
				return fmt.Errorf("scan %s %s: %w", a.Name, m.Platform, err)
			}
			rep, err := attestscan.Scan(ctx, img, attestscan.Options{
				DBDir: r.VulnDB, CacheDir: CacheDir(), Name: a.Name, Platform: m.Platform, Digest: m.Digest,
			})
			rec := release.ScanRecord{Platform: m.Platform, Digest: m.Digest.String(), Seconds: time.Since(start).Seconds()}
			if err != nil {
				if r.VulnDB != "" {
					return err // attest/scan names the image and platform
				}
				if !r.DryRun {
					return fmt.Errorf("%s: a release is never published unscanned; give an offline DB with --vuln-db DIR: %w", reasonOf(err), err)
				}
				rec.Status, rec.Reason = "not-scanned", reasonOf(err)
				notScanned = rec.Reason
				ar.Scans = append(ar.Scans, rec)
				continue
			}
			base := filepath.Join("scan", a.Name, strings.ReplaceAll(m.Platform, "/", "-"))
			rec.Report, rec.SARIF = base+".trivy.json", base+".sarif"
			if err := atomicfile.Write(filepath.Join(r.Dist, rec.Report), rep.Raw, 0o644); err != nil {
				return err
			}
			if err := atomicfile.Write(filepath.Join(r.Dist, rec.SARIF), rep.SARIF, 0o644); err != nil {
				return err
			}
			rec.Findings, rec.Status = len(rep.Findings), "clean"
			ar.Scans = append(ar.Scans, rec)
			reports = append(reports, rep)
			slots[rep] = slot{ar, len(ar.Scans) - 1}
			r.Logf("scan: %s %s: %d finding(s) (%.1fs)", a.Name, m.Platform, len(rep.Findings), rec.Seconds)
		}
	}
	verdict := attestscan.Gate(reports, allow, time.Now())
	for rep, s := range slots {
		rec := &s.ar.Scans[s.idx]
		for _, f := range verdict.Blocking {
			if f.Image == rep.Name && f.Platform == rep.Platform {
				rec.Blocking++
			}
		}
		switch {
		case rec.Blocking > 0:
			rec.Status = "blocked"
		case countFor(verdict.Allowed, rep) > 0:
			rec.Status = "allowed"
		}
		if n := countFor(verdict.NoFix, rep); n > 0 {
			rec.Reason = fmt.Sprintf("%d CRITICAL/HIGH without a fix yet", n)
		}
	}
	if err := verdict.Err(); err != nil {
		return err
	}
	if len(reports) == 0 && notScanned != "" {
		return release.Skip("not scanned: %s; give an offline DB with --vuln-db DIR", notScanned)
	}
	return nil
}

func countFor(fs []attestscan.Finding, rep *attestscan.Report) int {
	n := 0
	for _, f := range fs {
		if f.Image == rep.Name && f.Platform == rep.Platform {
			n++
		}
	}
	return n
}

// reasonOf says in a line why a scan could not run.
func reasonOf(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "failed to download vulnerability DB") {
		return "trivy could not download its vulnerability DB (its DB registry is unreachable)"
	}
	msg, _, _ = strings.Cut(msg, "\n")
	return msg
}
