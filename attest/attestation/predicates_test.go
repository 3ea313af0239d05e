package attestation

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/verify"
	cosignatt "github.com/sigstore/cosign/v2/pkg/cosign/attestation"

	"github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
)

const (
	spdxDoc  = `{"spdxVersion":"SPDX-2.3","dataLicense":"CC0-1.0","SPDXID":"SPDXRef-DOCUMENT","name":"bitvaultd","documentNamespace":"https://bitvault.dev/spdx/x","creationInfo":{"created":"2026-01-02T03:04:05Z","creators":["Tool: syft"]},"packages":[]}`
	cdxDoc   = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[]}`
	trivyDoc = `{"SchemaVersion":2,"CreatedAt":"2026-01-02T03:04:05Z","ArtifactName":"bitvaultd@sha256:00","Results":[{"Target":"app/server","Class":"lang-pkgs","Type":"gobinary","Vulnerabilities":[{"VulnerabilityID":"CVE-2022-32149","PkgName":"golang.org/x/text","InstalledVersion":"v0.3.7","FixedVersion":"0.3.8","Severity":"HIGH"}]}]}`
)

func vulnScan() VulnScan {
	start := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	return VulnScan{
		Report:     []byte(trivyDoc),
		ScannerURI: "pkg:github/aquasecurity/trivy@v0.74.0", ScannerVersion: "v0.74.0",
		DBURI: "file:///db", DBVersion: "2026-01-01T00:00:00Z",
		InvocationURI: "local:host", BuilderID: "https://bitvault.dev/dry-run",
		StartedOn: start, FinishedOn: start.Add(5 * time.Second),
	}
}

// TestPredicateTypesMatchCosign: every predicate type bvrelease attaches is what cosign's
// `--type` name stands for, so `cosign verify-attestation --type spdxjson|cyclonedx|vuln` finds it.
func TestPredicateTypesMatchCosign(t *testing.T) {
	for typ, name := range CosignTypes {
		if got := options.PredicateTypeMap[name]; got != typ {
			t.Errorf("cosign --type %s is %q, we attach %q", name, got, typ)
		}
		if CosignType(typ) != name {
			t.Errorf("CosignType(%s) = %s, want %s", typ, CosignType(typ), name)
		}
	}
	for name, want := range map[string]string{"spdx": SPDX, "spdxjson": SPDX, "cyclonedx": CycloneDX, "vuln": Vuln} {
		if got := options.PredicateTypeMap[name]; got != want {
			t.Errorf("cosign --type %s is %q, want %q", name, got, want)
		}
	}
	if Vuln != "https://cosign.sigstore.dev/attestation/vuln/v1" || SPDX != "https://spdx.dev/Document" || CycloneDX != "https://cyclonedx.org/bom" {
		t.Errorf("predicate types changed: %s %s %s", SPDX, CycloneDX, Vuln)
	}
}

func TestSBOMStatement(t *testing.T) {
	d := hash(t, newRegistry(t).Index)
	for _, tc := range []struct {
		name, typ, doc string
		err            string // "" = ok
	}{
		{"spdx", SPDX, spdxDoc, ""},
		{"cyclonedx", CycloneDX, cdxDoc, ""},
		{"cyclonedx as spdx", SPDX, cdxDoc, "not an SPDX"},
		{"spdx as cyclonedx", CycloneDX, spdxDoc, "not a CycloneDX"},
		{"provenance type", SLSAProvenanceV1, spdxDoc, "neither"},
		{"not json", SPDX, "SPDXVersion: SPDX-2.3", "not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := SBOMStatement("reg/bitvaultd", d, tc.typ, []byte(tc.doc))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			typ, pred, err := PredicateOf(st)
			if err != nil || typ != tc.typ {
				t.Fatalf("PredicateOf: %s, %v", typ, err)
			}
			var want bytes.Buffer
			_ = json.Compact(&want, []byte(tc.doc))
			if !bytes.Equal(pred, want.Bytes()) {
				t.Errorf("predicate is not the document:\n%s\n%s", pred, want.Bytes())
			}
		})
	}
}

// TestVulnStatement: the predicate has cosign's shape (it decodes into cosign's own
// CosignVulnStatement), carries the report verbatim, and is the same bytes for the same scan.
func TestVulnStatement(t *testing.T) {
	d := hash(t, newRegistry(t).Index)
	st, err := VulnStatement("reg/bitvaultd", d, vulnScan())
	if err != nil {
		t.Fatal(err)
	}
	again, _ := VulnStatement("reg/bitvaultd", d, vulnScan())
	if !bytes.Equal(st, again) {
		t.Error("the same scan gives different statements: Attach would pile them up")
	}
	var cs cosignatt.CosignVulnStatement
	if err := json.Unmarshal(st, &cs); err != nil {
		t.Fatal(err)
	}
	if cs.PredicateType != Vuln || cs.Predicate.Scanner.URI != "pkg:github/aquasecurity/trivy@v0.74.0" || cs.Predicate.Scanner.DB.Version == "" ||
		cs.Predicate.Invocation.BuilderID != "https://bitvault.dev/dry-run" || !cs.Predicate.Metadata.ScanFinishedOn.Equal(vulnScan().FinishedOn) {
		t.Errorf("cosign reads %+v", cs)
	}
	for _, key := range []string{`"invocation":{`, `"builder.id":`, `"event_id":`, `"scanner":{`, `"db":{`, `"result":{"SchemaVersion":2`, `"metadata":{"scanStartedOn":"2026-01-02T03:04:00Z","scanFinishedOn":"2026-01-02T03:04:05Z"}`} {
		if !strings.Contains(string(st), key) {
			t.Errorf("statement lacks %s:\n%s", key, st)
		}
	}
	p, report, err := VulnOf(st)
	if err != nil {
		t.Fatal(err)
	}
	if string(report) != trivyDoc || p.Scanner.Version != "v0.74.0" {
		t.Errorf("VulnOf: report %s, predicate %+v", report, p)
	}
	for _, bad := range []VulnScan{{Report: []byte("[]"), ScannerURI: "x"}, {Report: []byte(trivyDoc)}} {
		if _, err := VulnStatement("reg/bitvaultd", d, bad); err == nil {
			t.Errorf("VulnStatement(%+v) accepted", bad)
		}
	}
	if _, _, err := VulnOf(mustStatement(t, d, SPDX, spdxDoc)); err == nil {
		t.Error("VulnOf accepted an SPDX statement")
	}
}

func mustStatement(t *testing.T, d v1.Hash, typ, doc string) []byte {
	t.Helper()
	st, err := SBOMStatement("reg/bitvaultd", d, typ, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestAttachSBOMAndVuln: the three predicates attach next to each other, verify by type, and
// attaching the same ones again adds nothing.
func TestAttachSBOMAndVuln(t *testing.T) {
	ctx := context.Background()
	f := newRegistry(t)
	eph, err := sign.NewEphemeral(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ref := f.Children[0]
	d := hash(t, ref)
	attachAll := func() {
		t.Helper()
		for _, st := range [][]byte{
			must(SBOMStatement(f.Repo.String(), d, SPDX, []byte(spdxDoc))),
			must(SBOMStatement(f.Repo.String(), d, CycloneDX, []byte(cdxDoc))),
			must(VulnStatement(f.Repo.String(), d, vulnScan())),
		} {
			if err := Attach(ctx, ref, st, eph); err != nil {
				t.Fatal(err)
			}
		}
	}
	attachAll()
	attachAll()
	if n := len(registrytest.AttestationLayers(t, ref)); n != 3 {
		t.Fatalf("%d attestation layers after attaching the same three twice, want 3", n)
	}
	for _, typ := range []string{SPDX, CycloneDX, Vuln} {
		sts, err := VerifyAttestations(ctx, ref, typ, eph.Policy())
		if err != nil || len(sts) != 1 {
			t.Fatalf("%s: %d statements, %v", typ, len(sts), err)
		}
	}
	if _, err := VerifyAttestations(ctx, f.Children[1], Vuln, eph.Policy()); err == nil {
		t.Error("the other platform manifest verified a vulnerability attestation it does not have")
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestCosignCLIVerifySBOMAndVuln runs `cosign verify-attestation --type spdxjson|cyclonedx|vuln`
// (cosign's own command code) on what Attach wrote.
func TestCosignCLIVerifySBOMAndVuln(t *testing.T) {
	t.Setenv("TUF_ROOT", t.TempDir())
	t.Setenv("SIGSTORE_CT_LOG_PUBLIC_KEY_FILE", filepath.Join(t.TempDir(), "unused.pem"))
	ctx := context.Background()
	f := newRegistry(t)
	dir := t.TempDir()
	eph, err := sign.NewEphemeral(dir)
	if err != nil {
		t.Fatal(err)
	}
	ref := f.Children[0]
	d := hash(t, ref)
	for _, st := range [][]byte{
		must(SBOMStatement(f.Repo.String(), d, SPDX, []byte(spdxDoc))),
		must(SBOMStatement(f.Repo.String(), d, CycloneDX, []byte(cdxDoc))),
		must(VulnStatement(f.Repo.String(), d, vulnScan())),
	} {
		if err := Attach(ctx, ref, st, eph); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		typ string
		ok  bool
	}{{"spdxjson", true}, {"spdx", true}, {"cyclonedx", true}, {"vuln", true}, {Vuln, true}, {"slsaprovenance1", false}} {
		t.Run(tc.typ, func(t *testing.T) {
			c := &verify.VerifyAttestationCommand{
				CheckClaims: true, PredicateType: tc.typ, CARoots: filepath.Join(dir, sign.RootFile),
				IgnoreSCT: true, IgnoreTlog: true, Offline: true,
			}
			c.CertIdentity, c.CertOidcIssuer = sign.DryRunIdentity, sign.DryRunIssuer
			c.RegistryOptions = options.RegistryOptions{}
			null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			stdout := os.Stdout
			os.Stdout = null
			err = c.Exec(ctx, []string{ref.String()})
			os.Stdout = stdout
			null.Close()
			if (err == nil) != tc.ok {
				t.Fatalf("cosign verify-attestation --type %s: ok=%v, want %v (%v)", tc.typ, err == nil, tc.ok, err)
			}
		})
	}
}
