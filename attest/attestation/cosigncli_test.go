package attestation

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/verify"

	"github.com/bitvault/bitvault/attest/sign"
)

// TestCosignCLIVerifyAttestation runs cosign's own `cosign verify-attestation` code path
// (VerifyAttestationCommand.Exec) against attestations written by Attach:
// `cosign verify-attestation --type slsaprovenance1 --ca-roots dry-run-root.pem
// --certificate-identity … --certificate-oidc-issuer dry-run --insecure-ignore-tlog
// --insecure-ignore-sct` or `--key cosign.pub --insecure-ignore-tlog`.
func TestCosignCLIVerifyAttestation(t *testing.T) {
	t.Setenv("TUF_ROOT", t.TempDir()) // never touch ~/.sigstore
	t.Setenv("SIGSTORE_CT_LOG_PUBLIC_KEY_FILE", filepath.Join(t.TempDir(), "unused.pem"))
	ctx := context.Background()
	f := newRegistry(t)
	dir, keyDir := t.TempDir(), t.TempDir()
	eph, err := sign.NewEphemeral(dir)
	if err != nil {
		t.Fatal(err)
	}
	key := newKeySigner(t, keyDir)
	refs := []name.Digest{f.Index, f.Children[0]}
	for _, ref := range refs {
		for _, s := range []sign.Signer{eph, key} {
			for typ, pred := range map[string]map[string]any{SLSAProvenanceV1: provenance(), CycloneDX: cyclonedx()} {
				st, err := Statement(f.Repo.String(), hash(t, ref), typ, pred)
				if err != nil {
					t.Fatal(err)
				}
				if err := Attach(ctx, ref, st, s); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// Statement for the platform manifest attached to the other platform manifest.
	st, err := Statement(f.Repo.String(), hash(t, f.Children[0]), SLSAProvenanceV1, provenance())
	if err != nil {
		t.Fatal(err)
	}
	if err := attach(ctx, f.Children[1], st, eph, false); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, sign.RootFile)
	keyless := func(typ, identity string) *verify.VerifyAttestationCommand {
		c := &verify.VerifyAttestationCommand{
			CheckClaims: true, PredicateType: typ, CARoots: root,
			IgnoreSCT: true, IgnoreTlog: true, Offline: true,
		}
		c.CertIdentity, c.CertOidcIssuer = identity, sign.DryRunIssuer
		return c
	}
	withKey := func(typ string) *verify.VerifyAttestationCommand {
		return &verify.VerifyAttestationCommand{CheckClaims: true, PredicateType: typ, KeyRef: filepath.Join(keyDir, "cosign.pub"), IgnoreTlog: true, Offline: true}
	}
	for _, tc := range []struct {
		name string
		cmd  *verify.VerifyAttestationCommand
		refs []name.Digest
		ok   bool
	}{
		{"slsaprovenance1 dry-run", keyless("slsaprovenance1", sign.DryRunIdentity), refs, true},
		{"provenance URI dry-run", keyless(SLSAProvenanceV1, sign.DryRunIdentity), refs, true},
		{"cyclonedx dry-run", keyless("cyclonedx", sign.DryRunIdentity), refs, true},
		{"slsaprovenance1 key", withKey("slsaprovenance1"), refs, true},
		{"cyclonedx key", withKey("cyclonedx"), refs, true},
		{"wrong type", keyless("spdxjson", sign.DryRunIdentity), refs[:1], false},
		{"wrong identity", keyless("slsaprovenance1", "https://example.com/other"), refs[:1], false},
		{"subject mismatch", keyless("slsaprovenance1", sign.DryRunIdentity), f.Children[1:], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cmd.RegistryOptions = options.RegistryOptions{}
			for _, ref := range tc.refs {
				null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				stdout := os.Stdout
				os.Stdout = null // verify-attestation prints the envelopes
				err = tc.cmd.Exec(ctx, []string{ref.String()})
				os.Stdout = stdout
				null.Close()
				if (err == nil) != tc.ok {
					t.Fatalf("%s: cosign verify-attestation: ok=%v, want %v (err %v)", ref, err == nil, tc.ok, err)
				}
				if err != nil {
					t.Logf("cosign: %v", err)
				}
			}
		})
	}
}
