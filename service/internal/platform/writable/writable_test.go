package writable

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(dir, "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		dir     string
		wantErr string // "" means success
		// skipAsRoot: root bypasses directory permissions, so the mode-0500 case can only fail
		// for other users; the missing and not-a-directory cases cover failure under root.
		skipAsRoot bool
	}{
		{name: "writable dir", dir: dir},
		{name: "missing dir", dir: filepath.Join(dir, "missing"), wantErr: "no such file or directory"},
		{name: "not a directory", dir: file, wantErr: "not a directory"},
		{name: "path below a file", dir: filepath.Join(file, "sub"), wantErr: "not a directory"},
		{name: "mode 0500 dir", dir: readOnly, wantErr: "permission denied", skipAsRoot: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skipAsRoot && os.Geteuid() == 0 {
				t.Skip("skipping: running as root, which may write into a mode-0500 directory")
			}
			err := HealthCheck(tt.dir)(context.Background())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Check(%s) = %v, want nil", tt.dir, err)
				}
				entries, _ := os.ReadDir(tt.dir)
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), ".bitvault-writable-") {
						t.Errorf("left behind %s", e.Name())
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("Check(%s) = nil, want an error containing %q", tt.dir, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.dir) {
				t.Errorf("Check(%s) = %q, want it to name the dir and contain %q", tt.dir, err, tt.wantErr)
			}
		})
	}
}
