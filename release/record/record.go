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
	if rec.CLI != nil {
		cli(tw, *rec.CLI)
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
	if len(rec.Policies.Files) > 0 {
		state := "committed policies/ up to date"
		if !rec.Policies.Current {
			state = "committed policies/ STALE: run 'bvrelease policy'"
		}
		fmt.Fprintf(tw, "POLICIES\t%s/{%s}\t%s\n\n", rec.Policies.Dir, strings.Join(rec.Policies.Files, ","), state)
	}
	if len(rec.Promotions) > 0 {
		promotions(tw, rec)
	}
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

// promotions lists where the release's digests were proposed: environment,
// outcome, pull request or branch, and the diff.
func promotions(tw io.Writer, rec release.Record) {
	fmt.Fprintln(tw, "PROMOTION\tSTATUS\tREPOSITORY\tPROPOSAL\tIMAGES\tDIFF")
	for _, p := range rec.Promotions {
		proposal := p.Branch
		switch {
		case p.URL != "":
			proposal = fmt.Sprintf("#%d %s", p.PR, p.URL)
		case proposal == "":
			proposal = "-"
		}
		status := p.Status
		if p.DryRun && status != "dry-run" {
			status += " (dry-run)"
		}
		diff := p.Diff
		if diff == "" {
			diff = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", p.Env, status, p.Repo+":"+p.File, proposal, len(p.Images), diff)
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

// cli is the dist stage's section: one line per archive, then checksums,
// formula, how to verify, and the upload (or why not).
func cli(tw io.Writer, c release.CLIRecord) {
	fmt.Fprintf(tw, "CLI %s %s\tTARGET\tSHA256\tSIZE\tSBOM\tSIGNATURE\n", c.Name, c.Version)
	sig := "signed"
	if c.Verified {
		sig = "verified"
	}
	for _, a := range c.Archives {
		fmt.Fprintf(tw, "%s\t%s\t%.12s…\t%s\t%d pkgs\t%s\n", a.File, a.Target, a.SHA256, human(a.Size), a.Packages, sig)
	}
	fmt.Fprintf(tw, "%s\t\t\t\t\t%s\n", c.Checksums, sig)
	if c.Formula != "" {
		fmt.Fprintf(tw, "%s\t(Homebrew formula)\n", c.Formula)
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "signer: %s; built with %s", c.Signer, c.Go)
	if c.Reproducible {
		fmt.Fprint(tw, "; reproducible (rebuilt with an empty build cache)")
	}
	fmt.Fprintln(tw)
	if c.VerifyCommand != "" {
		fmt.Fprintf(tw, "verify (in dist/): %s\n", c.VerifyCommand)
	}
	if u := c.Upload; u != nil {
		switch {
		case u.Skipped != "":
			fmt.Fprintf(tw, "GitHub Release %s %s: not uploaded: %s\n", u.Repository, u.Tag, u.Skipped)
		default:
			fmt.Fprintf(tw, "GitHub Release %s %s: %d uploaded, %d already there: %s\n", u.Repository, u.Tag, len(u.Uploaded), len(u.Kept), u.URL)
		}
	}
	fmt.Fprintln(tw)
}
