// Package dist is the pipeline stage that distributes bvrelease.yaml's CLI
// (the `cli:` section) as signed, reproducible archives, into dist/cli/:
//
//  1. build: for every target (GOOS/GOARCH), a static binary built
//     reproducibly in the CLI's module (release/dist/gobuild: CGO_ENABLED=0,
//     -trimpath, -buildvcs=false, -ldflags "-s -w -buildid= -X
//     <version_var>=<version>", GOFLAGS=-mod=readonly) into
//     <name>_<version>_<os>_<arch>/<name>[.exe];
//  2. archive: <name>_<version>_<os>_<arch>.tar.gz (.zip for windows) holding
//     the binary and the repository's README.md (and LICENSE when there is
//     one), written deterministically (release/dist/archive: SOURCE_DATE_EPOCH
//     as every mtime, 0:0, sorted, fixed modes, bare gzip header). With
//     --verify-reproducible every target is built again into a temporary
//     directory with an empty build cache and archived: the two archives must
//     be byte-identical, or the stage fails naming the file (exit code 4);
//  3. SBOM: <name>_<version>_<os>_<arch>.spdx.json per archive, SPDX 2.3 by
//     syft over the archive's extracted files (attest/dirsbom), reproducible;
//  4. checksums.txt: the SHA-256 of every archive and SBOM, sha256sum's format;
//  5. sign: a Sigstore bundle <file>.sigstore.json for every archive and for
//     checksums.txt (attest/blob), by the release's signer — the one the sign
//     stage chose (release/sign.Signer): keyless (Fulcio certificate, each
//     signature logged in Rekor as a hashedrekord entry whose promise goes into
//     the bundle), a cosign key, or the dry-run CA — and verified at once with
//     the release's policy (release/sign.Policy), as upstream
//     `cosign verify-blob --bundle` will; trusted_root.json beside them holds
//     the trust that command needs (--trusted-root), and the record the exact
//     command;
//  6. formula: <name>.rb, the Homebrew formula for the darwin and linux
//     archives at their GitHub Release URLs (release/dist/homebrew);
//  7. upload: the archives, SBOMs, checksums.txt and every bundle as assets of
//     the GitHub Release v<version> of cli.github_release, created when missing
//     (release/dist/ghrelease): only in a real release of a clean commit with a
//     version tag, with GITHUB_TOKEN set.
//     An asset already there with the same content is kept; one with other
//     content fails the stage naming it (a bundle that is another signature of
//     the same file, verifying under the same policy, is kept and written back
//     to dist/cli). In a dry-run, or without a token, the stage ends skipped
//     with the reason — everything before the upload done and recorded.
//
// The verify stage checks every bundle again (Verify).
package dist

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bitvault/bitvault/attest/blob"
	"github.com/bitvault/bitvault/attest/dirsbom"
	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/atomicfile"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/dist/archive"
	"github.com/bitvault/bitvault/release/dist/checksums"
	"github.com/bitvault/bitvault/release/dist/ghrelease"
	"github.com/bitvault/bitvault/release/dist/gobuild"
	"github.com/bitvault/bitvault/release/dist/homebrew"
	"github.com/bitvault/bitvault/release/sign"
)

// Stage distributes the CLI.
type Stage struct{}

func (Stage) Name() string { return "dist" }

// Dir is dist/cli.
func Dir(r *release.Release) string { return filepath.Join(r.Dist, "cli") }

// TokenEnv is the variable holding the GitHub token uploads use.
const TokenEnv = "GITHUB_TOKEN"

// target is one GOOS/GOARCH of the CLI and its file names.
type target struct {
	platform, goos, goarch string
	base                   string // <name>_<version>_<os>_<arch>
	exe                    string // <name>[.exe]
	format                 archive.Format
}

func (t target) archive() string { return t.base + "." + string(t.format) }
func (t target) sbom() string    { return t.base + ".spdx.json" }

