// Package attesttest gives tests a published image carrying everything a release attaches —
// signatures and SLSA provenance on the index and platform manifests, SPDX and CycloneDX SBOM
// attestations and a vulnerability attestation on each (the index carries every platform's),
// and the OCI 1.1 referrers of the platform manifests — or that minus the parts a test leaves
// out, signed by whatever signer the test chooses.
package attesttest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/attest/referrers"
	"github.com/bitvault/bitvault/attest/sign"
)

// Minimal documents of each kind.
const (
	SPDXDoc      = `{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"one","packages":[]}`
	CycloneDXDoc = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[]}`
	CleanScan    = `{"SchemaVersion":2,"CreatedAt":"2026-01-02T03:04:05Z","Results":[]}`
)

// TrivyReport is a trivy JSON report with one HIGH finding (golang.org/x/text v0.3.7),
// fixed in fixed ("" = no fix yet).
func TrivyReport(fixed string) string {
	return `{"SchemaVersion":2,"CreatedAt":"2026-01-02T03:04:05Z","Results":[{"Target":"app/server","Type":"gobinary","Vulnerabilities":[` +
		`{"VulnerabilityID":"CVE-2022-32149","VendorIDs":["GO-2022-1059"],"PkgName":"golang.org/x/text","InstalledVersion":"v0.3.7","FixedVersion":"` + fixed + `","Severity":"HIGH"}]}]}`
}

// Parts that Options.Skip can leave out.
const (
	Signature  = "signature" // no signature on any manifest (and so nothing else)
	Provenance = "provenance"
	SPDX       = "spdx"
	CycloneDX  = "cyclonedx"
	Vuln       = "vuln"
	Referrers  = "referrers"
	// IndexAttestations leaves the SBOM and vuln attestations off the index (a release puts
	// them on the index too, for admission of an image run by its index digest).
	IndexAttestations = "index-attestations"
)

// Options say what goes on the image.
type Options struct {
	Builder, Repository, Ref string // the provenance's
	Report                   string // the trivy report in the vuln attestation (default CleanScan)
	Skip                     []string
}

// Attest signs index and children with s and attaches what a release attaches.
func Attest(t testing.TB, s sign.Signer, index name.Digest, children []name.Digest, o Options) {
	t.Helper()
	ctx := context.Background()
	if o.Report == "" {
		o.Report = CleanScan
	}
	skip := func(p string) bool { return slices.Contains(o.Skip, p) }
	if skip(Signature) {
		return
	}
	attach := func(ref name.Digest, stmt []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if err := attestation.Attach(ctx, ref, stmt, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, ref := range append([]name.Digest{index}, children...) {
		if err := sign.SignImage(ctx, ref, s); err != nil {
			t.Fatal(err)
		}
		repo, h := ref.Context().String(), hash(t, ref)
		if !skip(Provenance) {
			p := attestation.Provenance{
				BuildType: "https://github.com/bitvault/bitvault/release/buildtypes/bvrelease/v1", BuilderID: o.Builder, InvocationID: "test",
				ExternalParameters: map[string]any{"repository": o.Repository, "ref": o.Ref},
				StartedOn:          time.Unix(1, 0), FinishedOn: time.Unix(2, 0),
			}
			stmt, err := attestation.Statement(repo, h, attestation.SLSAProvenanceV1, p.Predicate())
			attach(ref, stmt, err)
		}
		if ref == index && skip(IndexAttestations) {
			continue
		}
		if !skip(SPDX) {
			stmt, err := attestation.SBOMStatement(repo, h, attestation.SPDX, []byte(SPDXDoc))
			attach(ref, stmt, err)
		}
		if !skip(CycloneDX) {
			stmt, err := attestation.SBOMStatement(repo, h, attestation.CycloneDX, []byte(CycloneDXDoc))
			attach(ref, stmt, err)
		}
		if !skip(Vuln) {
			stmt, err := attestation.VulnStatement(repo, h, attestation.VulnScan{
				Report: []byte(o.Report), ScannerURI: "pkg:github/aquasecurity/trivy", ScannerVersion: "v0.74.0",
				StartedOn: time.Unix(3, 0), FinishedOn: time.Unix(4, 0),
			})
			attach(ref, stmt, err)
		}
		if !skip(Referrers) && ref != index {
			arts := []referrers.Artifact{
				{ArtifactType: referrers.SPDX, Data: []byte(SPDXDoc)},
				{ArtifactType: referrers.CycloneDX, Data: []byte(CycloneDXDoc)},
			}
			if !skip(Vuln) {
				arts = append(arts, referrers.Artifact{ArtifactType: referrers.TrivyReport, Data: []byte(o.Report)})
			}
			if _, err := referrers.Push(ctx, ref, arts); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func hash(t testing.TB, ref name.Digest) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	return h
}
