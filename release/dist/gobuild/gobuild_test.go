package gobuild

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

func TestSplitExe(t *testing.T) {
	for _, tc := range []struct {
		target, goos, goarch, exe string
		ok                        bool
	}{
		{"linux/amd64", "linux", "amd64", "bv", true},
		{"darwin/arm64", "darwin", "arm64", "bv", true},
		{"windows/arm64", "windows", "arm64", "bv.exe", true},
		{"linux", "", "", "", false},
		{"plan9/amd64", "", "", "", false},
		{"linux/amd64/v2", "", "", "", false},
	} {
		goos, goarch, err := Split(tc.target)
		if (err == nil) != tc.ok || goos != tc.goos || goarch != tc.goarch {
			t.Errorf("Split(%q) = %q %q %v", tc.target, goos, goarch, err)
		}
		if tc.ok && Exe("bv", goos) != tc.exe {
			t.Errorf("Exe(bv, %s) = %s", goos, Exe("bv", goos))
		}
	}
}

func TestArgsEnv(t *testing.T) {
	o := Options{Dir: "/src", Main: "./cmd/bv", Target: "darwin/arm64", VersionVar: "main.version", Version: "1.2.3", Output: "/out/bv",
		Env: []string{"PATH=/bin", "GOFLAGS=-race", "GOAMD64=v3", "CGO_ENABLED=1", "GOOS=plan9", "GOEXPERIMENT=jsonv2", "HOME=/root"}}
	want := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -buildid= -X main.version=1.2.3", "-o", "/out/bv", "./cmd/bv"}
	if got := o.Args(); !slices.Equal(got, want) {
		t.Errorf("Args = %q", got)
	}
	env, err := o.env()
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range []string{"PATH=/bin", "HOME=/root", "GOOS=darwin", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly", "GOAMD64=v1", "GOEXPERIMENT="} {
		if !slices.Contains(env, kv) {
			t.Errorf("env lacks %s: %q", kv, env)
		}
	}
	for _, kv := range []string{"GOFLAGS=-race", "GOAMD64=v3", "CGO_ENABLED=1", "GOOS=plan9", "GOEXPERIMENT=jsonv2"} {
		if slices.Contains(env, kv) {
			t.Errorf("env keeps %s", kv)
		}
	}
}

func TestBuildRejects(t *testing.T) {
	base := Options{Dir: t.TempDir(), Main: ".", Target: "linux/amd64", VersionVar: "main.version", Version: "1.2.3", Output: filepath.Join(t.TempDir(), "x")}
	for name, edit := range map[string]func(*Options){
		"version with a space": func(o *Options) { o.Version = "1.2.3 -X main.evil=1" },
		"bad variable":         func(o *Options) { o.VersionVar = "version" },
		"bad target":           func(o *Options) { o.Target = "linux" },
		"no main":              func(o *Options) { o.Main = "" },
	} {
		o := base
		edit(&o)
		if _, err := Build(context.Background(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// module writes a tiny main module into a fresh directory.
func module(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"go.mod":  "module example.com/tiny\n\ngo 1.22\n",
		"main.go": "package main\n\nimport \"fmt\"\n\nvar version = \"dev\"\n\nfunc main() { fmt.Println(version) }\n",
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestReproducible: the same source in two directories, with a hostile
// environment the second time and an empty build cache, gives the same bytes;
// the version is stamped; a failing build names the command.
func TestReproducible(t *testing.T) {
	ctx := context.Background()
	target := runtime.GOOS + "/" + runtime.GOARCH
	o := Options{Dir: module(t), Main: ".", Target: target, VersionVar: "main.version", Version: "1.2.3", Output: filepath.Join(t.TempDir(), "a", "tiny")}
	a, err := Build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	o2 := o
	o2.Dir, o2.Output, o2.GoCache = module(t), filepath.Join(t.TempDir(), "b", "tiny"), t.TempDir()
	o2.Env = append(os.Environ(), "GOAMD64=v3", "GOFLAGS=-buildvcs=true", "CGO_ENABLED=1")
	b, err := Build(ctx, o2)
	if err != nil {
		t.Fatal(err)
	}
	if a.SHA256 != b.SHA256 || a.Size != b.Size || a.Size == 0 {
		t.Fatalf("two builds differ: %s (%d B) vs %s (%d B)", a.SHA256, a.Size, b.SHA256, b.Size)
	}
	out, err := exec.Command(a.Path).Output()
	if err != nil || strings.TrimSpace(string(out)) != "1.2.3" {
		t.Errorf("built binary says %q (%v), want 1.2.3", out, err)
	}
	if !strings.Contains(a.Command, "-trimpath") || !strings.Contains(a.Command, "CGO_ENABLED=0") {
		t.Errorf("command %q", a.Command)
	}
	o.Main = "./missing"
	if _, err := Build(ctx, o); err == nil || !strings.Contains(err.Error(), "go build") {
		t.Errorf("err = %v, want the failing go build named", err)
	}
	if v, err := GoVersion(ctx, o.Dir); err != nil || v != runtime.Version() {
		t.Errorf("GoVersion = %q, %v", v, err)
	}
}