func targets(cli *config.CLI, version string) ([]target, error) {
	var out []target
	seen := map[string]bool{}
	for _, p := range cli.Targets {
		goos, goarch, err := gobuild.Split(p)
		if err != nil {
			return nil, fmt.Errorf("cli.targets: %w", err)
		}
		if seen[p] {
			return nil, fmt.Errorf("cli.targets: %s listed twice", p)
		}
		seen[p] = true
		out = append(out, target{platform: p, goos: goos, goarch: goarch,
			base: fmt.Sprintf("%s_%s_%s_%s", cli.Name, version, goos, goarch),
			exe:  gobuild.Exe(cli.Name, goos), format: archive.FormatFor(goos)})
	}
	return out, nil
}

func (Stage) Run(ctx context.Context, r *release.Release) error {
	cli := r.Config.CLI
	if cli == nil {
		return release.Skip("no cli section in %s: no command-line program to distribute", filepath.Base(r.Config.Path))
	}
	if len(r.Only) > 0 {
		return release.Skip("--artifact %s: the CLI is distributed by full runs only", strings.Join(r.Only, ","))
	}
	version := r.Record.Version
	if version == "" || r.Record.SourceDateEpoch == 0 {
		return errors.New("no version or SOURCE_DATE_EPOCH planned; run the plan stage first")
	}
	if cli.Name == "" || cli.Module == "" || cli.Main == "" {
		return fmt.Errorf("%s: cli needs name, module and main", r.Config.Path)
	}
	ts, err := targets(cli, version)
	if err != nil {
		return err
	}
	s, err := sign.Signer(ctx, r)
	if err != nil {
		return err
	}
	p := sign.Policy(r, s)
	out := Dir(r)
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	module := r.Config.Abs(cli.Module)
	goVersion, err := gobuild.GoVersion(ctx, module)
	if err != nil {
		return err
	}
	rec := &release.CLIRecord{Name: cli.Name, Version: version, Go: goVersion, Signer: s.Identity()}
	r.Record.CLI = rec
	mtime := time.Unix(r.Record.SourceDateEpoch, 0)
	extras := extraFiles(r.Config.Root)

	// 1, 2: build and archive.
	start := time.Now()
	for _, t := range ts {
		ar, bin, err := buildArchive(ctx, r, cli, t, out, "", extras, mtime)
		if err != nil {
			return err
		}
		rec.Archives = append(rec.Archives, release.CLIArchiveRecord{
			Target: t.platform, File: rel(r, ar.Path), SHA256: ar.SHA256, Size: ar.Size,
			BinarySHA256: bin.SHA256, BuildSeconds: bin.Seconds,
		})
	}
	r.Logf("dist: %s %s built for %d targets in %.1fs (%s)", cli.Name, version, len(ts), time.Since(start).Seconds(), goVersion)
	if r.VerifyReproducible {
		if err := verifyReproducible(ctx, r, cli, ts, extras, mtime); err != nil {
			return err
		}
		rec.Reproducible = true
	}

	// 3: SBOMs.
	var sums []checksums.Sum
	for i, t := range ts {
		a := &rec.Archives[i]
		doc, err := sbomOf(ctx, filepath.Join(r.Dist, a.File), dirsbom.Options{
			Name: cli.Name, Version: version, Platform: t.platform, Archive: t.archive(),
			Digest: "sha256:" + a.SHA256, Created: mtime,
		})
		if err != nil {
			return err
		}
		if a.Packages, err = dirsbom.Packages(doc); err != nil {
			return fmt.Errorf("sbom %s: %w", t.archive(), err)
		}
		sbomPath := filepath.Join(out, t.sbom())
		if err := atomicfile.Write(sbomPath, doc, 0o644); err != nil {
			return err
		}
		a.SBOM = rel(r, sbomPath)
		sums = append(sums, checksums.Sum{Name: t.archive(), SHA256: a.SHA256}, checksums.Sum{Name: t.sbom(), SHA256: sha256Hex(doc)})
	}

	// 4: checksums.txt.
	sumsData, err := checksums.Format(sums)
	if err != nil {
		return err
	}
	sumsPath := filepath.Join(out, checksums.FileName)
	if err := atomicfile.Write(sumsPath, sumsData, 0o644); err != nil {
		return err
	}
	rec.Checksums = rel(r, sumsPath)

	// 5: sign and verify.
	var first []byte
	for i := range rec.Archives {
		a := &rec.Archives[i]
		b, err := signFile(ctx, s, p, filepath.Join(r.Dist, a.File))
		if err != nil {
			return err
		}
		a.Bundle = a.File + blob.Extension
		if first == nil {
			first = b
		}
	}
	if _, err := signFile(ctx, s, p, sumsPath); err != nil {
		return err
	}
	rec.ChecksumsBundle = rec.Checksums + blob.Extension
	tr, err := blob.TrustedRoot(p, first)
	if err != nil {
		return err
	}
	trPath := filepath.Join(out, "trusted_root.json")
	if err := atomicfile.Write(trPath, tr, 0o644); err != nil {
		return err
	}
	rec.TrustedRoot = rel(r, trPath)
	rec.VerifyCommand = VerifyCommand(p, rec.TrustedRoot, rec.Archives[0].File)
	r.Logf("dist: %d archives and checksums.txt signed by %s; bundles verified", len(ts), s.Identity())

	// 6: Homebrew formula.
	if cli.GitHubRelease != "" {
		f := homebrew.Formula{Name: cli.Name, Version: version, Description: cli.Homebrew.Description,
			Homepage: cli.Homebrew.Homepage, License: cli.Homebrew.License, Repository: cli.GitHubRelease}
		for i, t := range ts {
			f.Archives = append(f.Archives, homebrew.Archive{OS: t.goos, Arch: t.goarch, File: t.archive(), SHA256: rec.Archives[i].SHA256})
		}
		rb, err := homebrew.Render(f)
		if err != nil {
			return err
		}
		rbPath := filepath.Join(out, cli.Name+".rb")
		if err := atomicfile.Write(rbPath, rb, 0o644); err != nil {
			return err
		}
		rec.Formula = rel(r, rbPath)
	}

	// 7: upload.
	return upload(ctx, r, cli, p, rec)
}

