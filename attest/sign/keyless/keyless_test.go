package keyless_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/attest/sign/keyless"
	"github.com/bitvault/bitvault/internal/retry"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
	"github.com/bitvault/bitvault/internal/testsupport/sigstoretest"
)

var fast = retry.Policy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}

var release = sigstoretest.Workflow{ // the release workflow on a version tag
	Repository: "bitvault/bitvault", Ref: "refs/tags/v1.2.3", SHA: strings.Repeat("ab", 20),
	WorkflowPath: ".github/workflows/release.yml", EventName: "push", RunID: "4242",
}

func config(ss *sigstoretest.Sigstore) keyless.Config {
	return keyless.Config{FulcioURL: ss.FulcioURL, RekorURL: ss.RekorURL, TrustedRoot: ss.TrustedRoot(), IgnoreSCT: true, Retry: fast}
}

func newSigner(t *testing.T, ss *sigstoretest.Sigstore) *keyless.Signer {
	t.Helper()
	ss.Env(t)
	s, err := keyless.FromEnv(context.Background(), config(ss))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func policy(ss *sigstoretest.Sigstore) sign.Policy {
	return sign.Policy{TrustedRoot: ss.TrustedRoot(), Identity: release.Identity(), Issuer: sigstoretest.GitHubIssuer, IgnoreSCT: true}
}

// sigTagExists reports whether ref has a cosign signature manifest at all.
func sigTagExists(t *testing.T, ref name.Digest) bool {
	t.Helper()
	tag, err := ociremote.SignatureTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	_, err = remote.Head(tag)
	return err == nil
}

// TestSignVerify signs the index and every platform manifest keylessly and verifies them as
// admission does: trusted root, workflow identity, GitHub issuer, Rekor entry checked.
func TestSignVerify(t *testing.T) {
	ctx := context.Background()
	ss := sigstoretest.New(t, release)
	f := registrytest.New(t, "bitvault/bitvaultd", 2)
	s := newSigner(t, ss)
	if got, want := s.Policy().Identity, release.Identity(); got != want {
		t.Fatalf("certificate identity %q, want %q", got, want)
	}
	refs := append([]name.Digest{f.Index}, f.Children...)
	for _, ref := range refs {
		if err := sign.SignImage(ctx, ref, s); err != nil {
			t.Fatal(err)
		}
	}
	if got := ss.Entries(); got != len(refs) {
		t.Errorf("Rekor holds %d entries, want one per signature (%d)", got, len(refs))
	}
	if got := ss.Requests(sigstoretest.Fulcio); got != 1 {
		t.Errorf("Fulcio asked %d times, want 1 (one certificate per release)", got)
	}
	for _, ref := range refs {
		vs, err := sign.Verify(ctx, ref, policy(ss))
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if vs[0].Identity != release.Identity() || vs[0].Issuer != sigstoretest.GitHubIssuer {
			t.Errorf("verified %+v", vs[0])
		}
	}
	// The signer's own policy is the same check.
	if _, err := sign.Verify(ctx, f.Index, s.Policy()); err != nil {
		t.Fatal(err)
	}
	// Signing again with the same signer adds nothing and logs nothing.
	if err := sign.SignImage(ctx, f.Index, s); err != nil {
		t.Fatal(err)
	}
	if got := ss.Entries(); got != len(refs) {
		t.Errorf("re-signing logged again: %d entries", got)
	}
}

// TestVerifyRejects: what admission must refuse, each for the reason it names.
func TestVerifyRejects(t *testing.T) {
	ctx := context.Background()
	ss := sigstoretest.New(t, release)
	other := sigstoretest.New(t, release) // another CA and log, same workflow
	f := registrytest.New(t, "bitvault/bitvaultd", 1)
	if err := sign.SignImage(ctx, f.Index, newSigner(t, ss)); err != nil {
		t.Fatal(err)
	}
	// An image signed by the other CA's Fulcio and logged in its Rekor.
	foreign := registrytest.Push(t, f.Repo, 1)
	if err := sign.SignImage(ctx, foreign.Index, newSigner(t, other)); err != nil {
		t.Fatal(err)
	}
	// An image signed by the right CA without a transparency log entry.
	unlogged := registrytest.Push(t, f.Repo, 1)
	ss.Env(t)
	s := newSigner(t, ss)
	if err := sign.SignImage(ctx, unlogged.Index, unloggedSigner{s}); err != nil {
		t.Fatal(err)
	}

	p := policy(ss)
	with := func(edit func(*sign.Policy)) sign.Policy { q := p; edit(&q); return q }
	for _, tc := range []struct {
		name string
		ref  name.Digest
		p    sign.Policy
		want error
	}{
		{"wrong workflow", f.Index, with(func(p *sign.Policy) {
			p.Identity = "https://github.com/bitvault/bitvault/.github/workflows/ci.yml@refs/tags/v1.2.3"
		}), sign.ErrWrongIdentity},
		{"wrong ref", f.Index, with(func(p *sign.Policy) {
			p.Identity = ""
			p.IdentityRegexp = `^https://github\.com/bitvault/bitvault/\.github/workflows/release\.yml@refs/tags/v9\.`
		}), sign.ErrWrongIdentity},
		{"wrong repository", f.Index, with(func(p *sign.Policy) {
			p.Identity = "https://github.com/evil/bitvault/.github/workflows/release.yml@refs/tags/v1.2.3"
		}), sign.ErrWrongIdentity},
		{"wrong issuer", f.Index, with(func(p *sign.Policy) { p.Issuer = "https://accounts.google.com" }), sign.ErrWrongIssuer},
		{"untrusted CA", foreign.Index, p, sign.ErrUntrustedCA},
		{"no Rekor entry", unlogged.Index, p, sign.ErrNoTlogEntry},
		{"unsigned", f.Children[0], p, sign.ErrNoSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sign.Verify(ctx, tc.ref, tc.p)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			t.Logf("%v", err)
		})
	}
	// The right identity under the right root still passes.
	if _, err := sign.Verify(ctx, f.Index, p); err != nil {
		t.Fatal(err)
	}
}

