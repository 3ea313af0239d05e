package dirsbom

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var created = time.Unix(1767225600, 0)

// build cross-compiles the bitvault CLI (service module) into dir.
func build(t *testing.T, dir, target string) {
	t.Helper()
	goos, goarch, _ := strings.Cut(target, "/")
	name := "bitvault"
	if goos == "windows" {
		name += ".exe"
	}
	cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w -buildid= -X main.version=1.2.3", "-o", filepath.Join(dir, name), "./cmd/bitvault")
	cmd.Dir = filepath.Join("..", "..", "service")
	cmd.Env = append(os.Environ(), "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("# BitVault\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func opts(target string) Options {
	goos, goarch, _ := strings.Cut(target, "/")
	return Options{Name: "bitvault", Version: "1.2.3", Platform: target, Archive: "bitvault_1.2.3_" + goos + "_" + goarch + ".tar.gz",
		Digest: "sha256:" + strings.Repeat("ab", 32), Created: created}
}

// TestSPDX: the Go binary cataloger finds the CLI's module and the standard
// library in ELF, Mach-O and PE binaries; the same files in another directory
// give the same bytes; nothing names the scanned path.
func TestSPDX(t *testing.T) {
	ctx := context.Background()
	for _, target := range []string{"linux/amd64", "darwin/arm64", "windows/amd64"} {
		t.Run(target, func(t *testing.T) {
			a, b := t.TempDir(), t.TempDir()
			build(t, a, target)
			build(t, b, target)
			o := opts(target)
			da, err := SPDX(ctx, a, o)
			if err != nil {
				t.Fatal(err)
			}
			db, err := SPDX(ctx, b, o)
			if err != nil {
				t.Fatal(err)
			}
			if string(da) != string(db) {
				t.Fatalf("SBOMs of the same files in two directories differ")
			}
			if strings.Contains(string(da), a) || strings.Contains(string(da), os.TempDir()) {
				t.Errorf("the SBOM names the scanned directory")
			}
			var doc struct {
				SPDXVersion       string `json:"spdxVersion"`
				Name              string `json:"name"`
				DocumentNamespace string `json:"documentNamespace"`
				CreationInfo      struct {
					Created  string   `json:"created"`
					Creators []string `json:"creators"`
				} `json:"creationInfo"`
				Packages []struct {
					Name        string `json:"name"`
					VersionInfo string `json:"versionInfo"`
				} `json:"packages"`
			}
			if err := json.Unmarshal(da, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.SPDXVersion != "SPDX-2.3" || doc.Name != o.Archive || doc.DocumentNamespace != o.Namespace() || doc.CreationInfo.Created != "2026-01-01T00:00:00Z" {
				t.Errorf("document %s %q %q %q", doc.SPDXVersion, doc.Name, doc.DocumentNamespace, doc.CreationInfo.Created)
			}
			found := map[string]string{}
			for _, p := range doc.Packages {
				found[p.Name] = p.VersionInfo
			}
			if _, ok := found["github.com/bitvault/bitvault/service"]; !ok {
				t.Errorf("no package for the CLI's module; packages: %v", found)
			}
			if v := found["stdlib"]; v != runtime.Version() {
				t.Errorf("stdlib version %q, want %s; packages: %v", v, runtime.Version(), found)
			}
			n, err := Packages(da)
			if err != nil || n < 2 {
				t.Errorf("Packages = %d, %v", n, err)
			}
		})
	}
}

func TestSPDXRejects(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for name, edit := range map[string]func(*Options){
		"no time":       func(o *Options) { o.Created = time.Time{} },
		"bad digest":    func(o *Options) { o.Digest = "sha256:abc" },
		"bad platform":  func(o *Options) { o.Platform = "linux" },
		"empty archive": func(o *Options) { o.Archive = "" },
	} {
		o := opts("linux/amd64")
		edit(&o)
		if _, err := SPDX(ctx, dir, o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := SPDX(ctx, filepath.Join(dir, "missing"), opts("linux/amd64")); err == nil {
		t.Error("missing directory: no error")
	}
}
