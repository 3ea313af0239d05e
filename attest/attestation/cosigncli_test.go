package attestation

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/verify"

	"github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/testsupport/cosigntest"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
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

// TestCosignBinaryVerifyAttestation is TestCosignCLIVerifyAttestation with the real, pinned
// cosign binary (tools/cosign, scan.CosignVersion): `cosign verify-attestation` against the
// in-process registry, judged by exit status. Accepted (exit 0; every envelope printed is a
// statement of the asked predicate type whose subject is the verified digest): --type
// slsaprovenance1 (and the provenance URI, and cyclonedx) keyless with the dry-run CA as
// --ca-roots or --certificate-chain, and with --key, on the index and a platform manifest.
// Rejected (exit 1, cosign's reason on stderr): another identity, another CA, another
// key, a predicate type that was not attested, an image with no attestation, and a
// provenance statement whose subject is another manifest.
func TestCosignBinaryVerifyAttestation(t *testing.T) {
	bin := cosigntest.Binary(t)
	ctx := context.Background()
	f := newRegistry(t)
	dir, keyDir, otherKeyDir, otherCA := t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()
	eph, err := sign.NewEphemeral(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sign.NewEphemeral(otherCA); err != nil {
		t.Fatal(err)
	}
	key := newKeySigner(t, keyDir)
	newKeySigner(t, otherKeyDir)
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
	unattested := registrytest.Push(t, f.Repo, 1).Index

	root := filepath.Join(dir, sign.RootFile)
	keyless := func(typ, trust, roots, identity string) []string {
		return []string{"--type", typ, trust, roots, "--certificate-identity", identity,
			"--certificate-oidc-issuer", sign.DryRunIssuer, "--insecure-ignore-tlog", "--insecure-ignore-sct", "--offline"}
	}
	withKey := func(typ, pub string) []string {
		return []string{"--type", typ, "--key", pub, "--insecure-ignore-tlog", "--offline"}
	}
	pub, otherPub := filepath.Join(keyDir, "cosign.pub"), filepath.Join(otherKeyDir, "cosign.pub")
	for _, tc := range []struct {
		name   string
		args   []string
		refs   []name.Digest
		want   string // predicate type of every printed statement, when accepted
		reason string // in stderr, when rejected
	}{
		{"slsaprovenance1 ca-roots", keyless("slsaprovenance1", "--ca-roots", root, sign.DryRunIdentity), refs, SLSAProvenanceV1, ""},
		{"slsaprovenance1 certificate-chain", keyless("slsaprovenance1", "--certificate-chain", root, sign.DryRunIdentity), refs, SLSAProvenanceV1, ""},
		{"provenance URI", keyless(SLSAProvenanceV1, "--ca-roots", root, sign.DryRunIdentity), refs, SLSAProvenanceV1, ""},
		{"cyclonedx", keyless("cyclonedx", "--ca-roots", root, sign.DryRunIdentity), refs, CycloneDX, ""},
		{"slsaprovenance1 key", withKey("slsaprovenance1", pub), refs, SLSAProvenanceV1, ""},
		{"wrong identity", keyless("slsaprovenance1", "--ca-roots", root, "https://example.com/other"), refs[:1], "", "none of the expected identities matched"},
		{"another CA", keyless("slsaprovenance1", "--ca-roots", filepath.Join(otherCA, sign.RootFile), sign.DryRunIdentity), refs[:1], "", "certificate signed by unknown authority"},
		{"other key", withKey("slsaprovenance1", otherPub), refs[:1], "", "accepted signatures do not match threshold"},
		{"type not attested", keyless("spdxjson", "--ca-roots", root, sign.DryRunIdentity), refs[:1], "", "none of the attestations matched the predicate type"},
		{"unattested keyless", keyless("slsaprovenance1", "--ca-roots", root, sign.DryRunIdentity), []name.Digest{unattested}, "", "no matching attestations"},
		{"unattested key", withKey("slsaprovenance1", pub), []name.Digest{unattested}, "", "no matching attestations"},
		{"subject mismatch", keyless("slsaprovenance1", "--ca-roots", root, sign.DryRunIdentity), f.Children[1:], "", "no matching attestations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, ref := range tc.refs {
				args := append(append([]string{"verify-attestation"}, tc.args...), ref.String())
				code, stdout, stderr := cosigntest.Run(t, bin, args...)
				if tc.want != "" {
					if code != 0 {
						t.Fatalf("cosign %s: exit %d, want 0\n%s", strings.Join(args, " "), code, stderr)
					}
					checkStatements(t, stdout, ref, tc.want)
					continue
				}
				// verify-attestation, unlike verify, exits 1 for every failure.
				if code != 1 {
					t.Fatalf("cosign %s: exit %d, want 1 (rejected)\n%s%s", strings.Join(args, " "), code, stdout, stderr)
				}
				if !strings.Contains(stderr, tc.reason) {
					t.Fatalf("cosign %s: exit %d, but stderr lacks %q:\n%s", strings.Join(args, " "), code, tc.reason, stderr)
				}
				t.Logf("cosign rejected %s (exit %d): %s", ref.DigestStr(), code, strings.TrimSpace(stderr[strings.LastIndex(strings.TrimSpace(stderr), "\n")+1:]))
			}
		})
	}
}

// checkStatements checks that `cosign verify-attestation` printed at least one DSSE envelope
// (one JSON object a line) and that each holds an in-toto statement of predicateType about
// ref's digest.
func checkStatements(t *testing.T, stdout string, ref name.Digest, predicateType string) {
	t.Helper()
	n := 0
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var env struct {
			PayloadType string `json:"payloadType"`
			Payload     string `json:"payload"`
		}
		if err := json.Unmarshal([]byte(line), &env); err != nil {
			t.Fatalf("cosign verify-attestation printed a non-JSON line: %v\n%s", err, line)
		}
		payload, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var st statement
		if err := json.Unmarshal(payload, &st); err != nil {
			t.Fatal(err)
		}
		if env.PayloadType != "application/vnd.in-toto+json" || st.PredicateType != predicateType || !st.names(hash(t, ref)) {
			t.Fatalf("cosign verify-attestation printed %s with predicate %s for %v, want %s for %s",
				env.PayloadType, st.PredicateType, st.Subject, predicateType, ref.DigestStr())
		}
		n++
	}
	if n == 0 {
		t.Fatal("cosign verify-attestation: exit 0 but no envelope printed")
	}
}
