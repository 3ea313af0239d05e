// Package verify is the pipeline stage that checks, before anything is
// recorded or promoted, what admission will check: every signed index and
// platform manifest carries a signature that the signer's policy
// (dist/sign/policy.json: trusted roots + identity + issuer, or a public key)
// accepts, and a SLSA provenance v1 attestation for its own digest, signed the
// same way and naming the expected builder — all verified with cosign's own
// verification. Every platform manifest must also carry
//
//   - SPDX and CycloneDX SBOM attestations, verified the same way;
//   - a vulnerability scan attestation (cosign's vuln predicate), verified the
//     same way, whose trivy report passes the scan gate (attest/scan.Gate with
//     .bvrelease/vuln-allow.yaml): no CRITICAL/HIGH finding that has a fix and
//     is not allow-listed. A manifest the scan stage recorded not-scanned has
//     none: that fails a release, and in a dry-run is reported as NOT SCANNED —
//     never counted as verified clean;
//   - its SBOMs and scan reports as OCI 1.1 referrers (referrers API or
//     fallback tag).
//
// A failure names the image, platform, manifest and what is missing or did not
// match, and the release is not recorded.
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/attest/referrers"
	attestscan "github.com/bitvault/bitvault/attest/scan"
	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/attest"
	"github.com/bitvault/bitvault/release/sign"
)

// Stage verifies signatures.
type Stage struct{}

func (Stage) Name() string { return "verify" }

func (Stage) Run(ctx context.Context, r *release.Release) error {
	data, err := os.ReadFile(sign.PolicyPath(r))
	if err != nil {
		return fmt.Errorf("no verification policy (%w); run the sign stage first", err)
	}
	var p attestsign.Policy
	if err := json.Unmarshal(data, &p); err != nil {
		return fmt.Errorf("%s: %w", sign.PolicyPath(r), err)
	}
	allow, err := attestscan.LoadAllowList(r.Config.Abs(attestscan.DefaultAllowList))
	if err != nil {
		return err
	}
	opts := sign.RemoteOptions(ctx)
	var failures []string
	checked, platforms, notScanned := 0, 0, 0
	for _, a := range r.Artifacts() {
		ar := r.Artifact(a.Name)
		if len(ar.Signatures) == 0 {
			failures = append(failures, a.Name+": no signature recorded")
			continue
		}
		for i := range ar.Signatures {
			sr := &ar.Signatures[i]
			ref, err := name.NewDigest(sr.Reference)
			if err != nil {
				return err
			}
			vs, err := attestsign.Verify(ctx, ref, p, opts...)
			sr.Verified = err == nil && len(vs) > 0
			if err != nil {
				failures = append(failures, fmt.Sprintf("%s %s: %v", a.Name, sr.Platform, err))
				continue
			}
			sr.Identity, sr.Issuer = vs[0].Identity, vs[0].Issuer
			checked++
			if sr.Platform != "index" {
				platforms++
				v := platformCheck{r: r, ar: ar, sr: sr, ref: ref, p: p, allow: allow, opts: opts}
				failures = append(failures, v.run(ctx)...)
				if v.notScanned {
					notScanned++
				}
			}
			if !sr.Provenance {
				failures = append(failures, fmt.Sprintf("%s %s: no SLSA provenance attached", a.Name, sr.Platform))
				continue
			}
			if err := provenance(ctx, ref, p, opts); err != nil {
				failures = append(failures, fmt.Sprintf("%s %s: provenance: %v", a.Name, sr.Platform, err))
				continue
			}
			sr.ProvenanceVerified = true
		}
	}
	if len(failures) > 0 {
		return fmt.Errorf("verification failed; the release is not recorded:\n  %s", strings.Join(failures, "\n  "))
	}
	r.Logf("verify: %d signatures and their SLSA provenance verified as admission will", checked)
	clean := platforms - notScanned
	r.Logf("verify: %d platform manifests: SPDX + CycloneDX attestations and referrers verified; %d with a verified clean vulnerability attestation, %d NOT SCANNED", platforms, clean, notScanned)
	return nil
}

// platformCheck verifies what a platform manifest carries besides its
// signature and provenance.
type platformCheck struct {
	r     *release.Release
	ar    *release.ArtifactRecord
	sr    *release.SignatureRecord
	ref   name.Digest
	p     attestsign.Policy
	allow *attestscan.AllowList
	opts  []remote.Option

	notScanned bool
}

