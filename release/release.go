// Package release holds the state a release run carries from stage to stage,
// the Stage contract, and the record written to dist/release.json.
//
// A stage is a small type with a Name and Run(ctx, *Release). It reads what
// earlier stages (of this run or of an earlier, interrupted one) left in
// Release and in dist/, skips work already done for the same digests, and
// returns Skip(reason) when it has nothing to do: the summary prints the
// reason, so a skip is never silent.
package release

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/builder/bases"
	"github.com/bitvault/bitvault/builder/buildkitd"
	"github.com/bitvault/bitvault/builder/rules"
	"github.com/bitvault/bitvault/release/config"
)

// Stage is one step of the pipeline.
type Stage interface {
	Name() string
	Run(ctx context.Context, r *Release) error
}

// SkipError is returned by a stage that had nothing to do, with the reason.
type SkipError struct{ Reason string }

func (e *SkipError) Error() string { return "skipped: " + e.Reason }

// Skip returns a SkipError.
func Skip(format string, args ...any) error { return &SkipError{Reason: fmt.Sprintf(format, args...)} }

// IsSkip reports whether err is a skip, and its reason.
func IsSkip(err error) (string, bool) {
	var s *SkipError
	if errors.As(err, &s) {
		return s.Reason, true
	}
	return "", false
}

// Options are the knobs of one run, from flags.
type Options struct {
	DryRun             bool
	AllowDirty         bool
	BasesMode          string // overrides bases.mode from the config when set
	Registry           string // overrides the config's registry when set
	Only               []string
	VerifyReproducible bool
	VulnDB             string // offline trivy DB directory (--vuln-db)
	SigningKey         string // cosign key reference (--key); empty: dry-run CA or keyless
	Keyless            bool   // --keyless: GitHub OIDC → Fulcio → Rekor even in a dry-run
	FulcioURL          string // overrides signing.fulcio
	RekorURL           string // overrides signing.rekor
	TrustedRoot        string // overrides signing.trusted_root (a trusted_root.json)
	BuildkitHost       string
	Progress           string // BuildKit display: auto, tty, plain, quiet
	Log                io.Writer
}

// Release is the state of one run; Record is what dist/release.json holds.
type Release struct {
	Options
	Config *config.Config
	Dist   string
	Record Record

	// Set by stages for later ones within the same run.
	Daemon        *buildkitd.Daemon
	NamedContexts []builder.NamedContext
	Signer        sign.Signer // set by the sign stage, used by attest

	closers []func()
}

// OnClose registers f to run when the release is closed (LIFO).
func (r *Release) OnClose(f func()) { r.closers = append(r.closers, f) }

// Artifacts returns the artifacts selected for this run.
func (r *Release) Artifacts() []config.Artifact {
	if len(r.Only) == 0 {
		return r.Config.Artifacts
	}
	var out []config.Artifact
	for _, a := range r.Config.Artifacts {
		for _, n := range r.Only {
			if a.Name == n {
				out = append(out, a)
			}
		}
	}
	return out
}

// OCIDir is the local OCI layout every stage after build reads.
func (r *Release) OCIDir() string { return filepath.Join(r.Dist, "oci") }

// BasesDir is the OCI layout holding the base stand-ins.
func (r *Release) BasesDir() string { return filepath.Join(r.Dist, "bases") }

// RecordPath is dist/release.json.
func (r *Release) RecordPath() string { return filepath.Join(r.Dist, "release.json") }

// Logf writes a progress line.
func (r *Release) Logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", args...)
	}
}

// Artifact returns the record of the named artifact, creating it.
func (r *Release) Artifact(name string) *ArtifactRecord {
	for i := range r.Record.Artifacts {
		if r.Record.Artifacts[i].Name == name {
			return &r.Record.Artifacts[i]
		}
	}
	r.Record.Artifacts = append(r.Record.Artifacts, ArtifactRecord{Name: name})
	return &r.Record.Artifacts[len(r.Record.Artifacts)-1]
}

