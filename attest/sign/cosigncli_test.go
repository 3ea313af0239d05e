package sign

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/verify"
)

// TestCosignCLIVerify runs cosign's own `cosign verify` code path (VerifyCommand.Exec, what the
// CLI runs after flag parsing) against signatures written by SignImage, as an air-gapped
// operator would: `cosign verify --ca-roots dry-run-root.pem --certificate-identity …
// --certificate-oidc-issuer dry-run --insecure-ignore-tlog --insecure-ignore-sct` or `--key cosign.pub`.
func TestCosignCLIVerify(t *testing.T) {
	t.Setenv("TUF_ROOT", t.TempDir()) // never touch ~/.sigstore
	// With --key and no trust material named, cosign tries to fetch Sigstore's TUF root (and
	// only warns when it cannot). Naming any Sigstore trust file stops that lookup; this one is
	// never read (no SCT is checked with --key or --insecure-ignore-sct).
	t.Setenv("SIGSTORE_CT_LOG_PUBLIC_KEY_FILE", filepath.Join(t.TempDir(), "unused.pem"))
	ctx := context.Background()
	f := newRegistry(t)
	dir := t.TempDir()
	eph, err := NewEphemeral(dir)
	if err != nil {
		t.Fatal(err)
	}
	keyDir, otherKeyDir := t.TempDir(), t.TempDir()
	key := newKeySigner(t, keyDir, "pw")
	newKeySigner(t, otherKeyDir, "pw")
	refs := append([]name.Digest{f.Index}, f.Children...)
	for _, ref := range refs {
		for _, s := range []Signer{eph, key} {
			if err := SignImage(ctx, ref, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	unsigned := pushRandomImage(t, f.Repo)

	keyless := func(identity, issuer, roots string) *verify.VerifyCommand {
		c := &verify.VerifyCommand{
			CheckClaims: true,
			CARoots:     roots,
			IgnoreSCT:   true,
			IgnoreTlog:  true,
			Offline:     true,
		}
		c.CertIdentity, c.CertOidcIssuer = identity, issuer
		return c
	}
	withKey := func(pub string) *verify.VerifyCommand {
		return &verify.VerifyCommand{CheckClaims: true, KeyRef: pub, IgnoreTlog: true, Offline: true}
	}
	root := filepath.Join(dir, RootFile)
	otherCA := t.TempDir()
	if _, err := NewEphemeral(otherCA); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cmd  *verify.VerifyCommand
		refs []name.Digest
		ok   bool
	}{
		{"dry-run identity", keyless(DryRunIdentity, DryRunIssuer, root), refs, true},
		{"wrong identity", keyless("https://github.com/bitvault/bitvault/.github/workflows/release.yml@refs/tags/v1.0.0", DryRunIssuer, root), refs[:1], false},
		{"wrong issuer", keyless(DryRunIdentity, "https://token.actions.githubusercontent.com", root), refs[:1], false},
		{"another CA", keyless(DryRunIdentity, DryRunIssuer, filepath.Join(otherCA, RootFile)), refs[:1], false},
		{"unsigned", keyless(DryRunIdentity, DryRunIssuer, root), []name.Digest{unsigned}, false},
		{"key", withKey(filepath.Join(keyDir, "cosign.pub")), refs, true},
		{"other key", withKey(filepath.Join(otherKeyDir, "cosign.pub")), refs[:1], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cmd.RegistryOptions = options.RegistryOptions{}
			for _, ref := range tc.refs {
				err := tc.cmd.Exec(ctx, []string{ref.String()})
				if (err == nil) != tc.ok {
					t.Fatalf("%s: cosign verify: ok=%v, want %v (err %v)", ref, err == nil, tc.ok, err)
				}
				if err != nil {
					t.Logf("cosign: %v", err)
				}
			}
		})
	}
}