// run returns the failures, each naming image, platform and manifest.
func (v *platformCheck) run(ctx context.Context) []string {
	sr := v.sr
	sr.AttestationsVerified, sr.ReferrersVerified = nil, false
	var failures []string
	fail := func(format string, args ...any) {
		failures = append(failures, fmt.Sprintf("%s %s (%s): ", v.ar.Name, sr.Platform, v.ref.DigestStr())+fmt.Sprintf(format, args...))
	}
	for _, s := range []struct{ typ, what string }{{attestation.SPDX, "SPDX SBOM"}, {attestation.CycloneDX, "CycloneDX SBOM"}} {
		if _, err := attestation.VerifyAttestations(ctx, v.ref, s.typ, v.p, v.opts...); err != nil {
			fail("%s attestation (cosign --type %s) missing or not verified: %v", s.what, attestation.CosignType(s.typ), err)
			continue
		}
		sr.AttestationsVerified = append(sr.AttestationsVerified, s.typ)
	}

	sc, scanned := v.scan()
	if !scanned {
		v.notScanned = true
		reason := sr.NotScanned
		if reason == "" {
			reason = sc.Reason
		}
		if reason == "" {
			reason = "no scan recorded"
		}
		if v.r.DryRun {
			v.r.Logf("verify: %s %s: NOT SCANNED (%s): no vulnerability attestation; not counted as clean (allowed in a dry-run only)", v.ar.Name, sr.Platform, reason)
		} else {
			fail("NOT SCANNED (%s): no vulnerability attestation; a release must be scanned (give --vuln-db DIR)", reason)
		}
	} else if err := v.vuln(ctx); err != nil {
		fail("%v", err)
	} else {
		sr.AttestationsVerified = append(sr.AttestationsVerified, attestation.Vuln)
	}

	want := []string{referrers.SPDX, referrers.CycloneDX}
	if scanned {
		want = append(want, referrers.TrivyReport)
		if sc.SARIF != "" {
			want = append(want, referrers.SARIF)
		}
	}
	var pushed []referrers.Pushed
	for _, t := range want {
		w := referrers.Pushed{ArtifactType: t}
		for _, rr := range sr.Referrers {
			if rr.ArtifactType == t {
				if h, err := v1.NewHash(rr.FileDigest); err == nil {
					w.Layer = h
				}
			}
		}
		pushed = append(pushed, w)
	}
	via, err := referrers.Verify(ctx, v.ref, pushed, v.opts...)
	switch {
	case err != nil:
		fail("referrers: %v", err)
	default:
		sr.ReferrersVerified = true
		sr.ReferrersVia = string(via)
	}
	return failures
}

// scan returns the manifest's scan record and whether it was scanned.
func (v *platformCheck) scan() (release.ScanRecord, bool) {
	for _, s := range v.ar.Scans {
		if s.Platform == v.sr.Platform {
			return s, s.Status != "not-scanned" && s.Report != "" && v.sr.NotScanned == ""
		}
	}
	return release.ScanRecord{}, false
}

// vuln checks the manifest's vulnerability attestations: present, signed per
// the policy for this digest, about this digest, and clean by the scan gate.
// Every one must pass: admission sees them all.
func (v *platformCheck) vuln(ctx context.Context) error {
	stmts, err := attestation.VerifyAttestations(ctx, v.ref, attestation.Vuln, v.p, v.opts...)
	if err != nil {
		return fmt.Errorf("vulnerability attestation (cosign --type vuln) missing or not verified: %w", err)
	}
	var reports []*attestscan.Report
	for _, st := range stmts {
		_, raw, err := attestation.VulnOf(st)
		if err != nil {
			return fmt.Errorf("vulnerability attestation: %w", err)
		}
		rep, err := attestscan.ParseReport(raw, v.ar.Name, v.sr.Platform)
		if err != nil {
			return fmt.Errorf("vulnerability attestation: %w", err)
		}
		if rep.Digest != "" && rep.Digest != v.ref.DigestStr() {
			return fmt.Errorf("vulnerability attestation: its report is about %s", rep.Digest)
		}
		reports = append(reports, rep)
	}
	verdict := attestscan.Gate(reports, v.allow, time.Now())
	if len(verdict.Blocking) > 0 {
		var lines []string
		for _, f := range verdict.Blocking {
			if l := f.Line(); !slices.Contains(lines, l) {
				lines = append(lines, l)
			}
		}
		return fmt.Errorf("vulnerability attestation not clean: %d fixable CRITICAL/HIGH finding(s) not allow-listed: %s", len(lines), strings.Join(lines, "; "))
	}
	return nil
}

// provenance checks that ref carries a SLSA provenance v1 attestation for its
// own digest, signed per p, naming the expected builder.
func provenance(ctx context.Context, ref name.Digest, p attestsign.Policy, opts []remote.Option) error {
	stmts, err := attestation.VerifyAttestations(ctx, ref, attestation.SLSAProvenanceV1, p, opts...)
	if err != nil {
		return err
	}
	want := attest.BuilderID()
	var seen []string
	for _, st := range stmts {
		var s struct {
			Predicate struct {
				RunDetails struct {
					Builder struct {
						ID string `json:"id"`
					} `json:"builder"`
				} `json:"runDetails"`
			} `json:"predicate"`
		}
		if err := json.Unmarshal(st, &s); err != nil {
			return err
		}
		if s.Predicate.RunDetails.Builder.ID == want {
			return nil
		}
		seen = append(seen, s.Predicate.RunDetails.Builder.ID)
	}
	return fmt.Errorf("builder id %v, want %s", seen, want)
}
