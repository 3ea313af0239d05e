package sign

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"

	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
)

// newRegistry starts an in-process registry holding a random two-manifest index, pushed by digest.
// newRegistry starts an in-process registry holding a random two-manifest index, pushed by digest.
func newRegistry(t *testing.T) registrytest.Fixture {
	return registrytest.New(t, "bitvault/bitvaultd", 2)
}

func pushRandomImage(t *testing.T, repo name.Repository) name.Digest {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := img.Digest()
	d := repo.Digest(h.String())
	if err := remote.Write(d, img); err != nil {
		t.Fatal(err)
	}
	return d
}

func dryRunPolicy(t *testing.T, dir string) Policy {
	t.Helper()
	root, err := os.ReadFile(filepath.Join(dir, RootFile))
	if err != nil {
		t.Fatal(err)
	}
	return Policy{Roots: root, Identity: DryRunIdentity, Issuer: DryRunIssuer, IgnoreTlog: true}
}

func TestEphemeralSignVerifyEachManifest(t *testing.T) {
	ctx := context.Background()
	f := newRegistry(t)
	dir := t.TempDir()
	s, err := NewEphemeral(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := dryRunPolicy(t, dir)

	targets := map[string]name.Digest{"index": f.Index}
	for i, c := range f.Children {
		targets["platform-"+string(rune('0'+i))] = c
	}
	// Sign and verify every manifest separately; before it is signed, each must fail.
	for n, ref := range targets {
		t.Run(n, func(t *testing.T) {
			if _, err := Verify(ctx, ref, p); !errors.Is(err, ErrNoSignature) {
				t.Fatalf("before signing: want ErrNoSignature, got %v", err)
			}
			if err := SignImage(ctx, ref, s); err != nil {
				t.Fatal(err)
			}
			got, err := Verify(ctx, ref, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Identity != DryRunIdentity || got[0].Issuer != DryRunIssuer {
				t.Fatalf("verified = %+v", got)
			}
			// The regexp form of the identity passes too.
			rp := p
			rp.Identity, rp.IdentityRegexp = "", `^https://bitvault\.dev/`
			if _, err := Verify(ctx, ref, rp); err != nil {
				t.Fatalf("identity regexp: %v", err)
			}
		})
	}
}

func TestVerifyFailures(t *testing.T) {
	ctx := context.Background()
	f := newRegistry(t)
	dir := t.TempDir()
	s, err := NewEphemeral(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := SignImage(ctx, f.Index, s); err != nil {
		t.Fatal(err)
	}
	good := dryRunPolicy(t, dir)
	otherDir := t.TempDir()
	if _, err := NewEphemeral(otherDir); err != nil {
		t.Fatal(err)
	}
	otherRoot, _ := os.ReadFile(filepath.Join(otherDir, RootFile))

	for _, tc := range []struct {
		name    string
		ref     name.Digest
		mod     func(*Policy)
		want    error
		message []string
	}{
		{"wrong identity", f.Index, func(p *Policy) {
			p.Identity = "https://github.com/bitvault/bitvault/.github/workflows/release.yml@refs/tags/v1.2.3"
		},
			ErrWrongIdentity, []string{"wrong identity", DryRunIdentity, "release.yml"}},
		{"wrong identity regexp", f.Index, func(p *Policy) { p.Identity, p.IdentityRegexp = "", `^https://github\.com/` },
			ErrWrongIdentity, []string{"wrong identity", `matching "^https://github\\.com/"`}},
		{"wrong issuer", f.Index, func(p *Policy) { p.Issuer = "https://token.actions.githubusercontent.com" },
			ErrWrongIssuer, []string{"wrong issuer", `"dry-run"`, "token.actions"}},
		{"another CA", f.Index, func(p *Policy) { p.Roots = otherRoot },
			ErrUntrustedCA, []string{"untrusted CA", "bitvault dry-run intermediate"}},
		{"unsigned platform manifest", f.Children[0], nil, ErrNoSignature, []string{"no signature"}},
		{"no tlog opt-out", f.Index, func(p *Policy) { p.IgnoreTlog = false }, ErrPolicy, []string{"no trusted root", "--trusted-root"}},
		{"tlog ignored with a trusted root", f.Index, func(p *Policy) { p.TrustedRoot = []byte("{}") }, ErrPolicy, []string{"IgnoreTlog with a trusted root"}},
		{"identity missing", f.Index, func(p *Policy) { p.Identity = "" }, ErrPolicy, []string{"Identity"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := good
			if tc.mod != nil {
				tc.mod(&p)
			}
			_, err := Verify(ctx, tc.ref, p)
			if !errors.Is(err, tc.want) {
				t.Fatalf("want %v, got %v", tc.want, err)
			}
			for _, m := range tc.message {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
			t.Logf("%v", err)
		})
	}
}

// rawManifest lets a test PUT a hand-edited manifest.
type rawManifest struct {
	b  []byte
	mt types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.b, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mt, nil }

func editSigManifest(t *testing.T, ref name.Digest, edit func(m *v1.Manifest)) {
	t.Helper()
	tag, _ := ociremote.SignatureTag(ref)
	desc, err := remote.Get(tag)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	edit(&m)
	b, _ := json.Marshal(&m)
	if err := remote.Put(tag, rawManifest{b, desc.MediaType}); err != nil {
		t.Fatal(err)
	}
}

func TestTampered(t *testing.T) {
	ctx := context.Background()
	f := newRegistry(t)
	dir := t.TempDir()
	s, err := NewEphemeral(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := dryRunPolicy(t, dir)
	for _, ref := range append([]name.Digest{f.Index}, f.Children...) {
		if err := SignImage(ctx, ref, s); err != nil {
			t.Fatal(err)
		}
	}
	other := pushRandomImage(t, f.Repo)
	otherSig := mustSign(t, s, other) // a genuine signature, for another digest

	t.Run("signature annotation", func(t *testing.T) {
		editSigManifest(t, f.Index, func(m *v1.Manifest) {
			// A valid signature by the same key over another payload.
			m.Layers[0].Annotations["dev.cosignproject.cosign/signature"] = otherSig
		})
		_, err := Verify(ctx, f.Index, p)
		if !errors.Is(err, ErrTampered) {
			t.Fatalf("want ErrTampered, got %v", err)
		}
		t.Log(err)
	})
	t.Run("payload", func(t *testing.T) {
		// Point the layer at another payload blob (the other image's, already in the registry
		// once "other" is signed), keeping this signature.
		if err := SignImage(ctx, other, s); err != nil {
			t.Fatal(err)
		}
		var otherLayer v1.Descriptor
		otag, _ := ociremote.SignatureTag(other)
		od, _ := remote.Get(otag)
		var om v1.Manifest
		_ = json.Unmarshal(od.Manifest, &om)
		otherLayer = om.Layers[0]
		editSigManifest(t, f.Children[0], func(m *v1.Manifest) {
			m.Layers[0].Digest, m.Layers[0].Size = otherLayer.Digest, otherLayer.Size
		})
		_, err := Verify(ctx, f.Children[0], p)
		if !errors.Is(err, ErrTampered) {
			t.Fatalf("want ErrTampered, got %v", err)
		}
		t.Log(err)
	})
	t.Run("signature of another digest", func(t *testing.T) {
		// The whole, genuine .sig manifest of "other" copied onto this manifest's tag.
		otag, _ := ociremote.SignatureTag(other)
		od, _ := remote.Get(otag)
		tag, _ := ociremote.SignatureTag(f.Children[1])
		if err := remote.Put(tag, rawManifest{od.Manifest, od.MediaType}); err != nil {
			t.Fatal(err)
		}
		_, err := Verify(ctx, f.Children[1], p)
		if !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("want ErrDigestMismatch, got %v", err)
		}
		t.Log(err)
	})
}

func mustSign(t *testing.T, s Signer, ref name.Digest) string {
	t.Helper()
	sig, err := s.Sign(context.Background(), []byte(`{"other":"`+ref.String()+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	return b64(sig.Sig)
}

func TestIdempotent(t *testing.T) {
	ctx := context.Background()
	f := newRegistry(t)
	dir := t.TempDir()
	s, err := NewEphemeral(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := SignImage(ctx, f.Index, s); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(registrytest.SignatureLayers(t, f.Index)); n != 1 {
		t.Fatalf("signature layers after signing 3 times: %d, want 1", n)
	}
	k := newKeySigner(t, t.TempDir(), "pw")
	for i := 0; i < 2; i++ {
		if err := SignImage(ctx, f.Index, k); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(registrytest.SignatureLayers(t, f.Index)); n != 2 {
		t.Fatalf("signature layers after co-signing with a key twice: %d, want 2", n)
	}
	// Both still verify, each under its own policy.
	if _, err := Verify(ctx, f.Index, dryRunPolicy(t, dir)); err != nil {
		t.Fatal(err)
	}
}

func newKeySigner(t *testing.T, dir, password string) Signer {
	t.Helper()
	pass := func(bool) ([]byte, error) { return []byte(password), nil }
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
	s, err := NewKey(context.Background(), filepath.Join(dir, "cosign.key"), pass)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestKey(t *testing.T) {
	ctx := context.Background()
	f := newRegistry(t)
	dir, otherDir := t.TempDir(), t.TempDir()
	s := newKeySigner(t, dir, "correct horse")
	newKeySigner(t, otherDir, "x")
	pub, _ := os.ReadFile(filepath.Join(dir, "cosign.pub"))
	otherPub, _ := os.ReadFile(filepath.Join(otherDir, "cosign.pub"))
	caDir := t.TempDir()
	if _, err := NewEphemeral(caDir); err != nil {
		t.Fatal(err)
	}
	caRoot, _ := os.ReadFile(filepath.Join(caDir, RootFile))

	if _, err := NewKey(ctx, filepath.Join(dir, "cosign.key"), func(bool) ([]byte, error) { return []byte("wrong"), nil }); err == nil {
		t.Fatal("NewKey with a wrong password succeeded")
	}
	for _, ref := range append([]name.Digest{f.Index}, f.Children...) {
		if err := SignImage(ctx, ref, s); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		p    Policy
		want error
	}{
		{"own key", Policy{PublicKey: pub, IgnoreTlog: true}, nil},
		{"other key", Policy{PublicKey: otherPub, IgnoreTlog: true}, ErrTampered},
		{"certificate policy on a key signature", Policy{Roots: caRoot, Identity: DryRunIdentity, Issuer: DryRunIssuer, IgnoreTlog: true}, ErrUntrustedCA},
		{"key and roots", Policy{PublicKey: pub, Roots: caRoot, IgnoreTlog: true}, ErrPolicy},
		{"not a key", Policy{PublicKey: []byte("nope"), IgnoreTlog: true}, ErrPolicy},
	} {
		for i, ref := range append([]name.Digest{f.Index}, f.Children...) {
			t.Run(tc.name+"/"+string(rune('0'+i)), func(t *testing.T) {
				got, err := Verify(ctx, ref, tc.p)
				if !errors.Is(err, tc.want) {
					t.Fatalf("want %v, got %v", tc.want, err)
				}
				if tc.want == nil && (len(got) != 1 || got[0].Identity != "key") {
					t.Fatalf("verified = %+v", got)
				}
				if err != nil {
					t.Log(err)
				}
			})
		}
	}
	if !strings.HasPrefix(s.Identity(), "key ") {
		t.Errorf("Identity() = %q", s.Identity())
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
