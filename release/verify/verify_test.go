package verify_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bitvault/bitvault/attest/attestation"
	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/attest"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/sign"
	"github.com/bitvault/bitvault/release/verify"
)

// TestVerifyStage: a signed image without provenance, then with provenance
// from the wrong builder, is refused; with the right one it passes.
func TestVerifyStage(t *testing.T) {
	ctx := context.Background()
	fx := registrytest.New(t, "bv/one", 1)
	ref := fx.Index
	d, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	r := release.New(&config.Config{Project: "bv", Artifacts: []config.Artifact{{Name: "one"}}}, t.TempDir(), release.Options{DryRun: true})
	s, err := attestsign.NewEphemeral(filepath.Join(r.Dist, "sign"))
	if err != nil {
		t.Fatal(err)
	}
	if err := attestsign.SignImage(ctx, ref, s); err != nil {
		t.Fatal(err)
	}
	policy, _ := json.Marshal(s.Policy())
	if err := os.WriteFile(sign.PolicyPath(r), policy, 0o644); err != nil {
		t.Fatal(err)
	}
	ar := r.Artifact("one")
	ar.Signatures = []release.SignatureRecord{{Platform: "index", Reference: ref.String()}}

	attach := func(builder string) {
		p := attestation.Provenance{BuildType: attest.BuildType, BuilderID: builder, InvocationID: "test", StartedOn: time.Unix(1, 0), FinishedOn: time.Unix(2, 0)}
		stmt, err := attestation.Statement(ref.Context().String(), v1.Hash{Algorithm: "sha256", Hex: d.Hex}, attestation.SLSAProvenanceV1, p.Predicate())
		if err != nil {
			t.Fatal(err)
		}
		if err := attestation.Attach(ctx, ref, stmt, s); err != nil {
			t.Fatal(err)
		}
		ar.Signatures[0].Provenance = true
	}
	steps := []struct {
		name string
		edit func()
		want string // "" = passes
	}{
		{"no provenance", func() {}, "no SLSA provenance attached"},
		{"wrong builder", func() { attach("https://example.invalid/other-builder") }, "builder id"},
		{"right builder", func() { attach(attest.BuilderID()) }, ""},
	}
	for _, st := range steps {
		st.edit()
		err := verify.Stage{}.Run(ctx, r)
		switch {
		case st.want == "" && err != nil:
			t.Fatalf("%s: %v", st.name, err)
		case st.want != "" && (err == nil || !strings.Contains(err.Error(), st.want) || !strings.Contains(err.Error(), "not recorded")):
			t.Fatalf("%s: err = %v, want %q and a refusal to record", st.name, err, st.want)
		}
	}
	if sr := r.Artifact("one").Signatures[0]; !sr.Verified || !sr.ProvenanceVerified || sr.Identity != attestsign.DryRunIdentity {
		t.Errorf("record after a passing verify: %+v", sr)
	}
}
