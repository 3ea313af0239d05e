// Package attest is the pipeline stage that attaches a SLSA provenance v1
// attestation — an in-toto statement in DSSE, signed by the release's signer,
// stored the way cosign stores attestations (sha256-<digest>.att) — to every
// index and every platform manifest; and to every platform manifest also
//
//   - its SBOMs as attestations, SPDX (https://spdx.dev/Document, cosign
//     --type spdxjson) and CycloneDX (https://cyclonedx.org/bom, --type
//     cyclonedx): the documents the sbom stage wrote for that manifest;
//   - its vulnerability scan as cosign's vuln predicate
//     (https://cosign.sigstore.dev/attestation/vuln/v1, --type vuln) holding the
//     trivy report the scan stage wrote — or, where the scan stage recorded the
//     manifest not-scanned (a dry-run without a DB), no vuln predicate, and the
//     record says so (not_scanned): never passed off as clean;
//   - the same files as OCI 1.1 referrers (attest/referrers): artifact
//     manifests whose subject is the platform manifest, listed by the
//     registry's referrers API or, where it has none, by the sha256-<hex>
//     fallback tag; the record says which (referrers_via).
//
// Re-running the stage adds nothing for unchanged inputs: Attach skips a
// statement this signer already attached, the SBOM statements are the
// documents as written, the vuln statement's times come from the report and
// the scan record (not the clock), and the referrer manifests are the same
// bytes.
//
// The provenance says: buildType bvrelease v1; externalParameters repository,
// ref and workflow (GitHub Actions' environment, "local" otherwise), the
// artifact, target, platforms and version; resolvedDependencies the source
// commit, the Dockerfile's digest and every base image (the stand-in used or
// the pinned upstream digest); runDetails the builder id (the workflow
// identity in CI, https://bitvault.dev/dry-run otherwise) and the invocation
// (the Actions run URL, or local:<host>).
package attest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/attest/referrers"
	attestscan "github.com/bitvault/bitvault/attest/scan"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/scan"
	"github.com/bitvault/bitvault/release/sign"
)

// BuildType names bvrelease's build recipe in the provenance.
const BuildType = "https://github.com/bitvault/bitvault/release/buildtypes/bvrelease/v1"

// Stage attaches provenance, SBOM and vulnerability attestations and referrers.
type Stage struct{}

func (Stage) Name() string { return "attest" }

// BuilderID is who built the release: the workflow identity in GitHub
// Actions, the dry-run identity otherwise.
func BuilderID() string {
	if w := os.Getenv("GITHUB_WORKFLOW_REF"); w != "" {
		return strings.TrimSuffix(os.Getenv("GITHUB_SERVER_URL"), "/") + "/" + w
	}
	return "https://bitvault.dev/dry-run"
}

// Repository is the source repository the provenance names: GitHub's
// owner/name in Actions, local/<project> otherwise.
func Repository(r *release.Release) string {
	return getenvOr("GITHUB_REPOSITORY", "local/"+r.Config.Project)
}

// Ref is the git ref the provenance names: GitHub's ref in Actions, "local"
// otherwise.
func Ref() string { return getenvOr("GITHUB_REF", "local") }

func getenvOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func invocation() string {
	if id := os.Getenv("GITHUB_RUN_ID"); id != "" {
		return fmt.Sprintf("%s/%s/actions/runs/%s/attempts/%s", os.Getenv("GITHUB_SERVER_URL"), os.Getenv("GITHUB_REPOSITORY"), id, getenvOr("GITHUB_RUN_ATTEMPT", "1"))
	}
	h, _ := os.Hostname()
	return "local:" + h
}

