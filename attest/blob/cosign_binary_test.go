package blob_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitvault/bitvault/attest/blob"
	"github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/testsupport/cosigntest"
	"github.com/bitvault/bitvault/internal/testsupport/sigstoretest"
)

// TestCosignVerifyBlob: the pinned upstream cosign (v2.6.5) verifies our bundles with
// `cosign verify-blob --bundle F.sigstore.json --trusted-root … F` — it recognises the
// protobuf bundle without --new-bundle-format — keyless with the transparency log checked,
// the dry-run CA with --insecure-ignore-tlog, and a key; and refuses a tampered file,
// another trusted root, another identity, another issuer.
func TestCosignVerifyBlob(t *testing.T) {
	bin := cosigntest.Binary(t)
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := write("bitvault_1.2.3_linux_amd64.tar.gz", archive)
	tampered := write("tampered.tar.gz", append([]byte("X"), archive[1:]...))

	ss := sigstoretest.New(t, workflow)
	kb, err := blob.Sign(ctx, keylessSigner(t, ss), archive)
	if err != nil {
		t.Fatal(err)
	}
	keylessBundle := write("keyless"+blob.Extension, kb)
	keylessRoot := write("trusted_root.json", ss.TrustedRoot())
	otherRoot := write("other_root.json", sigstoretest.New(t, workflow).TrustedRoot())

	es := ephemeral(t)
	db, err := blob.Sign(ctx, es, archive)
	if err != nil {
		t.Fatal(err)
	}
	dryBundle := write("dry-run"+blob.Extension, db)
	tr, err := blob.TrustedRoot(es.Policy(), db)
	if err != nil {
		t.Fatal(err)
	}
	dryRoot := write("dry-run-trusted_root.json", tr)
	otherDry, err := blob.TrustedRoot(ephemeral(t).Policy(), db)
	if err != nil {
		t.Fatal(err)
	}
	otherDryRoot := write("other-dry-run-trusted_root.json", otherDry)

	key, pub := keySigner(t)
	kbb, err := blob.Sign(ctx, key, archive)
	if err != nil {
		t.Fatal(err)
	}
	keyBundle := write("key"+blob.Extension, kbb)
	pubKey := write("cosign.pub", pub)
	emptyRootJSON, err := blob.TrustedRoot(sign.Policy{PublicKey: pub, IgnoreTlog: true}, kbb)
	if err != nil {
		t.Fatal(err)
	}
	emptyRoot := write("empty_root.json", emptyRootJSON)

	keylessArgs := func(bundle, root string, identity ...string) []string {
		if len(identity) == 0 {
			identity = []string{"--certificate-identity-regexp", shipped}
		}
		a := []string{"verify-blob", "--bundle", bundle, "--trusted-root", root, "--certificate-oidc-issuer", sigstoretest.GitHubIssuer, "--insecure-ignore-sct", "--offline"}
		return append(a, identity...)
	}
	dryArgs := func(root, issuer string) []string {
		return []string{"verify-blob", "--bundle", dryBundle, "--trusted-root", root, "--certificate-identity", sign.DryRunIdentity,
			"--certificate-oidc-issuer", issuer, "--insecure-ignore-tlog", "--insecure-ignore-sct"}
	}
	for _, tc := range []struct {
		name string
		args []string
		file string
		ok   bool
	}{
		{"keyless", keylessArgs(keylessBundle, keylessRoot), file, true},
		{"keyless, --new-bundle-format said explicitly", append(keylessArgs(keylessBundle, keylessRoot), "--new-bundle-format"), file, true},
		{"keyless, exact identity", keylessArgs(keylessBundle, keylessRoot, "--certificate-identity", workflow.Identity()), file, true},
		{"keyless, tampered file", keylessArgs(keylessBundle, keylessRoot), tampered, false},
		{"keyless, another trusted root", keylessArgs(keylessBundle, otherRoot), file, false},
		{"keyless, another workflow", keylessArgs(keylessBundle, keylessRoot, "--certificate-identity", strings.Replace(workflow.Identity(), "release.yml", "ci.yml", 1)), file, false},
		{"keyless, another ref", keylessArgs(keylessBundle, keylessRoot, "--certificate-identity-regexp", `@refs/tags/v9\.`), file, false},
		{"dry-run", dryArgs(dryRoot, sign.DryRunIssuer), file, true},
		{"dry-run, tampered file", dryArgs(dryRoot, sign.DryRunIssuer), tampered, false},
		{"dry-run, another dry-run CA", dryArgs(otherDryRoot, sign.DryRunIssuer), file, false},
		{"dry-run, another issuer", dryArgs(dryRoot, sigstoretest.GitHubIssuer), file, false},
		{"dry-run bundle, release trust", keylessArgs(dryBundle, keylessRoot, "--certificate-identity", sign.DryRunIdentity), file, false},
		{"key", []string{"verify-blob", "--bundle", keyBundle, "--key", pubKey, "--trusted-root", emptyRoot, "--insecure-ignore-tlog"}, file, true},
		{"key, tampered file", []string{"verify-blob", "--bundle", keyBundle, "--key", pubKey, "--trusted-root", emptyRoot, "--insecure-ignore-tlog"}, tampered, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(tc.args, tc.file)
			code, stdout, stderr := cosigntest.Run(t, bin, args...)
			if (code == 0) != tc.ok {
				t.Fatalf("cosign %s: exit %d, want ok=%v\n%s\n%s", strings.Join(args, " "), code, tc.ok, stdout, stderr)
			}
			if tc.ok && !strings.Contains(stderr, "Verified OK") {
				t.Errorf("cosign did not say Verified OK:\n%s", stderr)
			}
			if !tc.ok {
				t.Logf("cosign refused (exit %d): %s", code, lastLine(stderr))
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
