package rules

import (
	"archive/tar"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/bitvault/bitvault/internal/testsupport/imagetest"
)

var epoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type file struct {
	name  string
	typ   byte
	mtime time.Time // zero = epoch
	link  string
}

func dir(name string) file         { return file{name: name, typ: tar.TypeDir} }
func reg(name string) file         { return file{name: name, typ: tar.TypeReg} }
func symlink(name, to string) file { return file{name: name, typ: tar.TypeSymlink, link: to} }

// layer is a deterministic uncompressed tar layer.
func layer(t *testing.T, files ...file) v1.Layer {
	t.Helper()
	var out []imagetest.File
	for _, f := range files {
		tf := imagetest.File{Name: f.name, Type: f.typ, Mode: 0o644, Link: f.link, ModTime: f.mtime}
		if tf.ModTime.IsZero() {
			tf.ModTime = epoch
		}
		switch f.typ {
		case tar.TypeDir:
			tf.Mode = 0o755
		case tar.TypeReg:
			tf.Body = []byte("content of " + f.name + "\n")
		}
		out = append(out, tf)
	}
	return imagetest.Layer(t, out...)
}

// imageSpec is a good image that a test case mutates.
type imageSpec struct {
	arch   string
	layers [][]file
	config func(*v1.ConfigFile)
}

func goodSpec(arch string) *imageSpec {
	return &imageSpec{
		arch: arch,
		layers: [][]file{
			// distroless-like base
			{dir("etc/"), reg("etc/passwd"), reg("etc/group"), dir("etc/ssl/certs/"), reg("etc/ssl/certs/ca-certificates.crt"),
				dir("nodejs/bin/"), reg("nodejs/bin/node"), dir("tmp/"), dir("home/nonroot/")},
			// dependencies
			{dir("app/"), dir("app/node_modules/"), dir("app/node_modules/left-pad/"), reg("app/node_modules/left-pad/index.js"), reg("app/node_modules/left-pad/package.json")},
			// application code
			{reg("app/server.js"), dir("app/.next/"), reg("app/.next/BUILD_ID")},
		},
	}
}

func (s *imageSpec) build(t *testing.T) v1.Image {
	t.Helper()
	img := empty.Image
	for i, files := range s.layers {
		var err error
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:     layer(t, files...),
			MediaType: types.OCILayer,
			History: v1.History{
				Created:   v1.Time{Time: epoch.Add(-time.Duration(len(s.layers)-i) * time.Hour)},
				CreatedBy: "COPY --from=build /app /app # buildkit",
				Comment:   "buildkit.dockerfile.v0",
			},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = "linux", s.arch, v1.Time{Time: epoch}
	cfg.Config.User = "65532:65532"
	cfg.Config.WorkingDir = "/app"
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NODE_ENV=production", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.source": "https://github.com/bitvault/bitvault", "org.opencontainers.image.revision": "0123456789abcdef"}
	cfg.Config.Cmd = []string{"server.js"}
	cfg.History = append(cfg.History, v1.History{
		Created:    v1.Time{Time: epoch},
		CreatedBy:  "RUN --mount=type=secret,id=npm,env=NPM_TOKEN /bin/sh -c npm ci # buildkit",
		EmptyLayer: true,
	})
	if s.config != nil {
		s.config(cfg)
	}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	return mutate.MediaType(img, types.OCIManifestSchema1)
}

var opts = ImageOptions{Name: "bitvault-web", SourceDateEpoch: epoch, Platforms: []string{"linux/amd64", "linux/arm64"}}

func rulesOf(vs []Violation) []string {
	var rs []string
	for _, v := range vs {
		rs = append(rs, v.Rule)
	}
	return rs
}