// extraFiles are the repository's README.md and LICENSE, when present.
func extraFiles(root string) []archive.File {
	var out []archive.File
	for _, n := range []string{"LICENSE", "README.md"} {
		p := filepath.Join(root, n)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			out = append(out, archive.File{Name: n, Source: p})
		}
	}
	return out
}

// buildArchive builds t into dir/<base>/<exe> and archives it as dir/<archive>.
func buildArchive(ctx context.Context, r *release.Release, cli *config.CLI, t target, dir, goCache string, extras []archive.File, mtime time.Time) (*archive.Result, *gobuild.Result, error) {
	bin, err := gobuild.Build(ctx, gobuild.Options{
		Dir: r.Config.Abs(cli.Module), Main: cli.Main, Target: t.platform,
		VersionVar: cli.VersionVar, Version: r.Record.Version,
		Output: filepath.Join(dir, t.base, t.exe), GoCache: goCache,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("build %s %s: %w", cli.Name, t.platform, err)
	}
	files := append([]archive.File{{Name: t.exe, Source: bin.Path, Executable: true}}, extras...)
	ar, err := archive.Create(filepath.Join(dir, t.archive()), t.format, files, mtime)
	if err != nil {
		return nil, nil, fmt.Errorf("archive %s: %w", t.archive(), err)
	}
	return ar, bin, nil
}

// verifyReproducible builds every target again, into a temporary directory
// with an empty build cache, and compares the archives with the recorded ones.
func verifyReproducible(ctx context.Context, r *release.Release, cli *config.CLI, ts []target, extras []archive.File, mtime time.Time) error {
	tmp, err := os.MkdirTemp("", "bvrelease-dist-repro-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	var diffs []string
	for i, t := range ts {
		ar, bin, err := buildArchive(ctx, r, cli, t, filepath.Join(tmp, "out"), filepath.Join(tmp, "gocache"), extras, mtime)
		if err != nil {
			return fmt.Errorf("second build: %w", err)
		}
		first := r.Record.CLI.Archives[i]
		if ar.SHA256 != first.SHA256 {
			what := "the archive differs though the binary is the same"
			if bin.SHA256 != first.BinarySHA256 {
				what = fmt.Sprintf("binary %s sha256:%s then sha256:%s", t.exe, first.BinarySHA256, bin.SHA256)
			}
			diffs = append(diffs, fmt.Sprintf("%s: sha256:%s then sha256:%s (%s)", t.archive(), first.SHA256, ar.SHA256, what))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("the CLI is not reproducible: built again with an empty build cache:\n  %s", strings.Join(diffs, "\n  "))
	}
	r.Logf("dist: reproducible: %d archives rebuilt with an empty build cache are byte-identical (%.1fs)", len(ts), time.Since(start).Seconds())
	return nil
}

// sbomOf extracts an archive into a temporary directory and catalogs it.
func sbomOf(ctx context.Context, archivePath string, o dirsbom.Options) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "bvrelease-dist-sbom-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if err := archive.Extract(archivePath, tmp); err != nil {
		return nil, fmt.Errorf("sbom %s: %w", o.Archive, err)
	}
	return dirsbom.SPDX(ctx, tmp, o)
}

// signFile writes path's bundle beside it and verifies it with p.
func signFile(ctx context.Context, s attestsign.Signer, p attestsign.Policy, path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b, err := blob.Sign(ctx, s, data)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", filepath.Base(path), err)
	}
	if _, err := blob.Verify(ctx, bytes.NewReader(data), b, p); err != nil {
		// As the verify stage would refuse it, but before anything is uploaded.
		return nil, fmt.Errorf("%s: signed, but the bundle does not verify under the release's policy; nothing is uploaded and the release is not recorded: %w", filepath.Base(path), err)
	}
	if err := atomicfile.Write(path+blob.Extension, b, 0o644); err != nil {
		return nil, err
	}
	return b, nil
}

