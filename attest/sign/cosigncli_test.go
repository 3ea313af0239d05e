package sign

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/verify"

	"github.com/bitvault/bitvault/internal/testsupport/cosigntest"
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
	fx := newCLIFixture(t)
	dir, keyDir, otherKeyDir, refs, unsigned := fx.dir, fx.keyDir, fx.otherKeyDir, fx.refs, fx.unsigned
	ctx := context.Background()

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
	otherCA := fx.otherCA
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

// TestCosignBinaryVerify is TestCosignCLIVerify with the real, pinned cosign binary
// (tools/cosign, scan.CosignVersion) instead of cosign's code linked into our tests: each case
// runs `cosign verify` against the in-process registry (plain http on 127.0.0.1, which cosign
// treats as insecure by itself) and is judged by its exit status. Accepted (exit 0): every
// manifest of the index and the index itself, keyless (dry-run CA through --ca-roots or
// --certificate-chain) and with --key; their JSON output names the verified digest. Rejected
// with cosign's documented exit codes and its reason on stderr: another identity, another
// issuer, another CA, another key (12, no matching signatures); an unsigned image, keyless
// and keyed (10, no signatures).
func TestCosignBinaryVerify(t *testing.T) {
	bin := cosigntest.Binary(t)
	fx := newCLIFixture(t)
	dir, keyDir, otherKeyDir, refs, unsigned := fx.dir, fx.keyDir, fx.otherKeyDir, fx.refs, fx.unsigned
	otherCA := fx.otherCA
	root := filepath.Join(dir, RootFile)

	keyless := func(trust, roots, identity, issuer string) []string {
		return []string{trust, roots, "--certificate-identity", identity, "--certificate-oidc-issuer", issuer,
			"--insecure-ignore-tlog", "--insecure-ignore-sct", "--offline"}
	}
	withKey := func(pub string) []string {
		return []string{"--key", pub, "--insecure-ignore-tlog", "--offline"}
	}
	const release = "https://github.com/bitvault/bitvault/.github/workflows/release.yml@refs/tags/v1.0.0"
	// cosign's exit codes (cmd/cosign/errors): 10 = no signature, 12 = no matching signature.
	const ok, noSignature, noMatch = 0, 10, 12
	for _, tc := range []struct {
		name   string
		args   []string
		refs   []name.Digest
		code   int
		reason string // in stderr when rejected
	}{
		{"ca-roots dry-run identity", keyless("--ca-roots", root, DryRunIdentity, DryRunIssuer), refs, ok, ""},
		{"certificate-chain dry-run identity", keyless("--certificate-chain", root, DryRunIdentity, DryRunIssuer), refs, ok, ""},
		{"wrong identity", keyless("--ca-roots", root, release, DryRunIssuer), refs[:1], noMatch, "none of the expected identities matched"},
		{"wrong issuer", keyless("--ca-roots", root, DryRunIdentity, "https://token.actions.githubusercontent.com"), refs[:1], noMatch, "none of the expected identities matched"},
		{"another CA", keyless("--ca-roots", filepath.Join(otherCA, RootFile), DryRunIdentity, DryRunIssuer), refs[:1], noMatch, "certificate signed by unknown authority"},
		{"unsigned keyless", keyless("--ca-roots", root, DryRunIdentity, DryRunIssuer), []name.Digest{unsigned}, noSignature, "no signatures found"},
		{"key", withKey(filepath.Join(keyDir, "cosign.pub")), refs, ok, ""},
		{"other key", withKey(filepath.Join(otherKeyDir, "cosign.pub")), refs[:1], noMatch, "invalid signature"},
		{"unsigned key", withKey(filepath.Join(keyDir, "cosign.pub")), []name.Digest{unsigned}, noSignature, "no signatures found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, ref := range tc.refs {
				args := append(append([]string{"verify"}, tc.args...), ref.String())
				code, stdout, stderr := cosigntest.Run(t, bin, args...)
				if code != tc.code {
					t.Fatalf("cosign %s: exit %d, want %d\n%s", strings.Join(args, " "), code, tc.code, stderr)
				}
				if code == ok {
					checkVerifyOutput(t, stdout, ref)
					continue
				}
				if !strings.Contains(stderr, tc.reason) {
					t.Fatalf("cosign %s: rejected, but stderr lacks %q:\n%s", strings.Join(args, " "), tc.reason, stderr)
				}
				t.Logf("cosign rejected %s: %s", ref.DigestStr(), lastLine(stderr))
			}
		})
	}
}

// checkVerifyOutput checks that `cosign verify` printed, as JSON, at least one simple-signing
// payload and that each names ref's digest.
func checkVerifyOutput(t *testing.T, stdout string, ref name.Digest) {
	t.Helper()
	var payloads []struct {
		Critical struct {
			Image struct {
				Digest string `json:"docker-manifest-digest"`
			} `json:"image"`
		} `json:"critical"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &payloads); err != nil {
		t.Fatalf("cosign verify output is not a JSON array of payloads: %v\n%s", err, stdout)
	}
	if len(payloads) == 0 {
		t.Fatal("cosign verify: exit 0 but no verified payload printed")
	}
	for _, p := range payloads {
		if p.Critical.Image.Digest != ref.DigestStr() {
			t.Fatalf("cosign verify printed a payload for %q, want %s", p.Critical.Image.Digest, ref.DigestStr())
		}
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// cliFixture is what both cosign verify tests check: an index and its manifests signed by the
// dry-run CA (root in dir) and by a key (keyDir/cosign.pub), another key and another CA that
// signed nothing, and an unsigned image.
type cliFixture struct {
	dir, keyDir, otherKeyDir, otherCA string
	refs                              []name.Digest
	unsigned                          name.Digest
}

func newCLIFixture(t *testing.T) cliFixture {
	t.Helper()
	ctx := context.Background()
	f := newRegistry(t)
	fx := cliFixture{dir: t.TempDir(), keyDir: t.TempDir(), otherKeyDir: t.TempDir(), otherCA: t.TempDir()}
	eph, err := NewEphemeral(fx.dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewEphemeral(fx.otherCA); err != nil {
		t.Fatal(err)
	}
	key := newKeySigner(t, fx.keyDir, "pw")
	newKeySigner(t, fx.otherKeyDir, "pw")
	fx.refs = append([]name.Digest{f.Index}, f.Children...)
	for _, ref := range fx.refs {
		for _, s := range []Signer{eph, key} {
			if err := SignImage(ctx, ref, s); err != nil {
				t.Fatal(err)
			}
		}
	}
	fx.unsigned = pushRandomImage(t, f.Repo)
	return fx
}