func TestCheckImage(t *testing.T) {
	addLayer := func(files ...file) func(*imageSpec) {
		return func(s *imageSpec) { s.layers = append(s.layers, files) }
	}
	cfg := func(f func(*v1.ConfigFile)) func(*imageSpec) {
		return func(s *imageSpec) { s.config = f }
	}
	for _, tc := range []struct {
		name     string
		mutate   func(*imageSpec)
		platform string
		want     []string
		contains string // in the message of the single violation
	}{
		{name: "good", mutate: func(*imageSpec) {}},
		{name: "user root", mutate: cfg(func(c *v1.ConfigFile) { c.Config.User = "0" }), want: []string{RuleImageUser}, contains: "is root"},
		{name: "user empty", mutate: cfg(func(c *v1.ConfigFile) { c.Config.User = "" }), want: []string{RuleImageUser}},
		{name: "user name nonroot", mutate: cfg(func(c *v1.ConfigFile) { c.Config.User = "nonroot" }), want: []string{RuleImageUser}, contains: "numeric UID"},
		{name: "user 65532 alone", mutate: cfg(func(c *v1.ConfigFile) { c.Config.User = "65532" })},
		{name: "healthcheck", mutate: cfg(func(c *v1.ConfigFile) {
			c.Config.Healthcheck = &v1.HealthConfig{Test: []string{"CMD", "/nodejs/bin/node", "healthcheck.js"}}
		}), want: []string{RuleImageHealthcheck}},
		{name: "healthcheck NONE", mutate: cfg(func(c *v1.ConfigFile) { c.Config.Healthcheck = &v1.HealthConfig{Test: []string{"NONE"}} })},
		{name: "bin/sh present", mutate: addLayer(dir("bin/"), reg("bin/sh")), want: []string{RuleImageShell}, contains: "/bin/sh"},
		{name: "bash symlink", mutate: addLayer(dir("usr/bin/"), symlink("usr/bin/bash", "dash")), want: []string{RuleImageShell}},
		{name: "busybox present", mutate: addLayer(dir("busybox/"), reg("busybox/busybox"), symlink("busybox/sh", "busybox")), want: []string{RuleImageShell}, contains: "/busybox/busybox, /busybox/sh"},
		{name: "busybox anywhere", mutate: addLayer(dir("opt/tools/"), reg("opt/tools/busybox")), want: []string{RuleImageShell}},
		{name: "apt-get present", mutate: addLayer(dir("usr/bin/"), reg("usr/bin/apt-get"), reg("usr/bin/dpkg")), want: []string{RuleImagePackageManager}, contains: "/usr/bin/apt-get, /usr/bin/dpkg"},
		{name: "pip3.11 present", mutate: addLayer(reg("usr/local/bin/pip3.11")), want: []string{RuleImagePackageManager}},
		{name: "npm in app dir is not on a bin path", mutate: addLayer(reg("app/scripts/npm"))},
		{name: "whiteout removes sh", mutate: func(s *imageSpec) {
			s.layers = append(s.layers, []file{dir("bin/"), reg("bin/sh")}, []file{reg("bin/.wh.sh")})
		}},
		{name: "whiteout of parent dir", mutate: func(s *imageSpec) {
			s.layers = append(s.layers, []file{dir("bin/"), reg("bin/sh"), reg("bin/bash")}, []file{reg(".wh.bin")})
		}},
		{name: "opaque dir", mutate: func(s *imageSpec) {
			s.layers = append(s.layers, []file{dir("bin/"), reg("bin/sh")}, []file{dir("bin/"), reg("bin/.wh..wh..opq"), reg("bin/app")})
		}},
		{name: "whiteout then re-added", mutate: func(s *imageSpec) {
			s.layers = append(s.layers, []file{dir("bin/"), reg("bin/sh")}, []file{reg("bin/.wh.sh")}, []file{reg("bin/sh")})
		}, want: []string{RuleImageShell}},
		{name: "whiteout in a sibling does not count", mutate: func(s *imageSpec) {
			s.layers = append(s.layers, []file{dir("bin/"), reg("bin/sh")}, []file{reg("usr/bin/.wh.sh")})
		}, want: []string{RuleImageShell}},
		{name: "secret in Env", mutate: cfg(func(c *v1.ConfigFile) {
			c.Config.Env = append(c.Config.Env, "GITHUB_TOKEN=ghp_abcdefghijklmnopqrstuvwxyz0123456789")
		}), want: []string{RuleImageSecret}, contains: "Env GITHUB_TOKEN"},
		{name: "secret value in Env", mutate: cfg(func(c *v1.ConfigFile) {
			c.Config.Env = append(c.Config.Env, "DATABASE_URL=postgres://bitvault:s3cr3t@db:5432/bitvault")
		}), want: []string{RuleImageSecret}, contains: "password in a URL"},
		{name: "empty secret-named Env is fine", mutate: cfg(func(c *v1.ConfigFile) { c.Config.Env = append(c.Config.Env, "NPM_TOKEN=") })},
		{name: "secret in Label", mutate: cfg(func(c *v1.ConfigFile) {
			c.Config.Labels["ci.registry.auth"] = "npm_abcdefghijklmnopqrstuvwxyz0123456789"
		}), want: []string{RuleImageSecret}, contains: "Label ci.registry.auth"},
		{name: "secret in history", mutate: cfg(func(c *v1.ConfigFile) {
			c.History = append(c.History, v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "RUN |1 NPM_TOKEN=abcdef0123 /bin/sh -c npm ci # buildkit", EmptyLayer: true})
		}), want: []string{RuleImageSecret}, contains: "NPM_TOKEN"},
		{name: "private key in history comment", mutate: cfg(func(c *v1.ConfigFile) {
			c.History[0].Comment = "-----BEGIN OPENSSH PRIVATE KEY-----"
		}), want: []string{RuleImageSecret}},
		{name: "mtime after epoch", mutate: func(s *imageSpec) {
			s.layers[2][0].mtime = epoch.Add(time.Hour)
		}, want: []string{RuleImageMtime}, contains: "layer 3 /app/server.js"},
		{name: "created != epoch", mutate: cfg(func(c *v1.ConfigFile) { c.Created = v1.Time{Time: epoch.Add(time.Second)} }), want: []string{RuleImageCreated}},
		{name: "history after epoch", mutate: cfg(func(c *v1.ConfigFile) { c.History[1].Created = v1.Time{Time: epoch.Add(time.Minute)} }), want: []string{RuleImageCreated}},
		{name: "config arch mismatch", mutate: func(s *imageSpec) { s.arch = "amd64" }, platform: "linux/arm64", want: []string{RuleImagePlatform}, contains: "config says linux/amd64"},
		{name: "arm64/v8 equals arm64", mutate: cfg(func(c *v1.ConfigFile) { c.Variant = "v8" }), platform: "linux/arm64"},
		{name: "app code before dependencies", mutate: func(s *imageSpec) {
			s.layers[1], s.layers[2] = s.layers[2], s.layers[1]
		}, want: []string{RuleImageLayerOrder}, contains: "layer 2 adds only application code under /app"},
		{name: "standalone output mixes deps and code", mutate: func(s *imageSpec) {
			s.layers = [][]file{s.layers[0], {reg("app/public/logo.svg")}, append(s.layers[1], s.layers[2]...)}
		}, want: []string{RuleImageLayerOrder}},
		{name: "static after standalone is fine", mutate: func(s *imageSpec) {
			s.layers = [][]file{s.layers[0], append(s.layers[1], s.layers[2]...), {reg("app/.next/static/chunk.js")}}
		}},
		{name: "node_modules at root after code", mutate: func(s *imageSpec) {
			s.layers = [][]file{s.layers[0], {reg("server.js")}, {reg("node_modules/x/index.js")}}
		}, want: []string{RuleImageLayerOrder}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := goodSpec("arm64")
			tc.mutate(s)
			vs, err := CheckImage(s.build(t), cmpOr(tc.platform, "linux/arm64"), opts)
			if err != nil {
				t.Fatal(err)
			}
			if g := rulesOf(vs); !slices.Equal(g, tc.want) {
				t.Fatalf("rules = %v, want %v:\n%s", g, tc.want, format(vs))
			}
			if tc.contains != "" && !strings.Contains(vs[0].Message, tc.contains) {
				t.Errorf("message %q does not contain %q", vs[0].Message, tc.contains)
			}
			for _, v := range vs {
				if v.Image != opts.Name || v.Platform != cmpOr(tc.platform, "linux/arm64") || v.Fix == "" {
					t.Errorf("incomplete violation %#v", v)
				}
				for _, leak := range []string{"ghp_abcdefghijklmnop", "s3cr3t", "npm_abcdefghijklmnop", "abcdef0123"} {
					if strings.Contains(v.String(), leak) {
						t.Errorf("violation leaks the secret: %s", v)
					}
				}
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestMtimeReportsFirstFew(t *testing.T) {
	s := goodSpec("amd64")
	var many []file
	for i := range 1000 {
		many = append(many, file{name: "app/gen/" + strings.Repeat("x", i%7+1) + string(rune('a'+i%26)) + "/" + time.Duration(i).String(), typ: tar.TypeReg, mtime: epoch.Add(time.Duration(i+1) * time.Second)})
	}
	s.layers = append(s.layers, many)
	vs, err := CheckImage(s.build(t), "linux/amd64", opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1 || vs[0].Rule != RuleImageMtime {
		t.Fatalf("got %v", rulesOf(vs))
	}
	if !strings.HasPrefix(vs[0].Message, "1000 files") || !strings.Contains(vs[0].Message, "and 995 more") || strings.Count(vs[0].Message, "layer 4") != 5 {
		t.Errorf("message: %s", vs[0].Message)
	}
}

func index(t *testing.T, platforms ...string) v1.ImageIndex {
	t.Helper()
	idx := v1.ImageIndex(empty.Index)
	for _, p := range platforms {
		pl, err := v1.ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		s := goodSpec(pl.Architecture)
		if pl.Variant != "" {
			s.config = func(c *v1.ConfigFile) { c.Variant = pl.Variant }
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: s.build(t), Descriptor: v1.Descriptor{Platform: pl}})
	}
	return idx
}

func TestCheckIndex(t *testing.T) {
	attestation := func(idx v1.ImageIndex) v1.ImageIndex {
		img, err := random.Image(64, 1)
		if err != nil {
			t.Fatal(err)
		}
		return mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform:    &v1.Platform{OS: "unknown", Architecture: "unknown"},
			Annotations: map[string]string{"vnd.docker.reference.type": "attestation-manifest"},
		}})
	}
	for _, tc := range []struct {
		name      string
		idx       v1.ImageIndex
		want      []string
		platforms []string // of the violations
	}{
		{name: "good", idx: index(t, "linux/amd64", "linux/arm64")},
		{name: "arm64/v8", idx: index(t, "linux/amd64", "linux/arm64/v8")},
		{name: "attestations are skipped", idx: attestation(index(t, "linux/amd64", "linux/arm64"))},
		{name: "missing arm64", idx: index(t, "linux/amd64"), want: []string{RuleIndexPlatforms}, platforms: []string{"linux/arm64"}},
		{name: "extra s390x", idx: index(t, "linux/amd64", "linux/arm64", "linux/s390x"), want: []string{RuleIndexPlatforms}, platforms: []string{"linux/s390x"}},
		{name: "duplicate amd64", idx: index(t, "linux/amd64", "linux/arm64", "linux/amd64"), want: []string{RuleIndexPlatforms}, platforms: []string{"linux/amd64"}},
		{name: "arm64 slot holds amd64 image", idx: func() v1.ImageIndex {
			amd := goodSpec("amd64").build(t)
			return mutate.AppendManifests(index(t, "linux/amd64"),
				mutate.IndexAddendum{Add: amd, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
		}(), want: []string{RuleImagePlatform}, platforms: []string{"linux/arm64"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := CheckIndex(tc.idx, opts)
			if err != nil {
				t.Fatal(err)
			}
			if g := rulesOf(vs); !slices.Equal(g, tc.want) {
				t.Fatalf("rules = %v, want %v:\n%s", g, tc.want, format(vs))
			}
			for i, v := range vs {
				if v.Platform != tc.platforms[i] || v.Image != opts.Name {
					t.Errorf("violation %d: %s", i, v)
				}
			}
		})
	}
}

func TestImageOptionsRequired(t *testing.T) {
	img := goodSpec("amd64").build(t)
	if _, err := CheckImage(img, "linux/amd64", ImageOptions{Name: "x"}); err == nil || !strings.Contains(err.Error(), "SourceDateEpoch") {
		t.Errorf("zero SourceDateEpoch: err = %v", err)
	}
	if _, err := CheckIndex(index(t, "linux/amd64"), ImageOptions{Name: "x", SourceDateEpoch: epoch}); err == nil {
		t.Error("no platforms: want an error")
	}
}

func TestImageViolationString(t *testing.T) {
	s := goodSpec("arm64")
	s.config = func(c *v1.ConfigFile) { c.Config.User = "0" }
	vs, err := CheckImage(s.build(t), "linux/arm64", opts)
	if err != nil {
		t.Fatal(err)
	}
	want := `bitvault-web linux/arm64: image-user: config User "0" is root; set USER 65532:65532 in the final stage`
	if len(vs) != 1 || vs[0].String() != want {
		t.Errorf("got %v, want %s", vs, want)
	}
}