// Close releases what stages opened (a managed buildkitd).
func (r *Release) Close() {
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	r.closers = nil
	if r.Daemon != nil {
		r.Daemon.Close()
		r.Daemon = nil
	}
}

// Connect returns the BuildKit daemon, connecting (or starting one) once per run.
func (r *Release) Connect(ctx context.Context) (*buildkitd.Daemon, error) {
	if r.Daemon != nil {
		return r.Daemon, nil
	}
	d, err := buildkitd.Connect(ctx, buildkitd.Options{Host: r.BuildkitHost, Log: r.Log})
	if err != nil {
		return nil, err
	}
	r.Daemon = d
	return d, nil
}

// Schema identifies the format of dist/release.json.
const Schema = "https://github.com/bitvault/bitvault/release/v1"

// Record is dist/release.json.
type Record struct {
	Schema          string           `json:"schema"`
	Project         string           `json:"project"`
	Version         string           `json:"version"`
	Commit          string           `json:"commit"`
	Dirty           bool             `json:"dirty"`
	SourceDateEpoch int64            `json:"source_date_epoch"`
	DryRun          bool             `json:"dry_run"`
	Registry        string           `json:"registry"`
	Platforms       []string         `json:"platforms"`
	Tags            []string         `json:"tags"`
	ConfigDigest    string           `json:"config_digest"`
	BasesMode       string           `json:"bases_mode"`
	Bases           []BaseRecord     `json:"bases"`
	Artifacts       []ArtifactRecord `json:"artifacts"`
	// CLI: what the dist stage produced for bvrelease.yaml's cli (archives,
	// SBOMs, signatures, formula, GitHub Release upload).
	CLI    *CLIRecord    `json:"cli,omitempty"`
	Stages []StageRecord `json:"stages"`
	// Promotions: this release's digests proposed to GitOps environments
	// (release/promote), one entry per environment, the latest attempt.
	Promotions []PromotionRecord `json:"promotions,omitempty"`
	Policies   PoliciesRecord    `json:"policies,omitzero"`
}

// PromotionRecord is the promotion of the release's digests to one environment.
type PromotionRecord struct {
	Env    string `json:"env"`
	DryRun bool   `json:"dry_run"`
	// Status: dry-run (diff against the template only), opened or updated (the
	// pull request), pushed (a plain git remote: branch only), already-promoted.
	Status string          `json:"status"`
	Repo   string          `json:"repo"`
	File   string          `json:"file"` // the values file in the GitOps repository
	Branch string          `json:"branch,omitempty"`
	Commit string          `json:"commit,omitempty"`
	PR     int             `json:"pr,omitempty"`
	URL    string          `json:"url,omitempty"`
	Diff   string          `json:"diff,omitempty"` // relative to dist/
	Body   string          `json:"body,omitempty"` // the pull request body, relative to dist/
	Images []PromotedImage `json:"images"`
}

// PromotedImage is one digest set by a promotion.
type PromotedImage struct {
	Artifact string `json:"artifact"`
	Key      string `json:"key"` // key path in the values file
	Digest   string `json:"digest"`
	Previous string `json:"previous,omitempty"`
}

// SetPromotion records p, replacing an earlier promotion to the same environment.
func (rec *Record) SetPromotion(p PromotionRecord) {
	for i := range rec.Promotions {
		if rec.Promotions[i].Env == p.Env {
			rec.Promotions[i] = p
			return
		}
	}
	rec.Promotions = append(rec.Promotions, p)
}

// BaseRecord says which image stood for a pinned FROM reference.
type BaseRecord struct {
	Ref    string        `json:"ref"`              // the FROM reference as written
	Used   string        `json:"used"`             // "upstream" or "standin"
	Digest string        `json:"digest,omitempty"` // the stand-in index actually used
	Kind   string        `json:"kind,omitempty"`
	Inputs []bases.Input `json:"inputs,omitempty"`
	UsedBy []string      `json:"used_by"`
}

