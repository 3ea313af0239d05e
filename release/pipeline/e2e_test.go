package pipeline_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/attest/referrers"
	attestscan "github.com/bitvault/bitvault/attest/scan"
	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/internal/testsupport/buildkittest"
	"github.com/bitvault/bitvault/internal/testsupport/runctest"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/pipeline"
	"github.com/bitvault/bitvault/release/publish"
)

func TestMain(m *testing.M) { buildkittest.Main(m, "pipeline") }

// dist is shared by the tests of this package: the full release is built once.
var dist = filepath.Join(os.TempDir(), "bvrelease-e2e-dist")

func repoConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("../../bvrelease.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newRelease(t *testing.T, o release.Options) *release.Release {
	cfg := repoConfig(t)
	o.BasesMode = config.BasesStandin // offline, whatever the network says
	o.Progress = "plain"
	o.Log = testWriter{t, &strings.Builder{}}
	d := buildkittest.Daemon(t)
	r := release.New(cfg, dist, o)
	r.Daemon = d // shared daemon; not closed by the release
	t.Cleanup(func() { r.Daemon = nil; r.Close() })
	return r
}

// testWriter sends whole lines to t.Log (tabwriter writes cell by cell).
type testWriter struct {
	t   *testing.T
	buf *strings.Builder
}

func (w testWriter) Write(p []byte) (int, error) {
	w.buf.Write(p)
	s := w.buf.String()
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		w.t.Log(s[:i])
		w.buf.Reset()
		w.buf.WriteString(s[i+1:])
	}
	return len(p), nil
}

