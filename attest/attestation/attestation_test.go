package attestation

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	ctypes "github.com/sigstore/cosign/v2/pkg/types"

	"github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
)

// newRegistry starts an in-process registry holding a random two-manifest index, pushed by digest.
func newRegistry(t *testing.T) registrytest.Fixture {
	return registrytest.New(t, "bitvault/bitvaultd", 2)
}

func hash(t *testing.T, ref name.Digest) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newKeySigner(t *testing.T, dir string) sign.Signer {
	t.Helper()
	pass := func(bool) ([]byte, error) { return []byte("pw"), nil }
	kb, err := cosign.GenerateKeyPair(pass)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cosign.key"), kb.PrivateBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cosign.pub"), kb.PublicBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewKey(context.Background(), filepath.Join(dir, "cosign.key"), pass)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func provenance() map[string]any {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return Provenance{
		BuildType:          "https://bitvault.dev/bvrelease/v1",
		ExternalParameters: map[string]any{"version": "v1.2.3", "source": "git+https://github.com/bitvault/bitvault@refs/tags/v1.2.3"},
		InternalParameters: map[string]any{"goVersion": "go1.26.8"},
		ResolvedDependencies: []Resource{{
			URI: "git+https://github.com/bitvault/bitvault@refs/tags/v1.2.3", Digest: map[string]string{"gitCommit": strings.Repeat("a", 40)},
		}},
		BuilderID:    "https://bitvault.dev/bvrelease",
		InvocationID: "run-1",
		StartedOn:    start,
		FinishedOn:   start.Add(time.Minute),
	}.Predicate()
}

