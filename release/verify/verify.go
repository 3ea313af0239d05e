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
// The CLI archives and checksums.txt the dist stage signed must match their
// recorded digests and carry a Sigstore bundle the same policy admits
// (dist.Verify, attest/blob: cosign's bundle verification).
//
// A failure names the image, platform, manifest and what is missing or did not
// match, and the release is not recorded.
package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bitvault/bitvault/attest/admission"
	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/attest/referrers"
	attestscan "github.com/bitvault/bitvault/attest/scan"
	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/attest"
	"github.com/bitvault/bitvault/release/dist"
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
			} else {
				failures = append(failures, indexAttestations(ctx, r, ar, sr, ref, p, allow, opts)...)
			}
			if !sr.Provenance {
				failures = append(failures, fmt.Sprintf("%s %s: no SLSA provenance attached", a.Name, sr.Platform))
				continue
			}
			if err := provenance(ctx, r, ref, p, opts); err != nil {
				failures = append(failures, fmt.Sprintf("%s %s: provenance: %v", a.Name, sr.Platform, err))
				continue
			}
			sr.ProvenanceVerified = true
		}
	}
	// The CLI's archives and checksums.txt: each Sigstore bundle under the same policy.
	cliFailures := dist.Verify(ctx, r, p)
	failures = append(failures, cliFailures...)
	if len(failures) > 0 {
		return fmt.Errorf("verification failed; the release is not recorded:\n  %s", strings.Join(failures, "\n  "))
	}
	if c := r.Record.CLI; c != nil {
		r.Logf("verify: CLI %s %s: the bundles of %d archives and checksums.txt verified", c.Name, c.Version, len(c.Archives))
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
	ok, err := admission.SBOMs(ctx, v.ref, v.p, v.opts...)
	sr.AttestationsVerified = append(sr.AttestationsVerified, ok...)
	if err != nil {
		fail("%v", err)
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
	} else if err := admission.Vuln(ctx, v.ref, v.p, v.allow, v.ar.Name, sr.Platform, v.opts...); err != nil {
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

// provenance checks that ref carries a SLSA provenance v1 attestation for its
// own digest, signed per p, naming this run's builder, repository and ref.
func provenance(ctx context.Context, r *release.Release, ref name.Digest, p attestsign.Policy, opts []remote.Option) error {
	_, err := admission.Provenance(ctx, ref, p, admission.Builder{ID: attest.BuilderID(), Repository: attest.Repository(r), Ref: attest.Ref()}, opts...)
	return err
}

// indexAttestations checks the SBOM and vulnerability attestations on the index — what
// admission reads for a workload naming the index digest: SPDX and CycloneDX always, a clean
// vulnerability attestation when any platform manifest was scanned.
func indexAttestations(ctx context.Context, r *release.Release, ar *release.ArtifactRecord, sr *release.SignatureRecord, ref name.Digest, p attestsign.Policy, allow *attestscan.AllowList, opts []remote.Option) []string {
	var failures []string
	if len(ar.SBOMs) == 0 {
		return nil // nothing was attested per platform, so nothing on the index either
	}
	ok, err := admission.SBOMs(ctx, ref, p, opts...)
	sr.AttestationsVerified = ok
	if err != nil {
		failures = append(failures, fmt.Sprintf("%s index (%s): %v", ar.Name, ref.DigestStr(), err))
	}
	scanned := false
	for _, sc := range ar.Scans {
		scanned = scanned || (sc.Status != "not-scanned" && sc.Report != "")
	}
	if !scanned {
		return failures
	}
	if err := admission.Vuln(ctx, ref, p, allow, ar.Name, "index", opts...); err != nil {
		failures = append(failures, fmt.Sprintf("%s index (%s): %v", ar.Name, ref.DigestStr(), err))
	} else {
		sr.AttestationsVerified = append(sr.AttestationsVerified, attestation.Vuln)
	}
	return failures
}