// ArtifactRecord is everything known about one image.
type ArtifactRecord struct {
	Name         string             `json:"name"`
	Dockerfile   string             `json:"dockerfile"`
	Target       string             `json:"target,omitempty"`
	InputsDigest string             `json:"inputs_digest,omitempty"`
	Digest       string             `json:"digest,omitempty"`
	Manifests    []builder.Manifest `json:"manifests,omitempty"`
	BuildSeconds float64            `json:"build_seconds,omitempty"`
	BuiltAt      time.Time          `json:"built_at,omitzero"` // when the build finished: provenance's finishedOn
	Check        *CheckRecord       `json:"check,omitempty"`
	SBOMs        []SBOMRecord       `json:"sboms,omitempty"`
	Scans        []ScanRecord       `json:"scans,omitempty"`
	Published    *PublishRecord     `json:"published,omitempty"`
	Signatures   []SignatureRecord  `json:"signatures,omitempty"`
}

// SignatureRecord is one signed manifest (the index or a platform manifest).
type SignatureRecord struct {
	Platform  string `json:"platform"`  // "index" or os/arch
	Reference string `json:"reference"` // repository@sha256:...
	Signer    string `json:"signer"`
	Verified  bool   `json:"verified"`
	Identity  string `json:"identity,omitempty"` // what verification found
	Issuer    string `json:"issuer,omitempty"`
	// Provenance: a SLSA provenance v1 attestation is attached (and, once
	// verify ran, verified for this manifest's digest and the builder).
	Provenance         bool `json:"provenance"`
	ProvenanceVerified bool `json:"provenance_verified"`
	// Attestations: the predicate types attached besides provenance — on a
	// platform manifest the SPDX and CycloneDX SBOMs and the cosign
	// vulnerability scan — and, once verify ran, those it verified (the
	// vulnerability scan only when its report is also clean).
	Attestations         []string `json:"attestations,omitempty"`
	AttestationsVerified []string `json:"attestations_verified,omitempty"`
	// NotScanned: why no vulnerability attestation is attached (the scan
	// stage recorded the manifest not-scanned). Never counted as clean.
	NotScanned string `json:"not_scanned,omitempty"`
	// Referrers: the OCI 1.1 artifacts (SBOMs, scan reports) pushed with this
	// manifest as their subject; ReferrersVia how the registry lists them,
	// "referrers-api" or "fallback-tag" (the sha256-<hex> index);
	// ReferrersVerified once verify found every one of them there.
	Referrers         []ReferrerRecord `json:"referrers,omitempty"`
	ReferrersVia      string           `json:"referrers_via,omitempty"`
	ReferrersVerified bool             `json:"referrers_verified,omitempty"`
}

// ReferrerRecord is one OCI 1.1 artifact about a platform manifest.
type ReferrerRecord struct {
	ArtifactType string `json:"artifact_type"`
	Digest       string `json:"digest"`      // the artifact manifest
	File         string `json:"file"`        // what it holds, relative to dist/
	FileDigest   string `json:"file_digest"` // its one layer: the file's sha256
}

// SBOMRecord points at the SBOMs of one platform manifest.
type SBOMRecord struct {
	Platform  string  `json:"platform"`
	Digest    string  `json:"digest"` // the platform manifest described
	SPDX      string  `json:"spdx"`   // path relative to dist/
	CycloneDX string  `json:"cyclonedx"`
	Packages  int     `json:"packages"`
	Seconds   float64 `json:"seconds"`
}

// ScanRecord is the vulnerability scan of one platform manifest.
type ScanRecord struct {
	Platform string  `json:"platform"`
	Digest   string  `json:"digest"`
	Status   string  `json:"status"` // clean, blocked, allowed, not-scanned
	Reason   string  `json:"reason,omitempty"`
	Report   string  `json:"report,omitempty"` // trivy JSON, relative to dist/
	SARIF    string  `json:"sarif,omitempty"`
	Findings int     `json:"findings"`
	Blocking int     `json:"blocking"`
	Seconds  float64 `json:"seconds"`
}

