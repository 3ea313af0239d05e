package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bitvault/bitvault/attest/admission"
	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/attest/sign/keyless"
	"github.com/bitvault/bitvault/internal/testsupport/attesttest"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
	"github.com/bitvault/bitvault/internal/testsupport/sigstoretest"
)

// TestVerifyCommand runs `bvrelease verify` on keyless release images (the trusted root and
// identity from flags, or from bvrelease.yaml's signing section) and on a dry-run image.
func TestVerifyCommand(t *testing.T) {
	ctx := context.Background()
	w := sigstoretest.Workflow{Repository: "bitvault/bitvault", Ref: "refs/tags/v1.2.3", SHA: strings.Repeat("ab", 20),
		WorkflowPath: ".github/workflows/release.yml", EventName: "push", RunID: "5"}
	ss := sigstoretest.New(t, w)
	ss.Env(t)
	s, err := keyless.FromEnv(ctx, keyless.Config{FulcioURL: ss.FulcioURL, RekorURL: ss.RekorURL, TrustedRoot: ss.TrustedRoot(), IgnoreSCT: true})
	if err != nil {
		t.Fatal(err)
	}
	host := registrytest.Start(t)
	push := func(repo string) registrytest.Fixture {
		r, err := name.NewRepository(host + "/" + repo)
		if err != nil {
			t.Fatal(err)
		}
		return registrytest.Push(t, r, 2)
	}
	good := attesttest.Options{Builder: w.Identity(), Repository: w.Repository, Ref: w.Ref}
	released, vulnerable, unsigned := push("released"), push("vulnerable"), push("unsigned")
	attesttest.Attest(t, s, released.Index, released.Children, good)
	bad := good
	bad.Report = attesttest.TrivyReport("v0.3.8")
	attesttest.Attest(t, s, vulnerable.Index, vulnerable.Children, bad)

	dir := t.TempDir()
	trusted := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(trusted, ss.TrustedRoot(), 0o644); err != nil {
		t.Fatal(err)
	}
	otherRoot := filepath.Join(dir, "other_root.json")
	if err := os.WriteFile(otherRoot, sigstoretest.New(t, w).TrustedRoot(), 0o644); err != nil {
		t.Fatal(err)
	}
	// A repository whose bvrelease.yaml names the identity and the trusted root.
	repoDir := t.TempDir()
	writeFile(t, filepath.Join(repoDir, "bvrelease.yaml"), `version: 1
project: bitvault
registry: ghcr.io/bitvault
artifacts:
  - name: app
    context: .
signing:
  identity_regexp: ^https://github\.com/bitvault/bitvault/\.github/workflows/release\.yml@refs/tags/v[0-9]+\.[0-9]+\.[0-9]+$
  issuer: https://token.actions.githubusercontent.com
  trusted_root: trusted_root.json
`)
	writeFile(t, filepath.Join(repoDir, "Dockerfile"), "FROM scratch\n")
	if err := os.WriteFile(filepath.Join(repoDir, "trusted_root.json"), ss.TrustedRoot(), 0o644); err != nil {
		t.Fatal(err)
	}
	// The dry-run signer: its CA root, no transparency log.
	dryDir := t.TempDir()
	eph, err := attestsign.NewEphemeral(dryDir)
	if err != nil {
		t.Fatal(err)
	}
	dry := push("dry")
	attesttest.Attest(t, eph, dry.Index, dry.Children, attesttest.Options{Builder: attestsign.DryRunIdentity, Repository: "local/bitvault", Ref: "local", Skip: []string{attesttest.Vuln}})

	flags := []string{"--trusted-root", trusted, "--certificate-identity", w.Identity(), "--certificate-oidc-issuer", sigstoretest.GitHubIssuer}
	args := func(refs []string, extra ...string) []string {
		return append(append([]string{"verify"}, refs...), extra...)
	}
	for _, tc := range []struct {
		name string
		dir  string // working directory ("" = an empty one)
		args []string
		code int
		want []string
	}{
		{"keyless release", "", args([]string{released.Index.String()}, flags...), 0,
			[]string{"signature ok", "provenance ok", "sbom ok", "vuln ok", "referrers ok", "signed by " + w.Identity()}},
		{"identity and trusted root from bvrelease.yaml", repoDir, args([]string{released.Index.String()}, "--source-repository", w.Repository, "--source-ref", w.Ref), 0, []string{"vuln ok"}},
		{"vulnerable", "", args([]string{vulnerable.Index.String()}, flags...), exitFailed, []string{"vuln FAIL", "CVE-2022-32149", "check(s) failed"}},
		{"unsigned", "", args([]string{released.Index.String(), unsigned.Index.String()}, flags...), exitFailed, []string{"signature FAIL", "no signature", "3 check(s) failed"}},
		{"wrong ref", "", args([]string{released.Index.String()}, "--trusted-root", trusted, "--certificate-identity-regexp", `@refs/tags/v9\.`, "--certificate-oidc-issuer", sigstoretest.GitHubIssuer), exitFailed, []string{"wrong identity"}},
		{"provenance ref", "", args([]string{released.Index.String()}, append(flags, "--source-ref", "refs/heads/main")...), exitFailed, []string{"provenance FAIL", "ref refs/heads/main"}},
		{"untrusted root", "", args([]string{released.Index.String()}, "--trusted-root", otherRoot, "--certificate-identity", w.Identity(), "--certificate-oidc-issuer", sigstoretest.GitHubIssuer), exitFailed, []string{"untrusted CA"}},
		{"dry-run", "", args([]string{dry.Index.String()}, "--ca-roots", filepath.Join(dryDir, attestsign.RootFile), "--insecure-ignore-tlog",
			"--certificate-identity", attestsign.DryRunIdentity, "--certificate-oidc-issuer", attestsign.DryRunIssuer, "--allow-unscanned"), 0, []string{"vuln not-scanned NOT SCANNED"}},
		{"dry-run image under the release's trust", "", args([]string{dry.Index.String()}, flags...), exitFailed, []string{"untrusted CA"}},
		{"ca-roots without ignoring the log", "", args([]string{dry.Index.String()}, "--ca-roots", filepath.Join(dryDir, attestsign.RootFile), "--certificate-identity", "x", "--certificate-oidc-issuer", "y"), exitUsage, []string{"--insecure-ignore-tlog"}},
		{"nobody trusted", "", args([]string{released.Index.String()}), exitUsage, []string{"say whom to trust"}},
		{"tag, not digest", "", args([]string{host + "/released:v1"}, flags...), exitUsage, []string{"IMAGE@sha256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.dir
			if d == "" {
				d = t.TempDir()
			}
			out, code := run(t, d, tc.args...)
			out = spaces.ReplaceAllString(out, " ") // table columns
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q:\n%s", want, out)
				}
			}
		})
	}
	t.Run("json", func(t *testing.T) {
		out, code := run(t, t.TempDir(), args([]string{released.Index.String()}, append(flags, "-o", "json")...)...)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		var reps []admission.Report
		if err := json.Unmarshal([]byte(out), &reps); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if len(reps) != 1 || len(reps[0].Checks) != 14 || reps[0].Failed() != 0 {
			t.Fatalf("report %+v", reps)
		}
	})
}

var spaces = regexp.MustCompile(` +`)

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}