// VerifyCommand is the upstream cosign command that checks an archive's
// bundle under p, run in dist/.
func VerifyCommand(p attestsign.Policy, trustedRoot, file string) string {
	args := []string{"cosign", "verify-blob", "--bundle", file + blob.Extension, "--trusted-root", trustedRoot}
	switch {
	case len(p.PublicKey) > 0:
		args = append(args, "--key", "cosign.pub")
	case p.IdentityRegexp != "":
		args = append(args, "--certificate-identity-regexp", "'"+p.IdentityRegexp+"'", "--certificate-oidc-issuer", p.Issuer)
	default:
		args = append(args, "--certificate-identity", p.Identity, "--certificate-oidc-issuer", p.Issuer)
	}
	if p.IgnoreTlog {
		args = append(args, "--insecure-ignore-tlog")
	}
	if p.IgnoreTlog || p.IgnoreSCT {
		if len(p.PublicKey) == 0 {
			args = append(args, "--insecure-ignore-sct")
		}
	}
	return strings.Join(append(args, file), " ")
}

func rel(r *release.Release, path string) string {
	if p, err := filepath.Rel(r.Dist, path); err == nil {
		return filepath.ToSlash(p)
	}
	return path
}

// upload publishes the files to the GitHub Release, or says why not.
func upload(ctx context.Context, r *release.Release, cli *config.CLI, p attestsign.Policy, rec *release.CLIRecord) error {
	tag := "v" + rec.Version
	up := &release.CLIUploadRecord{Repository: cli.GitHubRelease, Tag: tag}
	rec.Upload = up
	token := os.Getenv(TokenEnv)
	switch {
	case cli.GitHubRelease == "":
		up.Skipped = "no cli.github_release in " + filepath.Base(r.Config.Path)
	case r.DryRun:
		up.Skipped = "dry-run"
	case r.Record.Dirty:
		up.Skipped = "the working tree is dirty; a GitHub Release is made from a clean, tagged commit"
	case len(r.Record.Commit) >= 12 && strings.HasPrefix(rec.Version, "0.0.0-"+r.Record.Commit[:12]):
		up.Skipped = "the commit has no version tag (vX.Y.Z); a GitHub Release is made for tags only"
	case token == "":
		up.Skipped = TokenEnv + " not set"
	}
	if up.Skipped != "" {
		return release.Skip("%d archives built, signed and verified in %s; not uploaded to the GitHub Release %s of %s: %s",
			len(rec.Archives), rel(r, Dir(r)), tag, cli.GitHubRelease, up.Skipped)
	}
	owner, repo, ok := strings.Cut(cli.GitHubRelease, "/")
	if !ok {
		return fmt.Errorf("cli.github_release %q: want owner/repo", cli.GitHubRelease)
	}
	gh, err := ghrelease.FromEnv(token, os.Getenv("GITHUB_API_URL"))
	if err != nil {
		return err
	}
	var assets []ghrelease.Asset
	for _, a := range rec.Archives {
		assets = append(assets, ghrelease.Asset{Path: filepath.Join(r.Dist, a.File), SHA256: a.SHA256}, ghrelease.Asset{Path: filepath.Join(r.Dist, a.SBOM)})
	}
	assets = append(assets, ghrelease.Asset{Path: filepath.Join(r.Dist, rec.Checksums)})
	for _, a := range rec.Archives {
		assets = append(assets, bundleAsset(ctx, r, p, a.Bundle, a.File))
	}
	assets = append(assets, bundleAsset(ctx, r, p, rec.ChecksumsBundle, rec.Checksums))
	res, err := gh.Publish(ctx, ghrelease.Release{
		Owner: owner, Repo: repo, Tag: tag, Commit: r.Record.Commit,
		Name: cli.Name + " " + rec.Version, Prerelease: strings.Contains(rec.Version, "-"),
	}, assets)
	if err != nil {
		return fmt.Errorf("upload to the GitHub Release %s of %s: %w", tag, cli.GitHubRelease, err)
	}
	up.URL = res.ReleaseURL
	for _, o := range res.Assets {
		switch o.Action {
		case "uploaded":
			up.Uploaded = append(up.Uploaded, o.Name)
		case "kept-equivalent":
			// Another signature of the same file is published: keep dist/ in step.
			if err := atomicfile.Write(filepath.Join(Dir(r), o.Name), o.Published, 0o644); err != nil {
				return err
			}
			up.Kept = append(up.Kept, o.Name)
		default:
			up.Kept = append(up.Kept, o.Name)
		}
	}
	r.Logf("dist: GitHub Release %s of %s: %d assets uploaded, %d already there (%s)", tag, cli.GitHubRelease, len(up.Uploaded), len(up.Kept), res.ReleaseURL)
	return nil
}

