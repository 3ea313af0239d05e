package publish_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/publish"
)

// newRelease returns a release of two checked artifacts, "one" and "two",
// whose indexes sit in dist/oci.
func newRelease(t *testing.T, registryPrefix string, o release.Options) *release.Release {
	t.Helper()
	cfg := &config.Config{Project: "bv", Registry: registryPrefix, Platforms: []string{"linux/amd64"},
		Artifacts: []config.Artifact{{Name: "one"}, {Name: "two"}}}
	r := release.New(cfg, t.TempDir(), o)
	lp, err := builder.OpenLayout(r.OCIDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range cfg.Artifacts {
		idx, err := random.Index(256, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		if err := lp.WriteIndex(idx); err != nil {
			t.Fatal(err)
		}
		d, _ := idx.Digest()
		mt, _ := idx.MediaType()
		raw, _ := idx.RawManifest()
		desc := v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(raw)), Annotations: map[string]string{builder.AnnotationArtifact: a.Name}}
		if err := lp.AppendDescriptor(desc); err != nil {
			t.Fatal(err)
		}
		ar := r.Artifact(a.Name)
		ar.Digest = d.String()
		ar.Check = &release.CheckRecord{Digest: d.String(), Passed: true}
	}
	r.Record.Tags = []string{"v1.2.3", "0123456789abcdef0123456789abcdef01234567"}
	r.Record.Registry = registryPrefix
	t.Cleanup(r.Close)
	return r
}

func tags(t *testing.T, repo string) []string {
	t.Helper()
	r, err := name.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := remote.List(r)
	if err != nil && !strings.Contains(err.Error(), "NAME_UNKNOWN") {
		t.Fatal(err)
	}
	return ts
}

func TestPublishDigestThenTags(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	r := newRelease(t, host+"/bv", release.Options{})
	if err := (publish.Stage{}).Run(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"one", "two"} {
		ar := r.Artifact(n)
		if ar.Published == nil || ar.Published.Reference != host+"/bv/"+n+"@"+ar.Digest {
			t.Fatalf("%s: published = %+v", n, ar.Published)
		}
		got := tags(t, host+"/bv/"+n)
		if strings.Join(got, ",") != "0123456789abcdef0123456789abcdef01234567,v1.2.3" {
			t.Errorf("%s: tags = %v", n, got)
		}
	}
	// A second publish finds every digest present and pushes nothing again.
	if err := (publish.Stage{}).Run(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func TestPublishRefusals(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name   string
		prefix string
		opts   release.Options
		edit   func(r *release.Release)
		want   []string
	}{
		{"latest tag", host + "/bv", release.Options{}, func(r *release.Release) { r.Record.Tags = append(r.Record.Tags, "latest") }, []string{"refusing to write the tag 'latest'"}},
		{"dirty tree", host + "/bv", release.Options{}, func(r *release.Release) { r.Record.Dirty = true }, []string{"dirty", "--allow-dirty"}},
		{"unchecked image", host + "/bv", release.Options{}, func(r *release.Release) { r.Artifact("two").Check.Passed = false }, []string{"two", "has not passed 'check'"}},
		{"registry unreachable", "127.0.0.1:1/bv", release.Options{}, nil, []string{"127.0.0.1:1", "unreachable", "nothing was tagged"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRelease(t, tc.prefix, tc.opts)
			if tc.edit != nil {
				tc.edit(r)
			}
			err := (publish.Stage{}).Run(context.Background(), r)
			if err == nil {
				t.Fatal("published, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tc.prefix == host+"/bv" {
				for _, n := range []string{"one", "two"} {
					if got := tags(t, host+"/bv/"+n); len(got) > 0 {
						t.Errorf("%s was tagged %v by a refused publish", n, got)
					}
				}
			}
		})
	}
}

// TestPublishAuthRefusedLeavesNoTags: the registry refuses the second
// artifact; the first one's digest is pushed but no tag is written anywhere.
func TestPublishAuthRefusedLeavesNoTags(t *testing.T) {
	reg := registry.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, "/v2/bv/two/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
			return
		}
		reg.ServeHTTP(w, req)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	r := newRelease(t, host+"/bv", release.Options{})
	err := (publish.Stage{}).Run(context.Background(), r)
	if err == nil {
		t.Fatal("published, want an auth error")
	}
	for _, w := range []string{"publish two", "refused the credentials", "docker login " + host} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	if got := tags(t, host+"/bv/one"); len(got) > 0 {
		t.Errorf("one was tagged %v although two failed", got)
	}
	one, err := name.ParseReference(host + "/bv/one@" + r.Artifact("one").Digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, herr := remote.Head(one); herr != nil {
		t.Errorf("one's digest is not in the registry: %v", herr)
	}
}

func TestValidateTag(t *testing.T) {
	for tag, ok := range map[string]bool{"v1.0.0": true, "0123abc": true, "latest": false, "LATEST": false, "bad tag": false} {
		if err := publish.ValidateTag(tag); (err == nil) != ok {
			t.Errorf("ValidateTag(%q) = %v, want ok=%v", tag, err, ok)
		}
	}
}
