package dist

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/attest/sign/keyless"
	"github.com/bitvault/bitvault/internal/retry"
	"github.com/bitvault/bitvault/internal/testsupport/cosigntest"
	"github.com/bitvault/bitvault/internal/testsupport/sigstoretest"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/dist/archive"
	"github.com/bitvault/bitvault/release/dist/checksums"
	"github.com/bitvault/bitvault/release/dist/ghrelease/ghreleasetest"
	"github.com/bitvault/bitvault/release/record"
)

const (
	epoch   = 1767225600 // 2026-01-01T00:00:00Z
	shipped = `^https://github\.com/bitvault/bitvault/\.github/workflows/release\.yml@refs/tags/v[0-9]+\.[0-9]+\.[0-9]+$`
)

var allTargets = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64", "windows/arm64"}

var workflow = sigstoretest.Workflow{
	Repository: "bitvault/bitvault", Ref: "refs/tags/v1.2.3", SHA: strings.Repeat("ab", 20),
	WorkflowPath: ".github/workflows/release.yml", EventName: "push", RunID: "4242",
}

// repoConfig is bvrelease.yaml's cli section for the repository's own CLI
// (service/cmd/bitvault), built here as the config package would load it.
func repoConfig(t *testing.T, targets ...string) *config.Config {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return &config.Config{
		Version: 1, Project: "bitvault", Root: root, Path: filepath.Join(root, config.FileName),
		Signing: config.Signing{IdentityRegexp: shipped, Issuer: sigstoretest.GitHubIssuer},
		CLI: &config.CLI{
			Name: "bitvault", Module: "service", Main: "./cmd/bitvault", Targets: targets, VersionVar: "main.version",
			GitHubRelease: "bitvault/bitvault",
			Homebrew:      config.Homebrew{Description: "BitVault file vault command-line client", Homepage: "https://github.com/bitvault/bitvault", License: "Apache-2.0"},
		},
	}
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func newRelease(t *testing.T, cfg *config.Config, o release.Options) *release.Release {
	t.Helper()
	o.Log = logWriter{t}
	r := release.New(cfg, t.TempDir(), o)
	r.Record = release.Record{Project: "bitvault", Version: "1.2.3", Commit: strings.Repeat("c", 40), SourceDateEpoch: epoch, DryRun: o.DryRun}
	return r
}

// run runs the stage and returns its skip reason ("" when it ran to the end).
func run(t *testing.T, r *release.Release) string {
	t.Helper()
	start := time.Now()
	err := Stage{}.Run(context.Background(), r)
	t.Logf("dist stage: %.1fs", time.Since(start).Seconds())
	if reason, ok := release.IsSkip(err); ok {
		return reason
	}
	if err != nil {
		t.Fatal(err)
	}
	return ""
}

func read(t *testing.T, r *release.Release, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.Dist, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDryRun: the six targets built, archived, described, summed, signed by
// the dry-run CA and verified — by upstream cosign too — and not uploaded; a
// second run in another dist/ gives the same archives, SBOMs, checksums and
// formula byte for byte.
func TestDryRun(t *testing.T) {
	cfg := repoConfig(t, allTargets...)
	r := newRelease(t, cfg, release.Options{DryRun: true})
	reason := run(t, r)
	if !strings.Contains(reason, "dry-run") || !strings.Contains(reason, "not uploaded") {
		t.Errorf("skip reason %q, want the dry-run named", reason)
	}
	rec := r.Record.CLI
	if rec == nil || len(rec.Archives) != 6 || rec.Upload == nil || rec.Upload.Skipped != "dry-run" || len(rec.Upload.Uploaded) != 0 {
		t.Fatalf("record %+v", rec)
	}
	if rec.Go != runtime.Version() || rec.Signer != "dry-run (ephemeral local CA)" {
		t.Errorf("go %q signer %q", rec.Go, rec.Signer)
	}

	for _, a := range rec.Archives {
		goos, goarch, _ := strings.Cut(a.Target, "/")
		base := "bitvault_1.2.3_" + goos + "_" + goarch
		ext, exe := ".tar.gz", "bitvault"
		if goos == "windows" {
			ext, exe = ".zip", "bitvault.exe"
		}
		if a.File != "cli/"+base+ext || a.Bundle != a.File+".sigstore.json" || a.SBOM != "cli/"+base+".spdx.json" {
			t.Errorf("%s: paths %s %s %s", a.Target, a.File, a.Bundle, a.SBOM)
		}
		entries, err := archive.Read(filepath.Join(r.Dist, a.File))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name)
			if e.ModTime.Unix() != epoch || e.Uid != 0 || e.Gid != 0 {
				t.Errorf("%s %s: mtime %v uid %d gid %d", a.File, e.Name, e.ModTime, e.Uid, e.Gid)
			}
			if e.Name == exe && e.Mode != 0o755 {
				t.Errorf("%s: binary mode %v", a.File, e.Mode)
			}
		}
		if want := []string{"README.md", exe}; !slices.Equal(names, want) {
			t.Errorf("%s holds %v, want %v", a.File, names, want)
		}
		if a.Packages < 2 {
			t.Errorf("%s: SBOM lists %d packages", a.SBOM, a.Packages)
		}
		var sbom struct {
			Name              string `json:"name"`
			DocumentNamespace string `json:"documentNamespace"`
		}
		if err := json.Unmarshal(read(t, r, a.SBOM), &sbom); err != nil || sbom.Name != base+ext || !strings.HasSuffix(sbom.DocumentNamespace, "/sha256:"+a.SHA256) {
			t.Errorf("%s: %+v %v", a.SBOM, sbom, err)
		}
	}

	// The binary for this machine runs and says its version.
	host := "bitvault_1.2.3_" + runtime.GOOS + "_" + runtime.GOARCH
	if out, err := exec.Command(filepath.Join(r.Dist, "cli", host, "bitvault"), "version", "--output", "json").Output(); err != nil || !strings.Contains(string(out), `"version": "1.2.3"`) {
		t.Errorf("bitvault version: %s %v", out, err)
	}

	// checksums.txt lists every archive and SBOM, and sha256sum agrees.
	sums, err := checksums.Parse(read(t, r, rec.Checksums))
	if err != nil || len(sums) != 12 {
		t.Fatalf("checksums.txt: %d entries, %v", len(sums), err)
	}
	for _, a := range rec.Archives {
		if s, _ := checksums.Lookup(sums, filepath.Base(a.File)); s != a.SHA256 {
			t.Errorf("checksums.txt: %s %s, record %s", a.File, s, a.SHA256)
		}
	}
	if bin, err := exec.LookPath("sha256sum"); err == nil {
		cmd := exec.Command(bin, "--check", "--strict", "checksums.txt")
		cmd.Dir = Dir(r)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("sha256sum --check: %v\n%s", err, out)
		}
	}

	// The formula names every darwin/linux archive at its release URL and digest.
	formula := string(read(t, r, rec.Formula))
	for _, a := range rec.Archives {
		url := "https://github.com/bitvault/bitvault/releases/download/v1.2.3/" + filepath.Base(a.File)
		if has := strings.Contains(formula, url) && strings.Contains(formula, a.SHA256); has == strings.HasPrefix(a.Target, "windows") {
			t.Errorf("formula and %s: listed %v", a.Target, has)
		}
	}

	// Every bundle verifies here and with upstream cosign; a tampered archive does not.
	p := attestsign.Policy{Roots: read(t, r, "sign/"+attestsign.RootFile), Identity: attestsign.DryRunIdentity, Issuer: attestsign.DryRunIssuer, IgnoreTlog: true}
	if f := Verify(context.Background(), r, p); len(f) != 0 || !rec.Verified {
		t.Fatalf("Verify: %v", f)
	}
	cosignVerify(t, r, rec.VerifyCommand)

	// The summary says what was built and that nothing was uploaded.
	var summary strings.Builder
	record.Summary(&summary, r.Record, "")
	for _, want := range []string{"CLI bitvault 1.2.3", "cli/bitvault_1.2.3_windows_arm64.zip", "windows/arm64", "pkgs", "verified",
		"GitHub Release bitvault/bitvault v1.2.3: not uploaded: dry-run", "verify (in dist/): cosign verify-blob --bundle cli/bitvault_1.2.3_linux_amd64.tar.gz.sigstore.json"} {
		if !strings.Contains(summary.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, summary.String())
		}
	}

	// Determinism: another run, another dist/, the same bytes (but for signatures).
	r2 := newRelease(t, cfg, release.Options{DryRun: true})
	run(t, r2)
	for i, a := range rec.Archives {
		b := r2.Record.CLI.Archives[i]
		if a.SHA256 != b.SHA256 || a.BinarySHA256 != b.BinarySHA256 {
			t.Errorf("%s: archive sha256 %s then %s (binary %s then %s)", a.File, a.SHA256, b.SHA256, a.BinarySHA256, b.BinarySHA256)
		}
		if !bytes.Equal(read(t, r, a.SBOM), read(t, r2, b.SBOM)) {
			t.Errorf("%s differs between two runs", a.SBOM)
		}
	}
	for _, f := range []string{rec.Checksums, rec.Formula} {
		if !bytes.Equal(read(t, r, f), read(t, r2, f)) {
			t.Errorf("%s differs between two runs", f)
		}
	}

	// Verify names a file changed after signing.
	tampered := filepath.Join(r.Dist, rec.Archives[2].File)
	data := read(t, r, rec.Archives[2].File)
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(tampered, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if f := Verify(context.Background(), r, p); len(f) != 1 || !strings.Contains(f[0], rec.Archives[2].File) || rec.Verified {
		t.Errorf("Verify after tampering: %v", f)
	}
}