// Provenance is the provenance of one artifact of the release. Its times are
// the build's (recorded with it), so attesting the same build again yields the
// same statement, which is then not attached (or logged) twice.
func Provenance(r *release.Release, artifact string) (attestation.Provenance, error) {
	a, ok := r.Config.Artifact(artifact)
	if !ok {
		return attestation.Provenance{}, fmt.Errorf("no artifact %s", artifact)
	}
	df, err := os.ReadFile(r.Config.Abs(a.Dockerfile))
	if err != nil {
		return attestation.Provenance{}, err
	}
	ar := r.Artifact(artifact)
	built := ar.BuiltAt
	if built.IsZero() { // a record from before built_at was kept: the build's commit time
		built = time.Unix(r.Record.SourceDateEpoch, 0).UTC()
	}
	repo := Repository(r)
	deps := []attestation.Resource{
		{URI: "git+https://github.com/" + repo + "@" + r.Record.Commit, Digest: map[string]string{"gitCommit": r.Record.Commit}, Name: "source"},
		{URI: a.Dockerfile, Digest: map[string]string{"sha256": fmt.Sprintf("%x", sha256.Sum256(df))}, Name: "dockerfile"},
	}
	for _, b := range r.Record.Bases {
		if !slices.Contains(b.UsedBy, a.Name) {
			continue
		}
		d := b.Digest
		if d == "" { // upstream: the digest pinned in the reference
			d = b.Ref[strings.LastIndex(b.Ref, "@")+1:]
		}
		deps = append(deps, attestation.Resource{URI: "oci://" + b.Ref, Digest: map[string]string{"sha256": strings.TrimPrefix(d, "sha256:")}, Name: "base image (" + b.Used + ")"})
	}
	return attestation.Provenance{
		BuildType: BuildType,
		ExternalParameters: map[string]any{
			"repository": repo, "ref": Ref(), "workflow": getenvOr("GITHUB_WORKFLOW_REF", "local"),
			"artifact": a.Name, "target": a.Target, "dockerfile": a.Dockerfile, "platforms": r.Config.Platforms, "version": r.Record.Version,
		},
		InternalParameters:   map[string]any{"SOURCE_DATE_EPOCH": r.Record.SourceDateEpoch, "dryRun": r.DryRun},
		ResolvedDependencies: deps,
		BuilderID:            BuilderID(),
		InvocationID:         invocation(),
		StartedOn:            built.Add(-time.Duration(ar.BuildSeconds * float64(time.Second))).Truncate(time.Second),
		FinishedOn:           built,
	}, nil
}

func (Stage) Run(ctx context.Context, r *release.Release) error {
	if r.Signer == nil {
		return fmt.Errorf("no signer: the sign stage must run before attest")
	}
	opts := sign.RemoteOptions(ctx)
	for _, a := range r.Artifacts() {
		ar := r.Artifact(a.Name)
		p, err := Provenance(r, a.Name)
		if err != nil {
			return fmt.Errorf("attest %s: %w", a.Name, err)
		}
		var index *indexTarget
		for i := range ar.Signatures {
			sr := &ar.Signatures[i]
			ref, err := name.NewDigest(sr.Reference)
			if err != nil {
				return err
			}
			h, err := v1.NewHash(ref.DigestStr())
			if err != nil {
				return err
			}
			stmt, err := attestation.Statement(ref.Context().String(), h, attestation.SLSAProvenanceV1, p.Predicate())
			if err != nil {
				return fmt.Errorf("attest %s %s: %w", a.Name, sr.Platform, err)
			}
			if err := attestation.Attach(ctx, ref, stmt, r.Signer, opts...); err != nil {
				return fmt.Errorf("attest %s %s: %w", a.Name, sr.Platform, err)
			}
			sr.Provenance = true
			if sr.Platform == "index" {
				sr.Attestations = nil
				index = &indexTarget{ref: ref, hash: h, record: sr}
				continue
			}
			if err := platform(ctx, r, ar, sr, ref, h, index); err != nil {
				return fmt.Errorf("attest %s %s: %w", a.Name, sr.Platform, err)
			}
		}
		r.Logf("attest: %s: SLSA provenance on the index and %d platform manifests", a.Name, len(ar.Manifests))
	}
	return nil
}

// indexTarget is the index the platform manifests belong to.
type indexTarget struct {
	ref    name.Digest
	hash   v1.Hash
	record *release.SignatureRecord
}

// attachBoth attaches a predicate to the platform manifest and, with the index as its
// subject, to the index: admission (Kyverno, policy-controller) checks the attestations of
// the digest a workload names, and workloads name the index.
func attachBoth(ctx context.Context, r *release.Release, ref name.Digest, stmt []byte, index *indexTarget, indexStmt func(subject string, h v1.Hash) ([]byte, error)) error {
	opts := sign.RemoteOptions(ctx)
	if err := attestation.Attach(ctx, ref, stmt, r.Signer, opts...); err != nil {
		return err
	}
	if index == nil {
		return nil
	}
	is, err := indexStmt(index.ref.Context().String(), index.hash)
	if err != nil {
		return err
	}
	if err := attestation.Attach(ctx, index.ref, is, r.Signer, opts...); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}

