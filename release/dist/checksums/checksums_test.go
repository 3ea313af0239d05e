package checksums

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func sum(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

func TestFormatParse(t *testing.T) {
	sums := []Sum{
		{Name: "bitvault_1.2.3_windows_amd64.zip", SHA256: sum("w")},
		{Name: "bitvault_1.2.3_darwin_arm64.tar.gz", SHA256: sum("d")},
		{Name: "bitvault_1.2.3_linux_amd64.tar.gz", SHA256: sum("l")},
	}
	got, err := Format(sums)
	if err != nil {
		t.Fatal(err)
	}
	want := sum("d") + "  bitvault_1.2.3_darwin_arm64.tar.gz\n" +
		sum("l") + "  bitvault_1.2.3_linux_amd64.tar.gz\n" +
		sum("w") + "  bitvault_1.2.3_windows_amd64.zip\n"
	if string(got) != want {
		t.Fatalf("got\n%swant\n%s", got, want)
	}
	back, err := Parse(got)
	if err != nil || len(back) != 3 {
		t.Fatalf("parse: %v %v", back, err)
	}
	if s, ok := Lookup(back, "bitvault_1.2.3_linux_amd64.tar.gz"); !ok || s != sum("l") {
		t.Errorf("lookup: %s %v", s, ok)
	}
	binary, err := Parse([]byte(sum("x") + " *x.zip\n"))
	if err != nil || binary[0].Name != "x.zip" {
		t.Errorf("binary-mode line: %v %v", binary, err)
	}
}

func TestFormatRejects(t *testing.T) {
	for name, sums := range map[string][]Sum{
		"duplicate":  {{"a", sum("a")}, {"a", sum("b")}},
		"directory":  {{"dir/a", sum("a")}},
		"upper hex":  {{"a", strings.ToUpper(sum("a"))}},
		"short hash": {{"a", "abc"}},
	} {
		if _, err := Format(sums); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := Parse([]byte("nonsense\n")); err == nil {
		t.Error("parse nonsense: no error")
	}
}

// TestSha256sumCheck: coreutils' sha256sum --check accepts the file.
func TestSha256sumCheck(t *testing.T) {
	bin, err := exec.LookPath("sha256sum")
	if err != nil {
		t.Skip("no sha256sum")
	}
	dir := t.TempDir()
	var sums []Sum
	for _, n := range []string{"b.tar.gz", "a.zip"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
		sums = append(sums, Sum{n, sum(n)})
	}
	data, err := Format(sums)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--check", "--strict", FileName)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum --check: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "a.zip"), []byte("tampered"), 0o644)
	cmd = exec.Command(bin, "--check", FileName)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("sha256sum --check accepted a tampered file:\n%s", out)
	}
}