// unloggedSigner hides the signer's transparency log: signatures carry the Fulcio
// certificate but no Rekor bundle.
type unloggedSigner struct{ s *keyless.Signer }

func (u unloggedSigner) Sign(ctx context.Context, p []byte) (*sign.Signature, error) {
	return u.s.Sign(ctx, p)
}
func (u unloggedSigner) Identity() string    { return u.s.Identity() }
func (u unloggedSigner) Policy() sign.Policy { return u.s.Policy() }

// TestRekorBundleTampered: a signature whose Rekor bundle was edited (another log index, so
// the signed entry timestamp no longer matches) is refused as a transparency-log failure.
func TestRekorBundleTampered(t *testing.T) {
	ctx := context.Background()
	ss := sigstoretest.New(t, release)
	f := registrytest.New(t, "bitvault/bitvaultd", 1)
	if err := sign.SignImage(ctx, f.Index, newSigner(t, ss)); err != nil {
		t.Fatal(err)
	}
	tag, err := ociremote.SignatureTag(f.Index)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(tag)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	const key = "dev.sigstore.cosign/bundle"
	var b map[string]any
	if err := json.Unmarshal([]byte(m.Layers[0].Annotations[key]), &b); err != nil {
		t.Fatalf("bundle annotation: %v", err)
	}
	b["Payload"].(map[string]any)["logIndex"] = 99
	edited, _ := json.Marshal(b)
	m.Layers[0].Annotations[key] = string(edited)
	raw, _ := json.Marshal(m)
	if err := remote.Put(tag, rawManifest{raw, desc.MediaType}); err != nil {
		t.Fatal(err)
	}
	_, err = sign.Verify(ctx, f.Index, policy(ss))
	if !errors.Is(err, sign.ErrTlog) {
		t.Fatalf("err = %v, want %v", err, sign.ErrTlog)
	}
	t.Log(err)
}

type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