// CheckRecord is the image-rule verdict for an artifact.
type CheckRecord struct {
	Digest     string            `json:"digest"` // the index the verdict is for
	Passed     bool              `json:"passed"`
	Violations []rules.Violation `json:"violations"`
}

// PublishRecord says where an artifact was pushed.
type PublishRecord struct {
	Repository string   `json:"repository"`
	Reference  string   `json:"reference"` // repository@sha256:...
	Tags       []string `json:"tags"`
}

// StageRecord is how a stage ended.
type StageRecord struct {
	Name    string  `json:"name"`
	Status  string  `json:"status"` // ok, skipped, failed
	Reason  string  `json:"reason,omitempty"`
	Seconds float64 `json:"seconds"`
}

// CLIRecord is the command-line program distributed as signed archives.
// Paths are relative to dist/.
type CLIRecord struct {
	Name      string             `json:"name"`
	Version   string             `json:"version"`
	Go        string             `json:"go"` // the toolchain that built it
	Archives  []CLIArchiveRecord `json:"archives"`
	Checksums string             `json:"checksums"` // checksums.txt (sha256sum format)
	// ChecksumsBundle is the Sigstore bundle of checksums.txt.
	ChecksumsBundle string `json:"checksums_bundle"`
	Formula         string `json:"formula,omitempty"` // the Homebrew formula
	Signer          string `json:"signer"`
	// TrustedRoot is the trusted_root.json that `cosign verify-blob
	// --trusted-root` needs for these bundles (the dry-run CA's, or the
	// signing trusted root); VerifyCommand is that command for the first archive.
	TrustedRoot   string `json:"trusted_root,omitempty"`
	VerifyCommand string `json:"verify_command,omitempty"`
	// Reproducible: --verify-reproducible built every target a second time,
	// with an empty build cache, into identical archives.
	Reproducible bool `json:"reproducible,omitempty"`
	// Verified: the verify stage verified every bundle under the release's policy.
	Verified bool             `json:"verified"`
	Upload   *CLIUploadRecord `json:"upload,omitempty"`
}

// CLIArchiveRecord is one target's archive.
type CLIArchiveRecord struct {
	Target       string  `json:"target"` // os/arch
	File         string  `json:"file"`
	SHA256       string  `json:"sha256"`
	Size         int64   `json:"size"`
	BinarySHA256 string  `json:"binary_sha256"`
	Bundle       string  `json:"bundle"` // <file>.sigstore.json
	SBOM         string  `json:"sbom"`   // SPDX JSON
	Packages     int     `json:"sbom_packages"`
	BuildSeconds float64 `json:"build_seconds"`
}

// CLIUploadRecord is the GitHub Release upload: done, or why not.
type CLIUploadRecord struct {
	Repository string   `json:"repository"` // owner/name
	Tag        string   `json:"tag"`
	Skipped    string   `json:"skipped,omitempty"` // why nothing was uploaded
	URL        string   `json:"url,omitempty"`
	Uploaded   []string `json:"uploaded,omitempty"` // asset names
	Kept       []string `json:"kept,omitempty"`     // already there with the same content
}

// PoliciesRecord says which admission policies the release generated (dist/policies) and
// whether the committed ones match them.
type PoliciesRecord struct {
	Dir     string   `json:"dir,omitempty"`
	Files   []string `json:"files,omitempty"`
	Current bool     `json:"committed_current"`
}

// Digest parses an artifact's recorded index digest.
func (a ArtifactRecord) Hash() (v1.Hash, error) { return v1.NewHash(a.Digest) }

// New loads the configuration and prepares a run writing into dist.
func New(cfg *config.Config, dist string, o Options) *Release {
	if dist == "" {
		dist = filepath.Join(cfg.Root, "dist")
	}
	return &Release{Options: o, Config: cfg, Dist: dist}
}
