package archive

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var epoch = time.Unix(1767225600, 0) // 2026-01-01T00:00:00Z

// fixture writes the same files into a fresh directory, with the given file
// mode and modification time (which must not matter).
func fixture(t *testing.T, perm os.FileMode, mtime time.Time) []File {
	t.Helper()
	dir := t.TempDir()
	files := []File{
		{Name: "bitvault", Executable: true},
		{Name: "README.md"},
		{Name: "LICENSE"},
	}
	for i := range files {
		p := filepath.Join(dir, files[i].Name)
		content := strings.Repeat("content of "+files[i].Name+"\n", 100)
		if err := os.WriteFile(p, []byte(content), perm); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		files[i].Source = p
	}
	return files
}

func reversed(fs []File) []File {
	out := make([]File, len(fs))
	for i, f := range fs {
		out[len(fs)-1-i] = f
	}
	return out
}

func TestDeterministic(t *testing.T) {
	var golden strings.Builder
	for _, format := range []Format{TarGz, Zip} {
		t.Run(string(format), func(t *testing.T) {
			dir := t.TempDir()
			a, err := Create(filepath.Join(dir, "a."+string(format)), format, fixture(t, 0o600, time.Now()), epoch)
			if err != nil {
				t.Fatal(err)
			}
			// Other sources, modes, times and order: the same bytes.
			b, err := Create(filepath.Join(dir, "b."+string(format)), format, reversed(fixture(t, 0o777, time.Unix(42, 0))), epoch)
			if err != nil {
				t.Fatal(err)
			}
			ab, _ := os.ReadFile(a.Path)
			bb, _ := os.ReadFile(b.Path)
			if !bytes.Equal(ab, bb) || a.SHA256 != b.SHA256 || a.Size != int64(len(ab)) {
				t.Fatalf("two archives of the same files differ: %s (%d B) vs %s (%d B)", a.SHA256, a.Size, b.SHA256, b.Size)
			}
			if st, _ := os.Stat(a.Path); st.Mode().Perm() != 0o644 {
				t.Errorf("archive file mode %v, want 0644", st.Mode().Perm())
			}
			entries, err := Read(a.Path)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name)
				wantMode := os.FileMode(0o644)
				if e.Name == "bitvault" {
					wantMode = 0o755
				}
				if e.Mode != wantMode || !e.ModTime.Equal(epoch) || e.Uid != 0 || e.Gid != 0 {
					t.Errorf("%s: mode %v mtime %v uid %d gid %d, want %v %v 0 0", e.Name, e.Mode, e.ModTime, e.Uid, e.Gid, wantMode, epoch)
				}
				if !strings.HasPrefix(string(e.Data), "content of "+e.Name) {
					t.Errorf("%s: wrong content", e.Name)
				}
			}
			if got := strings.Join(names, " "); got != "LICENSE README.md bitvault" {
				t.Errorf("entries %q, want sorted LICENSE README.md bitvault", got)
			}
			if format == TarGz {
				zr, err := gzip.NewReader(bytes.NewReader(ab))
				if err != nil {
					t.Fatal(err)
				}
				if zr.Name != "" || !zr.ModTime.IsZero() || zr.OS != 255 {
					t.Errorf("gzip header name %q mtime %v OS %d, want none, none, 255", zr.Name, zr.ModTime, zr.OS)
				}
			}
			fmt.Fprintf(&golden, "%s  %s  %d\n", a.SHA256, format, a.Size)
			// Extract gives back the files.
			out := t.TempDir()
			if err := Extract(a.Path, out); err != nil {
				t.Fatal(err)
			}
			if st, err := os.Stat(filepath.Join(out, "bitvault")); err != nil || st.Mode().Perm() != 0o755 {
				t.Errorf("extracted binary: %v %v", st, err)
			}
		})
	}
	// The bytes themselves are pinned: a change in how archives are written
	// (or in Go's compressor) shows up here, not as a surprise on a release.
	goldenPath := filepath.Join("testdata", "archives.golden")
	if *update {
		if err := os.WriteFile(goldenPath, []byte(golden.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if golden.String() != string(want) {
		t.Errorf("archives differ from %s (go test -update if intended):\ngot:\n%swant:\n%s", goldenPath, golden.String(), want)
	}
}

func TestWriteRejects(t *testing.T) {
	files := fixture(t, 0o644, time.Now())
	for _, tc := range []struct {
		name   string
		format Format
		files  []File
		mtime  time.Time
		want   string
	}{
		{"no time", TarGz, files, time.Time{}, "SOURCE_DATE_EPOCH"},
		{"unknown format", Format("rar"), files, epoch, `format "rar"`},
		{"duplicate", TarGz, append(files, files[0]), epoch, "listed twice"},
		{"absolute name", Zip, []File{{Name: "/etc/passwd", Source: files[0].Source}}, epoch, "clean relative name"},
		{"escaping name", TarGz, []File{{Name: "../x", Source: files[0].Source}}, epoch, "clean relative name"},
		{"missing source", Zip, []File{{Name: "x", Source: "/nonexistent"}}, epoch, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Write(&bytes.Buffer{}, tc.format, tc.files, tc.mtime)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFormatFor(t *testing.T) {
	for goos, want := range map[string]Format{"linux": TarGz, "darwin": TarGz, "windows": Zip} {
		if got := FormatFor(goos); got != want {
			t.Errorf("FormatFor(%s) = %s, want %s", goos, got, want)
		}
	}
}
