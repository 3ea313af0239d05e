// Package record writes dist/release.json and prints the release summary: a
// table for people on the run's output, and the same facts as JSON for
// machines.
package record

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/internal/atomicfile"
	"github.com/bitvault/bitvault/release"
)

// Stage records the release.
type Stage struct{ Out io.Writer }

func (Stage) Name() string { return "record" }

func (s Stage) Run(ctx context.Context, r *release.Release) error {
	if err := Write(r); err != nil {
		return err
	}
	return nil
}

// Write saves r.Record to dist/release.json atomically.
func Write(r *release.Release) error {
	data, err := json.MarshalIndent(r.Record, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(r.RecordPath(), append(data, '\n'), 0o644)
}

// Summary prints the human table of a record.
func Summary(w io.Writer, rec release.Record, recordPath string) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nRELEASE %s %s  commit %.12s  dry-run %v\n\n", rec.Project, rec.Version, rec.Commit, rec.DryRun)
	built := false
	for _, a := range rec.Artifacts {
		built = built || a.Digest != ""
	}
	if built {
		artifacts(tw, rec)
	}
	fmt.Fprintln(tw, "BASE\tUSED\tDIGEST\tFOR")
	for _, b := range rec.Bases {
		d := b.Digest
		switch {
		case d != "":
		case b.Used == "upstream":
			d = "(the pinned upstream digest)"
		default:
			d = "(stand-in not built yet)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Ref, b.Used, d, strings.Join(b.UsedBy, ", "))
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "STAGE\tSTATUS\tTIME\tNOTE")
	for _, s := range rec.Stages {
		fmt.Fprintf(tw, "%s\t%s\t%.1fs\t%s\n", s.Name, s.Status, s.Seconds, s.Reason)
	}
	tw.Flush()
	if recordPath != "" {
		rel := recordPath
		if wd, err := os.Getwd(); err == nil {
			if r, err := filepath.Rel(wd, recordPath); err == nil && !strings.HasPrefix(r, "..") {
				rel = r
			}
		}
		fmt.Fprintf(w, "\nrecord: %s\n", rel)
	}
}

func artifacts(tw io.Writer, rec release.Record) {
	fmt.Fprintln(tw, "ARTIFACT\tPLATFORM\tDIGEST\tSIZE\tCHECK\tSBOM\tSCAN\tSIGNATURE\tATTESTATIONS\tREFERRERS\tBUILD")
	for _, a := range rec.Artifacts {
		check := "-"
		if a.Check != nil {
			check = "pass"
			if !a.Check.Passed {
				check = fmt.Sprintf("FAIL (%d)", len(a.Check.Violations))
			}
		}
		fmt.Fprintf(tw, "%s\tindex\t%s\t\t%s\t\t\t%s\t\t\t%.1fs\n", a.Name, a.Digest, check, signatureCell(a, "index"), a.BuildSeconds)
		for _, m := range a.Manifests {
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t\t%s\t%s\t%s\t%s\t%s\t\n", m.Platform, m.Digest, human(m.ImageSize), sbomCell(a, m.Platform), scanCell(a, m.Platform), signatureCell(a, m.Platform),
				attestationsCell(a, m.Platform), referrersCell(a, m.Platform))
		}
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "PUBLISHED\tREFERENCE\tTAGS")
	for _, a := range rec.Artifacts {
		if a.Published == nil {
			fmt.Fprintf(tw, "%s\t(not published)\t\n", a.Name)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Name, a.Published.Reference, strings.Join(a.Published.Tags, ", "))
	}
	fmt.Fprintln(tw)
}

func sbomCell(a release.ArtifactRecord, platform string) string {
	for _, s := range a.SBOMs {
		if s.Platform == platform {
			return fmt.Sprintf("%d pkgs", s.Packages)
		}
	}
	return "-"
}

func scanCell(a release.ArtifactRecord, platform string) string {
	for _, s := range a.Scans {
		if s.Platform != platform {
			continue
		}
		switch s.Status {
		case "clean", "allowed":
			return fmt.Sprintf("%s (%d)", s.Status, s.Findings)
		case "blocked":
			return fmt.Sprintf("BLOCKED (%d)", s.Blocking)
		default:
			return s.Status
		}
	}
	return "-"
}

func signatureCell(a release.ArtifactRecord, platform string) string {
	for _, s := range a.Signatures {
		if s.Platform == platform {
			if s.Verified && s.ProvenanceVerified {
				return "verified + SLSA"
			}
			if s.Verified {
				return "verified"
			}
			return "signed"
		}
	}
	return "-"
}

// shortNames are the table's names of the predicate types besides provenance.
var shortNames = []struct{ typ, name string }{
	{attestation.SPDX, "SPDX"},
	{attestation.CycloneDX, "CycloneDX"},
	{attestation.Vuln, "vuln"},
}

// attestationsCell says which SBOM and vulnerability attestations a platform
// manifest has: "verified SPDX CycloneDX vuln" once verify passed them,
// "attached …" before, and "vuln NOT SCANNED" where there is no scan.
func attestationsCell(a release.ArtifactRecord, platform string) string {
	for _, s := range a.Signatures {
		if s.Platform != platform {
			continue
		}
		var verified, attached []string
		for _, n := range shortNames {
			switch {
			case slices.Contains(s.AttestationsVerified, n.typ):
				verified = append(verified, n.name)
			case slices.Contains(s.Attestations, n.typ):
				attached = append(attached, n.name)
			}
		}
		var parts []string
		if len(verified) > 0 {
			parts = append(parts, "verified "+strings.Join(verified, " "))
		}
		if len(attached) > 0 {
			parts = append(parts, "attached "+strings.Join(attached, " "))
		}
		if s.NotScanned != "" {
			parts = append(parts, "vuln NOT SCANNED")
		}
		if len(parts) == 0 {
			return "-"
		}
		return strings.Join(parts, "; ")
	}
	return "-"
}

// referrersCell counts a platform manifest's OCI referrers and says how the
// registry lists them.
func referrersCell(a release.ArtifactRecord, platform string) string {
	for _, s := range a.Signatures {
		if s.Platform != platform || len(s.Referrers) == 0 {
			continue
		}
		via := map[string]string{"referrers-api": "referrers API", "fallback-tag": "fallback tag"}[s.ReferrersVia]
		if via == "" {
			via = s.ReferrersVia
		}
		state := "pushed"
		if s.ReferrersVerified {
			state = "verified"
		}
		return fmt.Sprintf("%d %s (%s)", len(s.Referrers), state, via)
	}
	return "-"
}

func human(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