func addOnce(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// platform attaches to one platform manifest — and to its index — its SBOM attestations
// (SPDX, CycloneDX) and its vulnerability scan attestation — none when the scan stage recorded
// it not-scanned: that is recorded, never passed off as clean — and pushes the SBOMs and scan
// reports as OCI 1.1 referrers of the platform manifest.
func platform(ctx context.Context, r *release.Release, ar *release.ArtifactRecord, sr *release.SignatureRecord, ref name.Digest, h v1.Hash, index *indexTarget) error {
	sr.Attestations, sr.AttestationsVerified, sr.NotScanned = nil, nil, ""
	sr.Referrers, sr.ReferrersVia, sr.ReferrersVerified = nil, "", false
	opts := sign.RemoteOptions(ctx)
	subject := ref.Context().String()

	sb, ok := findSBOM(ar.SBOMs, sr.Platform)
	if !ok || sb.Digest != h.String() {
		return fmt.Errorf("no SBOM recorded for %s; the sbom stage must run before attest", h)
	}
	var files []referrerFile
	for _, d := range []struct{ predicateType, file, artifactType string }{
		{attestation.SPDX, sb.SPDX, referrers.SPDX},
		{attestation.CycloneDX, sb.CycloneDX, referrers.CycloneDX},
	} {
		doc, err := os.ReadFile(filepath.Join(r.Dist, d.file))
		if err != nil {
			return fmt.Errorf("SBOM: %w", err)
		}
		stmt, err := attestation.SBOMStatement(subject, h, d.predicateType, doc)
		if err != nil {
			return fmt.Errorf("%s: %w", d.file, err)
		}
		pt := d.predicateType
		if err := attachBoth(ctx, r, ref, stmt, index, func(s string, ih v1.Hash) ([]byte, error) {
			return attestation.SBOMStatement(s, ih, pt, doc)
		}); err != nil {
			return err
		}
		sr.Attestations = append(sr.Attestations, d.predicateType)
		if index != nil {
			index.record.Attestations = addOnce(index.record.Attestations, d.predicateType)
		}
		files = append(files, referrerFile{d.artifactType, d.file, doc})
	}

	sc, ok := findScan(ar.Scans, sr.Platform)
	switch {
	case !ok || sc.Digest != h.String():
		return fmt.Errorf("no scan recorded for %s; the scan stage must run before attest", h)
	case sc.Status == "not-scanned" || sc.Report == "":
		sr.NotScanned = sc.Reason
		if sr.NotScanned == "" {
			sr.NotScanned = "not scanned"
		}
		r.Logf("attest: %s %s: NOT SCANNED (%s): no vulnerability attestation attached", ar.Name, sr.Platform, sr.NotScanned)
	default:
		report, err := os.ReadFile(filepath.Join(r.Dist, sc.Report))
		if err != nil {
			return fmt.Errorf("scan report: %w", err)
		}
		vs, err := VulnScan(r, sc, report, filepath.Join(r.Dist, sc.Report))
		if err != nil {
			return err
		}
		stmt, err := attestation.VulnStatement(subject, h, vs)
		if err != nil {
			return fmt.Errorf("%s: %w", sc.Report, err)
		}
		if err := attachBoth(ctx, r, ref, stmt, index, func(s string, ih v1.Hash) ([]byte, error) {
			return attestation.VulnStatement(s, ih, vs)
		}); err != nil {
			return err
		}
		sr.Attestations = append(sr.Attestations, attestation.Vuln)
		if index != nil {
			index.record.Attestations = addOnce(index.record.Attestations, attestation.Vuln)
		}
		files = append(files, referrerFile{referrers.TrivyReport, sc.Report, report})
		if sc.SARIF != "" {
			sarif, err := os.ReadFile(filepath.Join(r.Dist, sc.SARIF))
			if err != nil {
				return fmt.Errorf("SARIF: %w", err)
			}
			files = append(files, referrerFile{referrers.SARIF, sc.SARIF, sarif})
		}
	}

	arts := make([]referrers.Artifact, len(files))
	for i, f := range files {
		arts[i] = referrers.Artifact{ArtifactType: f.artifactType, Data: f.data, Title: path.Base(filepath.ToSlash(f.file))}
	}
	res, err := referrers.Push(ctx, ref, arts, opts...)
	if err != nil {
		return err
	}
	sr.ReferrersVia = string(res.Via)
	for i, p := range res.Artifacts {
		sr.Referrers = append(sr.Referrers, release.ReferrerRecord{ArtifactType: p.ArtifactType, Digest: p.Digest.String(), File: files[i].file, FileDigest: p.Layer.String()})
	}
	names := make([]string, len(sr.Attestations))
	for i, t := range sr.Attestations {
		names[i] = attestation.CosignType(t)
	}
	r.Logf("attest: %s %s: %s attested; %d referrers via the %s", ar.Name, sr.Platform, strings.Join(names, ", "), len(sr.Referrers), res.Via)
	return nil
}

type referrerFile struct {
	artifactType, file string
	data               []byte
}

// TrivyURI names the pinned scanner in a vulnerability predicate.
var TrivyURI = "pkg:github/aquasecurity/trivy@" + attestscan.TrivyVersion

// VulnScan is the vulnerability predicate's content for one scan record and its trivy report
// (read from reportPath). Nothing in it comes from the clock: the scan finished when trivy
// wrote the report (its CreatedAt; the file's modification time for a report without one) and
// started the recorded scan time before that — so attaching the same report again finds the
// same statement and adds nothing.
func VulnScan(r *release.Release, sc release.ScanRecord, report []byte, reportPath string) (attestation.VulnScan, error) {
	var meta struct {
		CreatedAt time.Time
		Trivy     struct{ Version string }
	}
	if err := json.Unmarshal(report, &meta); err != nil {
		return attestation.VulnScan{}, fmt.Errorf("%s: not a trivy JSON report: %w", sc.Report, err)
	}
	finished := meta.CreatedAt
	if finished.IsZero() {
		fi, err := os.Stat(reportPath)
		if err != nil {
			return attestation.VulnScan{}, err
		}
		finished = fi.ModTime()
	}
	finished = finished.UTC()
	version := meta.Trivy.Version
	if version == "" {
		version = attestscan.TrivyVersion
	}
	dbURI, dbVersion := vulnDB(r)
	return attestation.VulnScan{
		Report:         report,
		ScannerURI:     TrivyURI,
		ScannerVersion: version,
		DBURI:          dbURI,
		DBVersion:      dbVersion,
		InvocationURI:  invocation(),
		EventID:        os.Getenv("GITHUB_RUN_ID"),
		BuilderID:      BuilderID(),
		StartedOn:      finished.Add(-time.Duration(sc.Seconds * float64(time.Second))).Truncate(time.Millisecond),
		FinishedOn:     finished,
	}, nil
}

// vulnDB names the trivy DB the scan stage used: the --vuln-db directory, or trivy's own
// download (its repository, TRIVY_DB_REPOSITORY when set); the version is the DB's UpdatedAt.
func vulnDB(r *release.Release) (uri, version string) {
	var dirs []string
	if r.VulnDB != "" {
		abs, err := filepath.Abs(r.VulnDB)
		if err != nil {
			abs = r.VulnDB
		}
		uri = "file://" + filepath.ToSlash(abs)
		dirs = []string{abs, filepath.Join(abs, "db")}
	} else {
		uri = "https://github.com/aquasecurity/trivy-db"
		if repo, _, _ := strings.Cut(os.Getenv("TRIVY_DB_REPOSITORY"), ","); repo != "" {
			uri = "oci://" + strings.TrimSpace(repo)
		}
		dirs = []string{filepath.Join(scan.CacheDir(), "db")}
	}
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "metadata.json"))
		if err != nil {
			continue
		}
		var m struct{ UpdatedAt time.Time }
		if json.Unmarshal(b, &m) == nil && !m.UpdatedAt.IsZero() {
			return uri, m.UpdatedAt.UTC().Format(time.RFC3339)
		}
	}
	return uri, "unknown"
}

func findSBOM(recs []release.SBOMRecord, platform string) (release.SBOMRecord, bool) {
	for _, s := range recs {
		if s.Platform == platform {
			return s, true
		}
	}
	return release.SBOMRecord{}, false
}

func findScan(recs []release.ScanRecord, platform string) (release.ScanRecord, bool) {
	for _, s := range recs {
		if s.Platform == platform {
			return s, true
		}
	}
	return release.ScanRecord{}, false
}