// TestDryRunRelease runs the whole pipeline offline, as the README's dry-run
// does, and checks what it leaves behind; then proves the images run hardened.
func TestDryRunRelease(t *testing.T) {
	ctx := context.Background()
	r := newRelease(t, release.Options{DryRun: true})
	if err := pipeline.Run(ctx, r, pipeline.Release()...); err != nil {
		t.Fatal(err)
	}
	rec := readRecord(t)
	if len(rec.Artifacts) != 3 {
		t.Fatalf("record has %d artifacts, want 3", len(rec.Artifacts))
	}
	lp, err := builder.OpenLayout(filepath.Join(dist, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range rec.Artifacts {
		t.Run(a.Name, func(t *testing.T) {
			if len(a.Manifests) != 2 || a.Manifests[0].Platform != "linux/amd64" || a.Manifests[1].Platform != "linux/arm64" {
				t.Errorf("manifests = %+v, want linux/amd64 + linux/arm64", a.Manifests)
			}
			if a.Check == nil || !a.Check.Passed || a.Check.Digest != a.Digest {
				t.Errorf("check = %+v, want passed for %s", a.Check, a.Digest)
			}
			if a.Published == nil || a.Published.Reference != a.Published.Repository+"@"+a.Digest {
				t.Fatalf("published = %+v, want the repository at %s", a.Published, a.Digest)
			}
			if strings.Join(a.Published.Tags, ",") != strings.Join(rec.Tags, ",") {
				t.Errorf("tags = %v, want %v", a.Published.Tags, rec.Tags)
			}
			for _, tag := range a.Published.Tags {
				if tag == "latest" {
					t.Error("latest was written")
				}
			}
			got, err := builder.Describe(lp, a.Name)
			if err != nil {
				t.Fatal(err)
			}
			if got.Digest.String() != a.Digest {
				t.Errorf("dist/oci has %s, record says %s", got.Digest, a.Digest)
			}
		})
	}
	for _, a := range rec.Artifacts {
		if len(a.Signatures) != 3 {
			t.Errorf("%s: %d signatures, want the index and both platform manifests", a.Name, len(a.Signatures))
		}
		for _, s := range a.Signatures {
			if !s.Verified || s.Identity != "https://bitvault.dev/dry-run" || s.Issuer != "dry-run" || !s.ProvenanceVerified {
				t.Errorf("%s %s: signature %+v, want verified as the dry-run identity", a.Name, s.Platform, s)
			}
		}
		checkAttestations(t, a)
	}
	for _, b := range rec.Bases {
		if b.Used != "standin" || !strings.HasPrefix(b.Digest, "sha256:") || len(b.Inputs) == 0 {
			t.Errorf("base %s: used=%s digest=%q inputs=%d, want a recorded stand-in", b.Ref, b.Used, b.Digest, len(b.Inputs))
		}
	}
	if rec.SourceDateEpoch == 0 || rec.Commit == "" {
		t.Errorf("record lacks the plan: %+v", rec)
	}
}

// checkAttestations: every platform manifest has verified SPDX and CycloneDX
// attestations and its SBOMs as referrers; a scanned one also a verified clean
// vulnerability attestation and its reports as referrers, an unscanned one
// (no DB in a dry-run) none, recorded as not scanned. The index has none of
// these. The embedded registry serves the referrers API.
func checkAttestations(t *testing.T, a release.ArtifactRecord) {
	t.Helper()
	sbom := []string{attestation.SPDX, attestation.CycloneDX}
	for _, s := range a.Signatures {
		if s.Platform == "index" {
			// what admission reads for a workload naming the index: every platform's SBOMs, and
			// their scans when scanned; referrers hang off the platform manifests only
			want := sbom
			for _, sc := range a.Scans {
				if sc.Status != "not-scanned" {
					want = append(slices.Clone(sbom), attestation.Vuln)
				}
			}
			if !slices.Equal(s.Attestations, want) || !slices.Equal(s.AttestationsVerified, want) || len(s.Referrers) > 0 {
				t.Errorf("%s index: attestations %v (verified %v), referrers %v; want %v verified, no referrers", a.Name, s.Attestations, s.AttestationsVerified, s.Referrers, want)
			}
			continue
		}
		var scan release.ScanRecord
		for _, sc := range a.Scans {
			if sc.Platform == s.Platform {
				scan = sc
			}
		}
		want, types := sbom, []string{referrers.SPDX, referrers.CycloneDX}
		if scan.Status == "not-scanned" {
			if s.NotScanned == "" {
				t.Errorf("%s %s: not scanned, but the signature record does not say so: %+v", a.Name, s.Platform, s)
			}
		} else {
			want = append(slices.Clone(sbom), attestation.Vuln)
			types = append(types, referrers.TrivyReport, referrers.SARIF)
			if s.NotScanned != "" {
				t.Errorf("%s %s: scanned (%s), yet recorded not scanned: %s", a.Name, s.Platform, scan.Status, s.NotScanned)
			}
		}
		if !slices.Equal(s.Attestations, want) || !slices.Equal(s.AttestationsVerified, want) {
			t.Errorf("%s %s: attestations %v, verified %v; want %v both", a.Name, s.Platform, s.Attestations, s.AttestationsVerified, want)
		}
		var got []string
		for _, r := range s.Referrers {
			got = append(got, r.ArtifactType)
			if _, err := os.Stat(filepath.Join(dist, r.File)); err != nil || !strings.HasPrefix(r.Digest, "sha256:") {
				t.Errorf("%s %s: referrer %+v: %v", a.Name, s.Platform, r, err)
			}
		}
		if !slices.Equal(got, types) || s.ReferrersVia != "referrers-api" || !s.ReferrersVerified {
			t.Errorf("%s %s: referrers %v via %q (verified %v), want %v via the referrers API, verified", a.Name, s.Platform, got, s.ReferrersVia, s.ReferrersVerified, types)
		}
	}
}

// TestResume re-runs the pipeline: nothing is rebuilt, and a publish to a
// second registry pushes the same digests.
func TestResume(t *testing.T) {
	ctx := context.Background()
	r := newRelease(t, release.Options{DryRun: true})
	if err := pipeline.Run(ctx, r, pipeline.Release()...); err != nil {
		t.Fatal(err)
	}
	before := readRecord(t)
	r2 := newRelease(t, release.Options{DryRun: true})
	if err := pipeline.Run(ctx, r2, pipeline.Release()...); err != nil {
		t.Fatal(err)
	}
	after := readRecord(t)
	for _, s := range after.Stages {
		if s.Name == "build" && s.Status != "skipped" {
			t.Errorf("build stage on an unchanged tree: %s, want skipped", s.Status)
		}
	}
	for i := range before.Artifacts {
		if before.Artifacts[i].Digest != after.Artifacts[i].Digest {
			t.Errorf("%s: digest changed on resume", before.Artifacts[i].Name)
		}
	}
	// The images really are in a registry: push to one we hold open and read back.
	host, stop, err := publish.StartEmbeddedRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	// Not a dry-run: without a DB (trivy cannot download one here) the release fails.
	noDB := newRelease(t, release.Options{Registry: "127.0.0.1:1/never", AllowDirty: true})
	if err := pipeline.Run(ctx, noDB, pipeline.Release()...); err == nil || !strings.Contains(err.Error(), "never published unscanned") || !strings.Contains(err.Error(), "--vuln-db") {
		t.Fatalf("a real release without a vulnerability DB: err = %v, want a refusal naming --vuln-db", err)
	}
	// With one it goes through.
	// Outside GitHub Actions (keyless: TestKeylessRelease) a real release without a key stops at sign.
	t.Setenv("GITHUB_ACTIONS", "")
	noKey := newRelease(t, release.Options{Registry: host + "/nokey", AllowDirty: true, VulnDB: vulnDB(t, xtextAdvisory)})
	if err := pipeline.Run(ctx, noKey, pipeline.Release()...); err == nil || !strings.Contains(err.Error(), "sign: no signer") || !strings.Contains(err.Error(), "--key") || !strings.Contains(err.Error(), "id-token: write") {
		t.Fatalf("a real release without a key: err = %v, want the sign stage to refuse and name --key", err)
	}
	// A real release signs with a key.
	r3 := newRelease(t, release.Options{Registry: host + "/bv", AllowDirty: true, VulnDB: vulnDB(t, xtextAdvisory), SigningKey: cosignKey(t)})
	if err := pipeline.Run(ctx, r3, pipeline.Release()...); err != nil {
		t.Fatal(err)
	}
	for _, a := range readRecord(t).Artifacts {
		for _, s := range a.Signatures {
			if !s.Verified || s.Identity != "key" || !s.ProvenanceVerified {
				t.Errorf("%s %s: signature %+v, want verified with the key", a.Name, s.Platform, s)
			}
		}
		for _, tag := range append([]string{a.Digest}, a.Published.Tags...) {
			sep := ":"
			if strings.HasPrefix(tag, "sha256:") {
				sep = "@"
			}
			ref, err := name.ParseReference(host + "/bv/" + a.Name + sep + tag)
			if err != nil {
				t.Fatal(err)
			}
			desc, err := remote.Head(ref)
			if err != nil {
				t.Fatalf("%s: %v", ref, err)
			}
			if desc.Digest.String() != a.Digest {
				t.Errorf("%s points at %s, want %s", ref, desc.Digest, a.Digest)
			}
		}
		if _, err := remote.Head(mustRef(t, host+"/bv/"+a.Name+":latest")); err == nil {
			t.Errorf("%s: a latest tag exists", a.Name)
		}
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestRuntimeProof runs the amd64 images with runc as 65532:65532 on a
// read-only root with a tmpfs /tmp and no capabilities.
func TestRuntimeProof(t *testing.T) {
	ctx := context.Background()
	r := newRelease(t, release.Options{DryRun: true})
	if err := pipeline.Run(ctx, r, pipeline.Build()...); err != nil {
		t.Fatal(err)
	}
	lp, err := builder.OpenLayout(filepath.Join(dist, "oci"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		artifact string
		env      func(port int) []string
		path     string
		want     string
	}{
		{"bitvaultd", func(p int) []string {
			return []string{fmt.Sprintf("BITVAULT_HTTP_ADDR=127.0.0.1:%d", p), "BITVAULT_DB=none"}
		}, "/healthz", ""},
		{"bitvault-worker", func(p int) []string { return []string{fmt.Sprintf("BITVAULT_HTTP_ADDR=127.0.0.1:%d", p)} }, "/readyz", "ok"},
		{"bitvault-web", func(p int) []string { return []string{fmt.Sprintf("PORT=%d", p), "HOSTNAME=127.0.0.1"} }, "/", "BitVault"},
	} {
		t.Run(tc.artifact, func(t *testing.T) {
			idx, _, err := builder.Index(lp, tc.artifact)
			if err != nil {
				t.Fatal(err)
			}
			im, _ := idx.IndexManifest()
			var found bool
			for _, m := range im.Manifests {
				if m.Platform == nil || m.Platform.Architecture != "amd64" {
					continue
				}
				found = true
				img, err := idx.Image(m.Digest)
				if err != nil {
					t.Fatal(err)
				}
				port := runctest.FreePort(t)
				c := runctest.Start(t, img, tc.env(port)...)
				body := c.WaitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d%s", port, tc.path), 200)
				if !strings.Contains(string(body), tc.want) {
					t.Errorf("%s answered %q, want it to contain %q", tc.path, body, tc.want)
				}
				if tc.artifact == "bitvaultd" { // the version stamped at build time
					v := c.WaitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/v1/version", port), 200)
					if want := readRecord(t).Version; !strings.Contains(string(v), `"version":"`+want+`"`) {
						t.Errorf("/v1/version = %s, want version %s", v, want)
					}
				}
			}
			if !found {
				t.Fatal("no linux/amd64 image")
			}
		})
	}
}

func readRecord(t *testing.T) release.Record {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dist, "release.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec release.Record
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestVerifyReproducible is the reproducibility gate CI runs: every image is
// built a second time by a fresh buildkitd with empty state, and every index
// and platform manifest digest must match the first build.
func TestVerifyReproducible(t *testing.T) {
	ctx := context.Background()
	r := newRelease(t, release.Options{DryRun: true, VerifyReproducible: true})
	if err := pipeline.Run(ctx, r, pipeline.Build()...); err != nil {
		t.Fatal(err)
	}
	for _, s := range readRecord(t).Stages {
		if s.Name == "build" && s.Status != "ok" {
			t.Errorf("build stage %s (%s), want ok", s.Status, s.Reason)
		}
	}
}

// stdlibAdvisory is a made-up advisory (test data, not a real vulnerability)
// against the Go standard library our binaries are built with: every Go image
// is then "vulnerable" with a fix available, which the gate must block.
const stdlibAdvisory = `{
  "schema_version": "1.3.1",
  "id": "GO-2099-0001",
  "modified": "2099-01-01T00:00:00Z",
  "published": "2099-01-01T00:00:00Z",
  "aliases": ["CVE-2099-0001"],
  "summary": "bvrelease test advisory against the standard library",
  "details": "Test data for the release gate.",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
  "affected": [{
    "package": {"name": "stdlib", "ecosystem": "Go"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.99.0"}]}]
  }],
  "database_specific": {"url": "https://pkg.go.dev/vuln/GO-2099-0001"}
}`

// xtextAdvisory is GO-2022-1059 (golang.org/x/text < 0.3.8), which none of
// our images link: with it the scan has a real DB and must find them clean.
const xtextAdvisory = `{
  "schema_version": "1.3.1",
  "id": "GO-2022-1059",
  "modified": "2023-06-12T18:45:41Z",
  "published": "2022-10-11T17:17:42Z",
  "aliases": ["CVE-2022-32149"],
  "summary": "Denial of service via crafted Accept-Language header in golang.org/x/text/language",
  "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
  "affected": [{
    "package": {"name": "golang.org/x/text", "ecosystem": "Go"},
    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "0.3.8"}]}]
  }],
  "database_specific": {"url": "https://pkg.go.dev/vuln/GO-2022-1059"}
}`

func vulnDB(t *testing.T, records ...string) string {
	t.Helper()
	if _, err := attestscan.FindTrivyDB(); err != nil {
		if os.Getenv("BITVAULT_REQUIRE_TOOLS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	osv, db := t.TempDir(), t.TempDir()
	for i, rec := range records {
		if err := os.WriteFile(filepath.Join(osv, fmt.Sprintf("rec%d.json", i)), []byte(rec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := attestscan.BuildDB(context.Background(), osv, db); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestScanGate: with a real DB the images scan clean and the release goes
// through with SBOMs and reports recorded; with an advisory against the Go
// standard library they are blocked and nothing is published.
func TestScanGate(t *testing.T) {
	ctx := context.Background()
	r := newRelease(t, release.Options{DryRun: true, VulnDB: vulnDB(t, xtextAdvisory)})
	if err := pipeline.Run(ctx, r, pipeline.Release()...); err != nil {
		t.Fatal(err)
	}
	for _, a := range readRecord(t).Artifacts {
		if len(a.Scans) != 2 || len(a.SBOMs) != 2 {
			t.Fatalf("%s: %d scans, %d SBOMs, want 2 each", a.Name, len(a.Scans), len(a.SBOMs))
		}
		checkAttestations(t, a) // scanned: the vulnerability attestations are there, verified clean
		for _, s := range a.Scans {
			if s.Status != "clean" || s.Report == "" || s.SARIF == "" {
				t.Errorf("%s %s: scan %+v, want clean with reports", a.Name, s.Platform, s)
			}
			for _, p := range []string{s.Report, s.SARIF} {
				if _, err := os.Stat(filepath.Join(dist, p)); err != nil {
					t.Error(err)
				}
			}
		}
		for _, s := range a.SBOMs {
			spdx, err := os.ReadFile(filepath.Join(dist, s.SPDX))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(spdx), strings.TrimPrefix(s.Digest, "sha256:")) || s.Packages == 0 {
				t.Errorf("%s %s: SPDX does not name %s or lists no package", a.Name, s.Platform, s.Digest)
			}
		}
	}

	blocked := newRelease(t, release.Options{DryRun: true, VulnDB: vulnDB(t, stdlibAdvisory)})
	err := pipeline.Run(ctx, blocked, pipeline.Release()...)
	if err == nil {
		t.Fatal("the release went through with a fixable CRITICAL finding in every Go image")
	}
	for _, want := range []string{"bitvaultd linux/amd64: stdlib", "→ 1.99.0", "CVE-2099-0001", "bitvault-worker linux/arm64"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("gate error does not name %q:\n%v", want, err)
		}
	}
	rec := readRecord(t)
	for _, a := range rec.Artifacts {
		if a.Name != "bitvault-web" {
			for _, s := range a.Scans {
				if s.Status != "blocked" || s.Blocking == 0 {
					t.Errorf("%s %s: scan status %s (%d blocking), want blocked", a.Name, s.Platform, s.Status, s.Blocking)
				}
			}
		}
	}
	for _, s := range rec.Stages {
		if s.Name == "publish" {
			t.Errorf("the publish stage ran (%s) after the gate failed", s.Status)
		}
	}
}

// cosignKey writes an encrypted cosign key pair and returns the private key's
// path, with COSIGN_PASSWORD set for the test.
func cosignKey(t *testing.T) string {
	t.Helper()
	t.Setenv("COSIGN_PASSWORD", "test-password")
	keys, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte("test-password"), nil })
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cosign.key")
	if err := os.WriteFile(p, keys.PrivateBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
