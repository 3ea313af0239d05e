// Package registrytest gives tests an in-process OCI registry
// (go-containerregistry's pkg/registry) holding a random image index pushed
// by digest.
package registrytest

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
)

// Fixture is a registry repository holding one index and its manifests.
type Fixture struct {
	Repo     name.Repository
	Index    name.Digest   // the index, by digest
	Children []name.Digest // its platform manifests, by digest
}

// Start serves a registry for the test's lifetime and returns its host:port.
func Start(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// New starts a registry and pushes a random index of manifests (children)
// to <host>/<repo> by digest.
func New(t testing.TB, repo string, manifests int64) Fixture {
	t.Helper()
	r, err := name.NewRepository(Start(t) + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	return Push(t, r, manifests)
}

// Push writes a random index of manifests to repo by digest.
func Push(t testing.TB, repo name.Repository, manifests int64) Fixture {
	t.Helper()
	idx, err := random.Index(512, 1, manifests)
	if err != nil {
		t.Fatal(err)
	}
	h, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	f := Fixture{Repo: repo, Index: repo.Digest(h.String())}
	if err := remote.WriteIndex(f.Index, idx); err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Manifests {
		f.Children = append(f.Children, repo.Digest(d.Digest.String()))
	}
	return f
}

// SignatureLayers are the layers of ref's cosign signature manifest (sha256-<hex>.sig).
func SignatureLayers(t testing.TB, ref name.Digest) []v1.Descriptor {
	t.Helper()
	return cosignLayers(t, ref, ociremote.SignatureTag)
}

// AttestationLayers are the layers of ref's cosign attestation manifest (sha256-<hex>.att).
func AttestationLayers(t testing.TB, ref name.Digest) []v1.Descriptor {
	t.Helper()
	return cosignLayers(t, ref, ociremote.AttestationTag)
}

func cosignLayers(t testing.TB, ref name.Digest, tagOf func(name.Reference, ...ociremote.Option) (name.Tag, error)) []v1.Descriptor {
	t.Helper()
	tag, err := tagOf(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return m.Layers
}
