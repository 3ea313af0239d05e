package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/bitvault/bitvault/attest/admission"
	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/testsupport/cosigntest"
	"github.com/bitvault/bitvault/internal/testsupport/sigstoretest"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/pipeline"
	"github.com/bitvault/bitvault/release/publish"
)

// ciWorkflow is the release workflow on a version tag, as bvrelease.yaml's signing identity
// expects it.
var ciWorkflow = sigstoretest.Workflow{
	Repository: "bitvault/bitvault", Ref: "refs/tags/v1.2.3", SHA: strings.Repeat("c0", 20),
	WorkflowPath: ".github/workflows/release.yml", EventName: "push", RunID: "777",
}

// githubActions sets the environment a GitHub Actions release job has (id-token: write
// included) for w, with the token service, Fulcio and Rekor of ss; it returns the trusted
// root file naming them.
func githubActions(t *testing.T, ss *sigstoretest.Sigstore, w sigstoretest.Workflow) string {
	t.Helper()
	ss.Env(t)
	for k, v := range map[string]string{
		"GITHUB_ACTIONS": "true", "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": w.Repository,
		"GITHUB_REF": w.Ref, "GITHUB_SHA": w.SHA, "GITHUB_RUN_ID": w.RunID, "GITHUB_RUN_ATTEMPT": "1",
		"GITHUB_WORKFLOW_REF": w.Repository + "/" + w.WorkflowPath + "@" + w.Ref,
	} {
		t.Setenv(k, v)
	}
	p := filepath.Join(t.TempDir(), "trusted_root.json")
	if err := os.WriteFile(p, ss.TrustedRoot(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKeylessRelease is the release as GitHub Actions runs it — not a dry-run: the job's OIDC
// token, a Fulcio certificate for the release workflow, every signature and attestation in
// Rekor, verification against the trusted root with bvrelease.yaml's identity — with the
// Sigstore services of sigstoretest and a registry on 127.0.0.1.
func TestKeylessRelease(t *testing.T) {
	ctx := context.Background()
	host, stop, err := publish.StartEmbeddedRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ss := sigstoretest.New(t, ciWorkflow)
	trusted := githubActions(t, ss, ciWorkflow)
	o := release.Options{Registry: host + "/ci", AllowDirty: true, VulnDB: vulnDB(t, xtextAdvisory),
		FulcioURL: ss.FulcioURL, RekorURL: ss.RekorURL, TrustedRoot: trusted}
	if err := pipeline.Run(ctx, newRelease(t, o), pipeline.Release()...); err != nil {
		t.Fatal(err)
	}
	rec := readRecord(t)
	signatures := 0
	for _, a := range rec.Artifacts {
		for _, s := range a.Signatures {
			signatures++
			if !s.Verified || s.Identity != ciWorkflow.Identity() || s.Issuer != sigstoretest.GitHubIssuer || !s.ProvenanceVerified {
				t.Errorf("%s %s: %+v, want verified, signed by %s", a.Name, s.Platform, s, ciWorkflow.Identity())
			}
		}
	}
	if signatures != 9 {
		t.Errorf("%d signatures recorded, want 9 (3 images × index + 2 platforms)", signatures)
	}
	if n := ss.Entries(); n < 2*signatures {
		t.Errorf("Rekor holds %d entries, want at least a signature and a provenance per manifest (%d)", n, 2*signatures)
	}

	// What admission and operators run, on the released images: `bvrelease verify`'s checks
	// with bvrelease.yaml's identity, and upstream cosign with the trusted root.
	cfg := repoConfig(t)
	tr, err := os.ReadFile(trusted)
	if err != nil {
		t.Fatal(err)
	}
	expect := admission.Expect{
		Policy:  attestsign.Policy{TrustedRoot: tr, IdentityRegexp: cfg.Signing.IdentityRegexp, Issuer: cfg.Signing.Issuer, IgnoreSCT: true},
		Builder: admission.Builder{Repository: ciWorkflow.Repository, Ref: ciWorkflow.Ref},
	}
	bin := cosigntest.Binary(t)
	for _, a := range rec.Artifacts {
		ref, err := name.NewDigest(a.Published.Repository + "@" + a.Digest)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := admission.Image(ctx, ref, expect)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Failed() != 0 || len(rep.Checks) != 14 { // index 4, each platform 5
			t.Errorf("%s: %d of %d checks failed: %+v", a.Name, rep.Failed(), len(rep.Checks), rep.Checks)
		}
		code, stdout, stderr := cosigntest.Run(t, bin, "verify", "--trusted-root", trusted, "--certificate-identity-regexp", cfg.Signing.IdentityRegexp,
			"--certificate-oidc-issuer", cfg.Signing.Issuer, "--insecure-ignore-sct", "--offline", ref.String())
		if code != 0 || !strings.Contains(stdout, a.Digest) {
			t.Errorf("cosign verify %s: exit %d\n%s\n%s", ref, code, stdout, stderr)
		}
	}

	t.Run("wrong workflow is refused before recording", func(t *testing.T) {
		// The same release from another workflow: signed and logged fine, but not the
		// identity bvrelease.yaml trusts, so verify refuses and nothing is recorded.
		wrong := ciWorkflow
		wrong.WorkflowPath = ".github/workflows/ci.yml"
		ss.SetWorkflow(wrong)
		defer ss.SetWorkflow(ciWorkflow)
		o := o
		o.Registry = host + "/wrong"
		err := pipeline.Run(ctx, newRelease(t, o), pipeline.Release()...)
		if err == nil || !strings.Contains(err.Error(), "wrong identity") || !strings.Contains(err.Error(), "not recorded") {
			t.Fatalf("err = %v, want verify to refuse the identity", err)
		}
	})
	t.Run("no id-token permission", func(t *testing.T) {
		t.Setenv("ACTIONS_ID_TOKEN_REQUEST_URL", "")
		o := o
		o.Registry = host + "/noperm"
		err := pipeline.Run(ctx, newRelease(t, o), pipeline.Release()...)
		if err == nil || !strings.Contains(err.Error(), "id-token: write") {
			t.Fatalf("err = %v, want one naming id-token: write", err)
		}
	})
}
