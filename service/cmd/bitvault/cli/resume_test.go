package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/client"
)

// TestFileResumeKey: the record of a local file is per target (server and remote path) and
// per size and modification time; Stale names the file's other records to the same target
// and its records from before the remote path was in the key, not those to other targets.
func TestFileResumeKey(t *testing.T) {
	cache := t.TempDir()
	a := &app{env: &Env{Getenv: func(k string) string { return map[string]string{EnvCacheDir: cache}[k] }}}
	local := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(local, []byte("content"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(local)
	if err != nil {
		t.Fatal(err)
	}
	const server = "https://bv.example"
	newStore := func(server, remote string) *fileResume {
		t.Helper()
		f, err := a.newFileResume(server, remote, local, st)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	save := func(f *fileResume, id string) {
		t.Helper()
		if err := f.Save(client.ResumeRecord{UploadID: id, Path: f.remote, Size: 7}); err != nil {
			t.Fatal(err)
		}
	}
	a1, a2, b, other := newStore(server, "/a.bin"), newStore(server, "/a.bin"), newStore(server, "/b.bin"), newStore("https://other.example", "/a.bin")
	if a1.path != a2.path {
		t.Errorf("same target, same file: records %s and %s", a1.path, a2.path)
	}
	if a1.path == b.path || a1.path == other.path {
		t.Errorf("other targets share the record %s", a1.path)
	}
	save(a1, "up-a")
	save(b, "up-b")
	save(other, "up-other")
	// The same file to /a.bin as it was earlier (another modification time).
	older := &fileResume{path: filepath.Join(filepath.Dir(a1.path), "older.json"), server: server, remote: "/a.bin", local: a1.local, modTime: st.ModTime().Add(-time.Hour)}
	save(older, "up-older")
	// A record written before the remote path was in the key.
	legacy, _ := json.Marshal(map[string]any{"upload_id": "up-legacy", "path": "/c.bin", "size": 7, "blake3": "x", "part_size": 5242880, "server": server, "local": a1.local})
	if err := os.WriteFile(filepath.Join(filepath.Dir(a1.path), "legacy.json"), legacy, 0o600); err != nil {
		t.Fatal(err)
	}

	if rec, err := b.Load(); err != nil || rec == nil || rec.UploadID != "up-b" {
		t.Fatalf("record of /b.bin = %+v, %v", rec, err)
	}
	tests := []struct {
		name  string
		store *fileResume
		want  []string
	}{
		{"/a.bin", a1, []string{"up-legacy", "up-older"}},
		{"/b.bin", b, []string{"up-legacy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, recs := tt.store.Stale()
			var got []string
			for _, r := range recs {
				got = append(got, r.UploadID)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("stale records %v, want %v", got, tt.want)
			}
		})
	}
}
