package homebrew

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func sum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func archives(targets ...string) []Archive {
	var out []Archive
	for _, t := range targets {
		goos, arch, _ := strings.Cut(t, "/")
		ext := ".tar.gz"
		if goos == "windows" {
			ext = ".zip"
		}
		f := "bitvault_1.2.3_" + goos + "_" + arch + ext
		out = append(out, Archive{OS: goos, Arch: arch, File: f, SHA256: sum(f)})
	}
	return out
}

var base = Formula{
	Name: "bitvault", Version: "1.2.3", Description: "BitVault file vault command-line client",
	Homepage: "https://github.com/bitvault/bitvault", License: "Apache-2.0", Repository: "bitvault/bitvault",
}

func with(edit func(*Formula)) Formula { f := base; edit(&f); return f }

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		golden string
		f      Formula
	}{
		{"all-targets", with(func(f *Formula) {
			f.Archives = archives("linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64", "windows/arm64")
		})},
		{"macos-arm-only", with(func(f *Formula) { f.Archives = archives("darwin/arm64", "windows/amd64") })},
		{"linux-only-quoted", with(func(f *Formula) {
			f.Name, f.Description, f.License, f.Homepage = "bitvault-cli", `the "vault" #{client}`, "", ""
			f.Archives = archives("linux/amd64", "linux/arm64")
		})},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			got, err := Render(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join("testdata", tc.golden+".rb.golden")
			if *update {
				if err := os.WriteFile(p, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("%v (go test -update writes it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("formula differs from %s (go test -update if intended):\n%s", p, got)
			}
			if ruby, err := exec.LookPath("ruby"); err == nil {
				f := filepath.Join(t.TempDir(), "f.rb")
				os.WriteFile(f, got, 0o644)
				if out, err := exec.Command(ruby, "-c", f).CombinedOutput(); err != nil {
					t.Errorf("ruby -c: %v\n%s", err, out)
				}
			}
		})
	}
}

func TestRenderRejects(t *testing.T) {
	for name, f := range map[string]Formula{
		"no archives":      with(func(f *Formula) { f.Archives = archives("windows/amd64") }),
		"bad repository":   with(func(f *Formula) { f.Repository = "bitvault"; f.Archives = archives("linux/amd64") }),
		"bad name":         with(func(f *Formula) { f.Name = "Bit Vault"; f.Archives = archives("linux/amd64") }),
		"bad sha256":       with(func(f *Formula) { f.Archives = []Archive{{OS: "linux", Arch: "amd64", File: "x", SHA256: "abc"}} }),
		"duplicate target": with(func(f *Formula) { f.Archives = archives("linux/amd64", "linux/amd64") }),
	} {
		if _, err := Render(f); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestClassName(t *testing.T) {
	for in, want := range map[string]string{"bitvault": "Bitvault", "bitvault-cli": "BitvaultCli", "bv_tool.x": "BvToolX"} {
		if got := ClassName(in); got != want {
			t.Errorf("ClassName(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestURL(t *testing.T) {
	got := URL("bitvault/bitvault", "1.2.3", "bitvault_1.2.3_darwin_arm64.tar.gz")
	if want := "https://github.com/bitvault/bitvault/releases/download/v1.2.3/bitvault_1.2.3_darwin_arm64.tar.gz"; got != want {
		t.Errorf("URL = %s", got)
	}
}