// TestAttestKeyless: attestations are logged (a dsse entry) and verify under the trusted
// root that holds the log, not under another.
func TestAttestKeyless(t *testing.T) {
	ctx := context.Background()
	ss := sigstoretest.New(t, release)
	f := registrytest.New(t, "bitvault/bitvaultd", 1)
	s := newSigner(t, ss)
	h, err := remote.Head(f.Index)
	if err != nil {
		t.Fatal(err)
	}
	stmt, err := attestation.Statement(f.Repo.String(), h.Digest, attestation.SLSAProvenanceV1, map[string]any{"buildDefinition": map[string]any{"buildType": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := attestation.Attach(ctx, f.Index, stmt, s); err != nil {
		t.Fatal(err)
	}
	if got := ss.Entries(); got != 1 {
		t.Fatalf("Rekor entries %d, want 1 (a dsse entry)", got)
	}
	got, err := attestation.VerifyAttestations(ctx, f.Index, attestation.SLSAProvenanceV1, policy(ss))
	if err != nil || len(got) != 1 {
		t.Fatalf("verify attestation: %d statements, %v", len(got), err)
	}
	other := sigstoretest.New(t, release)
	q := policy(ss)
	q.TrustedRoot = other.TrustedRoot()
	if _, err := attestation.VerifyAttestations(ctx, f.Index, attestation.SLSAProvenanceV1, q); err == nil {
		t.Fatal("attestation verified under another trusted root")
	}
}

// TestServiceFailures: the OIDC token, Fulcio and Rekor failing, transiently and for good.
func TestServiceFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("no id-token permission", func(t *testing.T) {
		t.Setenv(keyless.EnvRequestURL, "")
		t.Setenv(keyless.EnvRequestToken, "")
		_, err := keyless.FromEnv(ctx, keyless.Config{})
		if !errors.Is(err, keyless.ErrNoIDToken) || !strings.Contains(err.Error(), "id-token: write") {
			t.Fatalf("err = %v, want one naming id-token: write", err)
		}
	})
	t.Run("token request refused", func(t *testing.T) {
		ss := sigstoretest.New(t, release)
		ss.Env(t)
		t.Setenv(keyless.EnvRequestToken, "not-the-runtime-token")
		_, err := keyless.FromEnv(ctx, config(ss))
		if !errors.Is(err, keyless.ErrNoIDToken) || !strings.Contains(err.Error(), "id-token: write") {
			t.Fatalf("err = %v", err)
		}
		if n := ss.Requests(sigstoretest.Token); n != 1 {
			t.Errorf("a refusal was retried: %d requests", n)
		}
	})
	for _, svc := range []sigstoretest.Service{sigstoretest.Token, sigstoretest.Fulcio} {
		t.Run(string(svc)+" recovers after retries", func(t *testing.T) {
			ss := sigstoretest.New(t, release)
			ss.Fail(svc, http.StatusServiceUnavailable, http.StatusBadGateway)
			newSigner(t, ss)
			if n := ss.Requests(svc); n != 3 {
				t.Errorf("%s requests %d, want 3 (two failures, one success)", svc, n)
			}
		})
		t.Run(string(svc)+" down", func(t *testing.T) {
			ss := sigstoretest.New(t, release)
			ss.Fail(svc, 503, 503, 503, 503)
			ss.Env(t)
			_, err := keyless.FromEnv(ctx, config(ss))
			if err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts") {
				t.Fatalf("err = %v", err)
			}
			t.Log(err)
		})
	}
	t.Run("Fulcio refuses", func(t *testing.T) {
		ss := sigstoretest.New(t, release)
		ss.Fail(sigstoretest.Fulcio, http.StatusUnauthorized)
		ss.Env(t)
		if _, err := keyless.FromEnv(ctx, config(ss)); err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("err = %v", err)
		}
		if n := ss.Requests(sigstoretest.Fulcio); n != 1 {
			t.Errorf("a 401 was retried: %d requests", n)
		}
	})
	t.Run("Rekor recovers", func(t *testing.T) {
		ss := sigstoretest.New(t, release)
		f := registrytest.New(t, "bitvault/bitvaultd", 1)
		s := newSigner(t, ss)
		ss.Fail(sigstoretest.Rekor, 503)
		if err := sign.SignImage(ctx, f.Index, s); err != nil {
			t.Fatal(err)
		}
		if _, err := sign.Verify(ctx, f.Index, policy(ss)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("Rekor down: nothing is stored as signed", func(t *testing.T) {
		ss := sigstoretest.New(t, release)
		f := registrytest.New(t, "bitvault/bitvaultd", 1)
		s := newSigner(t, ss)
		ss.Fail(sigstoretest.Rekor, 503, 503, 503)
		err := sign.SignImage(ctx, f.Index, s)
		if err == nil || !strings.Contains(err.Error(), "Rekor upload") || !strings.Contains(err.Error(), "gave up") {
			t.Fatalf("err = %v", err)
		}
		if sigTagExists(t, f.Index) {
			t.Fatal("a signature was written although Rekor never logged it")
		}
	})
	t.Run("Rekor not in the trusted root", func(t *testing.T) {
		ss := sigstoretest.New(t, release)
		other := sigstoretest.New(t, release)
		f := registrytest.New(t, "bitvault/bitvaultd", 1)
		ss.Env(t)
		c := config(ss)
		c.RekorURL = other.RekorURL
		s, err := keyless.FromEnv(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		err = sign.SignImage(ctx, f.Index, s)
		if err == nil || !strings.Contains(err.Error(), "trusted root") {
			t.Fatalf("err = %v", err)
		}
		if sigTagExists(t, f.Index) {
			t.Fatal("signature written")
		}
	})
	t.Run("Fulcio not in the trusted root", func(t *testing.T) {
		ss := sigstoretest.New(t, release)
		other := sigstoretest.New(t, release)
		ss.Env(t)
		c := config(ss)
		c.FulcioURL = other.FulcioURL
		// other's Fulcio checks tokens from its own issuer only: serve ours from other.
		other.Env(t)
		if _, err := keyless.FromEnv(ctx, c); err == nil || !strings.Contains(err.Error(), "does not chain to the trusted root") {
			t.Fatalf("err = %v", err)
		}
	})
}