// cosignVerify runs the recorded verify command with the pinned cosign in
// dist/, then the same on a tampered copy of the archive, which must fail.
func cosignVerify(t *testing.T, r *release.Release, command string, env ...string) {
	t.Helper()
	bin := cosigntest.Binary(t)
	args := strings.Fields(command)
	if args[0] != "cosign" {
		t.Fatalf("verify command %q", command)
	}
	args = args[1:]
	for i, a := range args {
		args[i] = strings.Trim(a, "'")
		if strings.HasPrefix(args[i], "cli/") {
			args[i] = filepath.Join(r.Dist, args[i])
		}
	}
	code, stdout, stderr := cosigntest.RunEnv(t, bin, env, args...)
	if code != 0 {
		t.Fatalf("cosign %s: exit %d\n%s\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	t.Logf("cosign %s: %s", strings.Join(args, " "), strings.TrimSpace(stderr))
	file := args[len(args)-1]
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-40] ^= 1
	tampered := filepath.Join(t.TempDir(), filepath.Base(file))
	if err := os.WriteFile(tampered, data, 0o644); err != nil {
		t.Fatal(err)
	}
	args[len(args)-1] = tampered
	if code, _, stderr := cosigntest.RunEnv(t, bin, env, args...); code == 0 {
		t.Fatalf("cosign verified a tampered archive:\n%s", stderr)
	} else {
		t.Logf("cosign refused the tampered archive: %s", strings.TrimSpace(stderr))
	}
}

// TestKeylessUpload is a real release: keyless signatures logged in Rekor,
// the archives, SBOMs, checksums and bundles uploaded to the GitHub Release,
// which is created; a re-run signs again but uploads nothing (the published
// bundles verify the same files under the same policy: kept); a published
// archive with other content fails the stage naming it, uploading nothing.
func TestKeylessUpload(t *testing.T) {
	ss := sigstoretest.New(t, workflow)
	gh := ghreleasetest.New(t, "bitvault", "bitvault", "ghs_release", true)
	t.Setenv(TokenEnv, gh.Token)
	t.Setenv("GITHUB_API_URL", gh.URL)
	cfg := repoConfig(t, "linux/amd64", "windows/arm64")
	ss.Env(t)
	s, err := keyless.FromEnv(context.Background(), keyless.Config{FulcioURL: ss.FulcioURL, RekorURL: ss.RekorURL, TrustedRoot: ss.TrustedRoot(), IgnoreSCT: true,
		Retry: retry.Policy{Attempts: 2, Base: time.Millisecond, Max: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	r := newRelease(t, cfg, release.Options{})
	r.Signer = s // as the sign stage leaves it

	if reason := run(t, r); reason != "" {
		t.Fatalf("skipped: %s", reason)
	}
	rec := r.Record.CLI
	if n := ss.Entries(); n != 3 {
		t.Errorf("Rekor holds %d entries, want one per archive and one for checksums.txt (3)", n)
	}
	want := []string{
		"bitvault_1.2.3_linux_amd64.spdx.json", "bitvault_1.2.3_linux_amd64.tar.gz", "bitvault_1.2.3_linux_amd64.tar.gz.sigstore.json",
		"bitvault_1.2.3_windows_arm64.spdx.json", "bitvault_1.2.3_windows_arm64.zip", "bitvault_1.2.3_windows_arm64.zip.sigstore.json",
		"checksums.txt", "checksums.txt.sigstore.json",
	}
	got := slices.Clone(rec.Upload.Uploaded)
	slices.Sort(got)
	if !slices.Equal(got, want) || rec.Upload.Skipped != "" {
		t.Fatalf("uploaded %v, want %v (skipped %q)", got, want, rec.Upload.Skipped)
	}
	published := gh.Release("v1.2.3")
	if published == nil || published.Commit != r.Record.Commit || published.Pre {
		t.Fatalf("release %+v", published)
	}
	for _, a := range published.Assets {
		if !bytes.Equal(a.Data, read(t, r, "cli/"+a.Name)) {
			t.Errorf("published %s differs from dist/cli", a.Name)
		}
	}
	if !strings.Contains(rec.VerifyCommand, "--certificate-identity-regexp") || strings.Contains(rec.VerifyCommand, "ignore-tlog") {
		t.Errorf("verify command %q: want the shipped identity and the log checked", rec.VerifyCommand)
	}
	cosignVerify(t, r, rec.VerifyCommand)
	p := attestsign.Policy{TrustedRoot: ss.TrustedRoot(), IdentityRegexp: shipped, Issuer: sigstoretest.GitHubIssuer, IgnoreSCT: true}
	if f := Verify(context.Background(), r, p); len(f) != 0 {
		t.Fatalf("Verify: %v", f)
	}
	// Under another identity, every file is refused.
	q := p
	q.IdentityRegexp = `^https://github\.com/bitvault/bitvault/\.github/workflows/ci\.yml@`
	if f := Verify(context.Background(), r, q); len(f) != 3 || !strings.Contains(f[0], "wrong identity") {
		t.Errorf("Verify under another identity: %v", f)
	}

	// Re-run: new signatures (and log entries), nothing uploaded.
	uploads := gh.Uploads()
	r2 := newRelease(t, cfg, release.Options{})
	r2.Dist = r.Dist
	r2.Signer = s
	if reason := run(t, r2); reason != "" {
		t.Fatalf("re-run skipped: %s", reason)
	}
	if gh.Uploads() != uploads || len(r2.Record.CLI.Upload.Uploaded) != 0 || len(r2.Record.CLI.Upload.Kept) != 8 {
		t.Errorf("re-run: %d uploads, record %+v", gh.Uploads()-uploads, r2.Record.CLI.Upload)
	}
	// dist/cli now holds the published bundles.
	for _, a := range published.Assets {
		if !bytes.Equal(a.Data, read(t, r2, "cli/"+a.Name)) {
			t.Errorf("after the re-run, published %s differs from dist/cli", a.Name)
		}
	}

	// Someone replaced an archive on the release: the stage fails naming it.
	gh.Put("v1.2.3", "bitvault_1.2.3_windows_arm64.zip", []byte("not our archive"))
	r3 := newRelease(t, cfg, release.Options{})
	r3.Signer = s
	err = Stage{}.Run(context.Background(), r3)
	if err == nil || !strings.Contains(err.Error(), "bitvault_1.2.3_windows_arm64.zip") || !strings.Contains(err.Error(), "different content") {
		t.Fatalf("err = %v, want the replaced archive named", err)
	}
	t.Log(err)
	if gh.Uploads() != uploads {
		t.Errorf("uploaded after a mismatch")
	}

	// A signer bvrelease.yaml does not trust (another workflow): refused before any upload.
	cfg4 := repoConfig(t, "linux/amd64")
	cfg4.Signing.IdentityRegexp = `^https://github\.com/bitvault/bitvault/\.github/workflows/ci\.yml@`
	r4 := newRelease(t, cfg4, release.Options{})
	r4.Signer = s
	err = Stage{}.Run(context.Background(), r4)
	if err == nil || !strings.Contains(err.Error(), "wrong identity") || !strings.Contains(err.Error(), "not recorded") {
		t.Fatalf("err = %v, want the identity refused", err)
	}
	if gh.Uploads() != uploads {
		t.Errorf("uploaded bundles of an untrusted identity")
	}
}

// TestSkips: no cli section; a real release without a token; no version.
func TestSkips(t *testing.T) {
	t.Run("no cli section", func(t *testing.T) {
		cfg := repoConfig(t)
		cfg.CLI = nil
		if reason := run(t, newRelease(t, cfg, release.Options{DryRun: true})); !strings.Contains(reason, "no cli section") {
			t.Errorf("reason %q", reason)
		}
	})
	t.Run("some artifacts only", func(t *testing.T) {
		r := newRelease(t, repoConfig(t, "linux/amd64"), release.Options{DryRun: true, Only: []string{"bitvaultd"}})
		if reason := run(t, r); !strings.Contains(reason, "--artifact bitvaultd") || r.Record.CLI != nil {
			t.Errorf("reason %q", reason)
		}
	})
	t.Run("no token", func(t *testing.T) {
		t.Setenv(TokenEnv, "")
		r := newRelease(t, repoConfig(t, "linux/amd64"), release.Options{SigningKey: "", DryRun: false})
		s, err := attestsign.NewEphemeral(filepath.Join(r.Dist, "sign"))
		if err != nil {
			t.Fatal(err)
		}
		r.Signer = s
		if reason := run(t, r); !strings.Contains(reason, "GITHUB_TOKEN not set") || r.Record.CLI.Upload.Skipped != "GITHUB_TOKEN not set" {
			t.Errorf("reason %q", reason)
		}
	})
	for name, edit := range map[string]func(*release.Record){
		"dirty":    func(rec *release.Record) { rec.Dirty = true; rec.Version += "-dirty" },
		"untagged": func(rec *release.Record) { rec.Version = "0.0.0-" + rec.Commit[:12] },
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(TokenEnv, "ghs_would_upload")
			t.Setenv("GITHUB_API_URL", "http://127.0.0.1:1") // never reached
			r := newRelease(t, repoConfig(t, "linux/amd64"), release.Options{})
			edit(&r.Record)
			s, err := attestsign.NewEphemeral(filepath.Join(r.Dist, "sign"))
			if err != nil {
				t.Fatal(err)
			}
			r.Signer = s
			if reason := run(t, r); !strings.Contains(reason, "GitHub Release is made") {
				t.Errorf("reason %q", reason)
			}
		})
	}
	t.Run("no plan", func(t *testing.T) {
		r := newRelease(t, repoConfig(t, "linux/amd64"), release.Options{DryRun: true})
		r.Record.Version = ""
		if err := (Stage{}).Run(context.Background(), r); err == nil || !strings.Contains(err.Error(), "plan") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("bad target", func(t *testing.T) {
		r := newRelease(t, repoConfig(t, "plan9/amd64"), release.Options{DryRun: true})
		if err := (Stage{}).Run(context.Background(), r); err == nil || !strings.Contains(err.Error(), "plan9/amd64") {
			t.Errorf("err = %v", err)
		}
	})
}

// TestVerifyReproducible: --verify-reproducible rebuilds with an empty build
// cache and passes; a differing archive fails naming it, with "not reproducible".
func TestVerifyReproducible(t *testing.T) {
	cfg := repoConfig(t, "linux/arm64")
	r := newRelease(t, cfg, release.Options{DryRun: true, VerifyReproducible: true})
	run(t, r)
	if !r.Record.CLI.Reproducible {
		t.Fatal("not recorded reproducible")
	}
	// What a differing rebuild reports.
	r.Record.CLI.Archives[0].SHA256 = strings.Repeat("0", 64)
	ts, _ := targets(cfg.CLI, "1.2.3")
	err := verifyReproducible(context.Background(), r, cfg.CLI, ts, extraFiles(cfg.Root), time.Unix(epoch, 0))
	if err == nil || !strings.Contains(err.Error(), "not reproducible") || !strings.Contains(err.Error(), "bitvault_1.2.3_linux_arm64.tar.gz") {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)
}

func TestVerifyCommand(t *testing.T) {
	for _, tc := range []struct {
		p    attestsign.Policy
		want string
	}{
		{attestsign.Policy{Roots: []byte("x"), Identity: attestsign.DryRunIdentity, Issuer: attestsign.DryRunIssuer, IgnoreTlog: true},
			"cosign verify-blob --bundle cli/a.tar.gz.sigstore.json --trusted-root cli/trusted_root.json --certificate-identity https://bitvault.dev/dry-run --certificate-oidc-issuer dry-run --insecure-ignore-tlog --insecure-ignore-sct cli/a.tar.gz"},
		{attestsign.Policy{TrustedRoot: []byte("{}"), IdentityRegexp: "^x$", Issuer: "https://token.actions.githubusercontent.com"},
			"cosign verify-blob --bundle cli/a.tar.gz.sigstore.json --trusted-root cli/trusted_root.json --certificate-identity-regexp '^x$' --certificate-oidc-issuer https://token.actions.githubusercontent.com cli/a.tar.gz"},
		{attestsign.Policy{PublicKey: []byte("k"), IgnoreTlog: true},
			"cosign verify-blob --bundle cli/a.tar.gz.sigstore.json --trusted-root cli/trusted_root.json --key cosign.pub --insecure-ignore-tlog cli/a.tar.gz"},
	} {
		if got := VerifyCommand(tc.p, "cli/trusted_root.json", "cli/a.tar.gz"); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