func cyclonedx() map[string]any {
	return map[string]any{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": []any{}}
}

func TestProvenancePredicateShape(t *testing.T) {
	b, err := json.Marshal(provenance())
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		BuildDefinition struct {
			BuildType            string         `json:"buildType"`
			ExternalParameters   map[string]any `json:"externalParameters"`
			InternalParameters   map[string]any `json:"internalParameters"`
			ResolvedDependencies []struct {
				URI    string            `json:"uri"`
				Digest map[string]string `json:"digest"`
			} `json:"resolvedDependencies"`
		} `json:"buildDefinition"`
		RunDetails struct {
			Builder struct {
				ID string `json:"id"`
			} `json:"builder"`
			Metadata struct {
				InvocationID string `json:"invocationId"`
				StartedOn    string `json:"startedOn"`
				FinishedOn   string `json:"finishedOn"`
			} `json:"metadata"`
		} `json:"runDetails"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	bd, rd := got.BuildDefinition, got.RunDetails
	if bd.BuildType == "" || bd.ExternalParameters["version"] != "v1.2.3" || bd.InternalParameters["goVersion"] != "go1.26.8" ||
		len(bd.ResolvedDependencies) != 1 || bd.ResolvedDependencies[0].Digest["gitCommit"] == "" ||
		rd.Builder.ID != "https://bitvault.dev/bvrelease" || rd.Metadata.InvocationID != "run-1" ||
		rd.Metadata.StartedOn != "2026-01-02T03:04:05Z" || rd.Metadata.FinishedOn != "2026-01-02T03:05:05Z" {
		t.Fatalf("provenance predicate: %s", b)
	}
	// externalParameters is required by SLSA even when empty.
	b, _ = json.Marshal(Provenance{BuildType: "x", BuilderID: "y"}.Predicate())
	if !strings.Contains(string(b), `"externalParameters":{}`) || strings.Contains(string(b), "metadata") {
		t.Fatalf("minimal provenance: %s", b)
	}
}

func TestStatement(t *testing.T) {
	h := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	b, err := Statement("registry.example/bitvault/bitvaultd", h, SLSAProvenanceV1, provenance())
	if err != nil {
		t.Fatal(err)
	}
	st, err := parseStatement(b)
	if err != nil {
		t.Fatal(err)
	}
	if st.Type != StatementType || st.PredicateType != SLSAProvenanceV1 || !st.names(h) || st.Subject[0].Name != "registry.example/bitvault/bitvaultd" {
		t.Fatalf("statement: %s", b)
	}
	for _, tc := range []struct {
		name, subj string
		h          v1.Hash
		pt         string
		pred       any
	}{
		{"no subject name", "", h, SLSAProvenanceV1, nil},
		{"sha512", "x", v1.Hash{Algorithm: "sha512", Hex: strings.Repeat("ab", 64)}, SLSAProvenanceV1, nil},
		{"no predicate type", "x", h, "", nil},
		{"predicate not an object", "x", h, SLSAProvenanceV1, []int{1}},
	} {
		if _, err := Statement(tc.subj, tc.h, tc.pt, tc.pred); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestAttachVerify(t *testing.T) {
	ctx := context.Background()
	f := newRegistry(t)
	eph, err := sign.NewEphemeral(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := newKeySigner(t, t.TempDir())
	otherKey := newKeySigner(t, t.TempDir())
	wrongID := eph.Policy()
	wrongID.Identity = "https://github.com/bitvault/bitvault/.github/workflows/release.yml@refs/tags/v1.0.0"

	targets := map[string]name.Digest{"index": f.Index, "platform": f.Children[0]}
	for tn, ref := range targets {
		for _, pt := range []struct {
			typ  string
			pred any
		}{{SLSAProvenanceV1, provenance()}, {CycloneDX, cyclonedx()}} {
			for _, s := range []sign.Signer{eph, key} {
				st, err := Statement(f.Repo.String(), hash(t, ref), pt.typ, pt.pred)
				if err != nil {
					t.Fatal(err)
				}
				if err := Attach(ctx, ref, st, s); err != nil {
					t.Fatalf("%s %s %s: %v", tn, pt.typ, s.Identity(), err)
				}
			}
		}
	}

	for _, tc := range []struct {
		name    string
		ref     name.Digest
		typ     string
		policy  sign.Policy
		wantErr error // nil: must pass
	}{
		{"index provenance dry-run", f.Index, SLSAProvenanceV1, eph.Policy(), nil},
		{"index cyclonedx dry-run", f.Index, CycloneDX, eph.Policy(), nil},
		{"platform provenance dry-run", f.Children[0], SLSAProvenanceV1, eph.Policy(), nil},
		{"platform cyclonedx key", f.Children[0], CycloneDX, key.Policy(), nil},
		{"index provenance key", f.Index, SLSAProvenanceV1, key.Policy(), nil},
		{"wrong predicate type", f.Index, "https://spdx.dev/Document", eph.Policy(), ErrNoAttestation},
		{"wrong identity", f.Index, SLSAProvenanceV1, wrongID, sign.ErrWrongIdentity},
		{"other key", f.Index, SLSAProvenanceV1, otherKey.Policy(), ErrNoAttestation},
		{"unattested platform", f.Children[1], SLSAProvenanceV1, eph.Policy(), ErrNoAttestation},
		{"no tlog flag", f.Index, SLSAProvenanceV1, sign.Policy{PublicKey: key.Policy().PublicKey}, sign.ErrPolicy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := VerifyAttestations(ctx, tc.ref, tc.typ, tc.policy)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				t.Logf("%v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("%d statements, want 1", len(got))
			}
			st, err := parseStatement(got[0])
			if err != nil {
				t.Fatal(err)
			}
			if st.PredicateType != tc.typ || !st.names(hash(t, tc.ref)) || len(st.Subject) != 1 {
				t.Fatalf("statement %s", got[0])
			}
		})
	}

	// Storage is cosign's: DSSE layers with predicateType and (dry-run) certificate annotations.
	layers := registrytest.AttestationLayers(t, f.Index)
	if len(layers) != 4 {
		t.Fatalf("%d attestation layers on the index, want 4", len(layers))
	}
	certs := 0
	for _, l := range layers {
		if l.MediaType != ctypes.DssePayloadType {
			t.Errorf("layer media type %s", l.MediaType)
		}
		if pt := l.Annotations[PredicateTypeAnnotation]; pt != SLSAProvenanceV1 && pt != CycloneDX {
			t.Errorf("predicateType annotation %q", pt)
		}
		if l.Annotations[static.CertificateAnnotationKey] != "" && l.Annotations[static.ChainAnnotationKey] != "" {
			certs++
		}
	}
	if certs != 2 {
		t.Errorf("%d layers with certificate+chain annotations, want 2", certs)
	}
}

func TestIdempotent(t *testing.T) {
	ctx := context.Background()
	f := newRegistry(t)
	eph, err := sign.NewEphemeral(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := newKeySigner(t, t.TempDir())
	st, err := Statement(f.Repo.String(), hash(t, f.Index), SLSAProvenanceV1, provenance())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		s    sign.Signer
		want int
	}{
		{"first", eph, 1}, {"same again", eph, 1}, {"other signer", key, 2}, {"other signer again", key, 2},
	} {
		if err := Attach(ctx, f.Index, st, tc.s); err != nil {
			t.Fatal(err)
		}
		if n := len(registrytest.AttestationLayers(t, f.Index)); n != tc.want {
			t.Fatalf("%s: %d layers, want %d", tc.name, n, tc.want)
		}
	}
	st2, _ := Statement(f.Repo.String(), hash(t, f.Index), SLSAProvenanceV1, Provenance{BuildType: "other", BuilderID: "b"}.Predicate())
	if err := Attach(ctx, f.Index, st2, eph); err != nil {
		t.Fatal(err)
	}
	if n := len(registrytest.AttestationLayers(t, f.Index)); n != 3 {
		t.Fatalf("different statement: %d layers, want 3", n)
	}
}

func TestSubjectMismatch(t *testing.T) {
	ctx := context.Background()
	f := newRegistry(t)
	eph, err := sign.NewEphemeral(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// A statement for the first platform manifest, attached to the index.
	st, err := Statement(f.Repo.String(), hash(t, f.Children[0]), SLSAProvenanceV1, provenance())
	if err != nil {
		t.Fatal(err)
	}
	if err := Attach(ctx, f.Index, st, eph); !errors.Is(err, sign.ErrDigestMismatch) {
		t.Fatalf("Attach of a statement for another digest: %v, want ErrDigestMismatch", err)
	}
	if err := attach(ctx, f.Index, st, eph, false); err != nil {
		t.Fatal(err)
	}
	_, err = VerifyAttestations(ctx, f.Index, SLSAProvenanceV1, eph.Policy())
	if !errors.Is(err, sign.ErrDigestMismatch) || !strings.Contains(err.Error(), f.Children[0].DigestStr()) || !strings.Contains(err.Error(), f.Index.DigestStr()) {
		t.Fatalf("err = %v, want ErrDigestMismatch naming both digests", err)
	}
	t.Log(err)
}
