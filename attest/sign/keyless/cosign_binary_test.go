package keyless_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bitvault/bitvault/internal/testsupport/attesttest"
	"github.com/bitvault/bitvault/internal/testsupport/cosigntest"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
	"github.com/bitvault/bitvault/internal/testsupport/sigstoretest"
)

// TestCosignBinaryKeyless: the pinned upstream cosign binary verifies our keyless signatures
// and every attestation type the way a cluster operator would, with the transparency log
// checked: `cosign verify --trusted-root … --certificate-identity(-regexp) …
// --certificate-oidc-issuer …` (the test Fulcio issues no SCTs: --insecure-ignore-sct), and
// `cosign verify-attestation --type slsaprovenance1|spdxjson|cyclonedx|vuln` — which in
// cosign v2.6.5 takes --trusted-root only with the new bundle format, so there the CA comes
// from --ca-roots and the log's key from SIGSTORE_REKOR_PUBLIC_KEY (no --insecure-ignore-tlog).
// It refuses another trusted root or log, another identity and another ref.
func TestCosignBinaryKeyless(t *testing.T) {
	bin := cosigntest.Binary(t)
	ss := sigstoretest.New(t, release)
	s := newSigner(t, ss)
	f := registrytest.New(t, "bitvault/bitvaultd", 2)
	attesttest.Attest(t, s, f.Index, f.Children, attesttest.Options{Builder: release.Identity(), Repository: release.Repository, Ref: release.Ref})

	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	trusted := write("trusted_root.json", ss.TrustedRoot())
	other := write("other_root.json", sigstoretest.New(t, release).TrustedRoot())
	shipped := `^https://github\.com/bitvault/bitvault/\.github/workflows/release\.yml@refs/tags/v[0-9]+\.[0-9]+\.[0-9]+$`
	caRoots, rekorKey := write("root.pem", ss.RootPEM()), write("rekor.pub", ss.RekorPublicKeyPEM())
	otherKey := write("other-rekor.pub", sigstoretest.New(t, release).RekorPublicKeyPEM())
	att := func(typ, rekor string) ([]string, []string) {
		return []string{"verify-attestation", "--type", typ, "--ca-roots", caRoots, "--certificate-identity", release.Identity(),
			"--certificate-oidc-issuer", sigstoretest.GitHubIssuer, "--insecure-ignore-sct", "--offline"}, []string{"SIGSTORE_REKOR_PUBLIC_KEY=" + rekor}
	}
	id := func(root string, identity ...string) []string {
		a := []string{"--trusted-root", root, "--certificate-oidc-issuer", sigstoretest.GitHubIssuer, "--insecure-ignore-sct", "--offline"}
		if len(identity) == 0 {
			return append(a, "--certificate-identity", release.Identity())
		}
		return append(a, identity...)
	}
	all := append([]name.Digest{f.Index}, f.Children...)
	type tcase struct {
		name string
		args []string
		refs []name.Digest
		ok   bool
		env  []string
	}
	attCase := func(name, typ, rekor string, refs []name.Digest, ok bool) tcase {
		a, e := att(typ, rekor)
		return tcase{name, a, refs, ok, e}
	}
	for _, tc := range []tcase{
		{"verify", append([]string{"verify"}, id(trusted)...), all, true, nil},
		{"verify, the shipped identity pattern", append([]string{"verify"}, id(trusted, "--certificate-identity-regexp", shipped)...), all, true, nil},
		attCase("verify-attestation slsaprovenance1", "slsaprovenance1", rekorKey, all, true),
		attCase("verify-attestation spdxjson", "spdxjson", rekorKey, f.Children, true),
		attCase("verify-attestation cyclonedx", "cyclonedx", rekorKey, f.Children, true),
		attCase("verify-attestation vuln", "vuln", rekorKey, f.Children, true),
		{"another trusted root", append([]string{"verify"}, id(other)...), all[:1], false, nil},
		attCase("attestation logged elsewhere", "slsaprovenance1", otherKey, all[:1], false),
		{"another workflow", append([]string{"verify"}, id(trusted, "--certificate-identity", strings.Replace(release.Identity(), "release.yml", "ci.yml", 1))...), all[:1], false, nil},
		{"another ref", append([]string{"verify"}, id(trusted, "--certificate-identity-regexp", `@refs/tags/v9\.`)...), all[:1], false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, ref := range tc.refs {
				code, stdout, stderr := cosigntest.RunEnv(t, bin, tc.env, append(tc.args, ref.String())...)
				if (code == 0) != tc.ok {
					t.Fatalf("cosign %s %s: exit %d, want ok=%v\n%s\n%s", strings.Join(tc.args, " "), ref, code, tc.ok, stdout, stderr)
				}
				if tc.ok && !strings.Contains(stdout, ref.DigestStr()) && tc.args[0] == "verify" {
					t.Errorf("cosign verify output does not name %s:\n%s", ref.DigestStr(), stdout)
				}
				if !tc.ok {
					t.Logf("cosign refused (exit %d): %s", code, lastLine(stderr))
				}
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