// bundleAsset is a bundle, for which a published bundle that verifies the same
// file under the same policy is as good.
func bundleAsset(ctx context.Context, r *release.Release, p attestsign.Policy, bundle, subject string) ghrelease.Asset {
	return ghrelease.Asset{Path: filepath.Join(r.Dist, bundle), Equivalent: func(published []byte) error {
		f, err := os.Open(filepath.Join(r.Dist, subject))
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = blob.Verify(ctx, f, published, p)
		return err
	}}
}

// Verify checks every bundle of the recorded CLI under p — each archive and
// checksums.txt, whose recorded digests must still match the files — and
// returns the failures, each naming the file. The verify stage calls it.
func Verify(ctx context.Context, r *release.Release, p attestsign.Policy) []string {
	rec := r.Record.CLI
	if rec == nil {
		return nil
	}
	var failures []string
	check := func(file, bundle, wantSHA string) {
		data, err := os.ReadFile(filepath.Join(r.Dist, file))
		if err != nil {
			failures = append(failures, fmt.Sprintf("cli %s: %v", file, err))
			return
		}
		if wantSHA != "" && sha256Hex(data) != wantSHA {
			failures = append(failures, fmt.Sprintf("cli %s: sha256:%s, the record says sha256:%s", file, sha256Hex(data), wantSHA))
			return
		}
		b, err := os.ReadFile(filepath.Join(r.Dist, bundle))
		if err != nil {
			failures = append(failures, fmt.Sprintf("cli %s: no bundle: %v", file, err))
			return
		}
		if _, err := blob.Verify(ctx, bytes.NewReader(data), b, p); err != nil {
			failures = append(failures, fmt.Sprintf("cli %s: %v", file, err))
		}
	}
	for _, a := range rec.Archives {
		check(a.File, a.Bundle, a.SHA256)
	}
	check(rec.Checksums, rec.ChecksumsBundle, "")
	if len(rec.Archives) == 0 {
		failures = append(failures, "cli: no archive recorded")
	}
	rec.Verified = len(failures) == 0
	return failures
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
