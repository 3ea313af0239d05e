package build

import (
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bitvault/bitvault/builder"
)

func TestInputsDigest(t *testing.T) {
	base := func(t *testing.T) builder.Request {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY . /\n"), 0o644)
		os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("ignored/\n*.log\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n"), 0o644)
		os.MkdirAll(filepath.Join(dir, "ignored"), 0o755)
		os.WriteFile(filepath.Join(dir, "ignored", "big.bin"), []byte("x"), 0o644)
		return builder.Request{ContextDir: dir, Dockerfile: filepath.Join(dir, "Dockerfile"), Platforms: []string{"linux/amd64"},
			SourceDateEpoch: 1, BuildArgs: map[string]string{"VERSION": "1"}, Secrets: map[string][]byte{"t": []byte("a")}}
	}
	tests := []struct {
		name    string
		edit    func(r *builder.Request)
		changes bool
	}{
		{"nothing", func(r *builder.Request) {}, false},
		{"ignored file", func(r *builder.Request) {
			os.WriteFile(filepath.Join(r.ContextDir, "ignored", "big.bin"), []byte("y"), 0o644)
		}, false},
		{"ignored pattern", func(r *builder.Request) { os.WriteFile(filepath.Join(r.ContextDir, "debug.log"), []byte("y"), 0o644) }, false},
		{"secret value", func(r *builder.Request) { r.Secrets["t"] = []byte("b") }, false},
		{"source file", func(r *builder.Request) {
			os.WriteFile(filepath.Join(r.ContextDir, "main.go"), []byte("package main // x\n"), 0o644)
		}, true},
		{"new file", func(r *builder.Request) { os.WriteFile(filepath.Join(r.ContextDir, "new.go"), nil, 0o644) }, true},
		{"file mode", func(r *builder.Request) { os.Chmod(filepath.Join(r.ContextDir, "main.go"), 0o755) }, true},
		{"dockerfile", func(r *builder.Request) { os.WriteFile(r.Dockerfile, []byte("FROM scratch\n"), 0o644) }, true},
		{"build arg", func(r *builder.Request) { r.BuildArgs["VERSION"] = "2" }, true},
		{"platforms", func(r *builder.Request) { r.Platforms = append(r.Platforms, "linux/arm64") }, true},
		{"epoch", func(r *builder.Request) { r.SourceDateEpoch = 2 }, true},
		{"target", func(r *builder.Request) { r.Target = "x" }, true},
		{"base digest", func(r *builder.Request) {
			r.Bases = []builder.NamedContext{{Ref: "a@sha256:00", Digest: v1.Hash{Algorithm: "sha256", Hex: "11"}}}
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := base(t)
			before, err := InputsDigest(r)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(&r)
			after, err := InputsDigest(r)
			if err != nil {
				t.Fatal(err)
			}
			if (before != after) != tc.changes {
				t.Errorf("digest changed = %v, want %v", before != after, tc.changes)
			}
		})
	}
}
