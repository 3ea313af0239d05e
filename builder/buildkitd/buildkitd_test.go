package buildkitd

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/modfile"
)

func TestVersionMatchesToolsModule(t *testing.T) {
	data, err := os.ReadFile("../../tools/buildkit/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	f, err := modfile.Parse("go.mod", data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Require {
		if r.Mod.Path == "github.com/moby/buildkit" {
			if r.Mod.Version != Version {
				t.Fatalf("tools/buildkit pins %s, buildkitd.Version is %s: keep them equal", r.Mod.Version, Version)
			}
			return
		}
	}
	t.Fatal("tools/buildkit/go.mod does not require github.com/moby/buildkit")
}

func TestConnectErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name string
		opts Options
		env  map[string]string
		want []string
	}{
		{
			name: "BUILDKIT_HOST unreachable",
			opts: Options{Host: "unix:///nonexistent/buildkitd.sock"},
			want: []string{"/nonexistent/buildkitd.sock", "BUILDKIT_HOST", "unset BUILDKIT_HOST"},
		},
		{
			name: "runc missing",
			opts: Options{StateDir: t.TempDir(), Binary: "/bin/true"},
			env:  map[string]string{"PATH": t.TempDir()},
			want: []string{"runc", "apt-get install runc"},
		},
		{
			name: "buildkitd missing",
			opts: Options{StateDir: t.TempDir()},
			env:  map[string]string{"PATH": t.TempDir(), "BITVAULT_TOOLS_DIR": t.TempDir(), "BITVAULT_BUILDKITD": ""},
			want: []string{"buildkitd v0.34.2 not found", "scripts/tools.sh buildkit"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			d, err := Connect(ctx, tc.opts)
			if err == nil {
				d.Close()
				t.Fatal("connected, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
