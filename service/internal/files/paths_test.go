package files

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSplitPath(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "/a/b.txt", want: []string{"a", "b.txt"}},
		{in: "a/b.txt/", want: []string{"a", "b.txt"}},
		{in: "/e\u0301t\u00e9", want: []string{"\u00e9t\u00e9"}},
		{in: "/ spaced name ", want: []string{" spaced name "}},
		{in: "", wantErr: "names no file"},
		{in: "///", wantErr: "names no file"},
		{in: "/a//b", wantErr: "empty"},
		{in: "/a/./b", wantErr: `"."`},
		{in: "/a/../b", wantErr: `".."`},
		{in: "/\xff", wantErr: "UTF-8"},
		{in: "/a\x00b", wantErr: "NUL"},
		{in: "/" + strings.Repeat("n", 256), wantErr: "longer than 255"},
		{in: strings.Repeat("/d", MaxDepth+1), wantErr: "deeper"},
	}
	for _, tt := range tests {
		got, err := splitPath(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("splitPath(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("splitPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestConflictedName(t *testing.T) {
	at := time.Date(2026, 11, 26, 20, 15, 30, 0, time.UTC)
	tests := []struct {
		name    string
		attempt int
		want    string
	}{
		{"report.txt", 1, "report (conflicted copy 2026-11-26 201530).txt"},
		{"archive.tar.gz", 1, "archive.tar (conflicted copy 2026-11-26 201530).gz"},
		{"Makefile", 2, "Makefile (conflicted copy 2026-11-26 201530 2)"},
		{".bashrc", 1, ".bashrc (conflicted copy 2026-11-26 201530)"},
	}
	for _, tt := range tests {
		if got := conflictedName(tt.name, at, tt.attempt); got != tt.want {
			t.Errorf("conflictedName(%q, %d) = %q, want %q", tt.name, tt.attempt, got, tt.want)
		}
	}
	long := strings.Repeat("\u00e9", 120) + ".txt" // 244 bytes
	got := conflictedName(long, at, 1)
	if len(got) > MaxNameLen || !strings.HasSuffix(got, "201530).txt") {
		t.Errorf("conflictedName of a long name = %q (%d bytes)", got, len(got))
	}
	if _, err := normalizeName(got); err != nil {
		t.Errorf("conflicted name is not a valid name: %v", err)
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := cursor{Name: "n\u00e4me", ID: "aaaaaaaa-0000-4000-8000-000000000001"}
	got, err := decodeCursor(encodeCursor(c))
	if err != nil || got.Name != c.Name || got.ID != c.ID {
		t.Errorf("round trip = %+v, %v", got, err)
	}
	for _, bad := range []string{"!", "e30", encodeCursor(cursor{ID: "x"})} {
		if _, err := decodeCursor(bad); err == nil {
			t.Errorf("decodeCursor(%q) accepted", bad)
		}
	}
}

func TestLoadConfig(t *testing.T) {
	env := map[string]string{EnvQuotaBytes: "1000", EnvQuotaFiles: "0", EnvUploadTTL: "2h"}
	c, err := LoadConfig(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil || c.BytesLimit != 1000 || c.FilesLimit != 0 || c.UploadTTL != 2*time.Hour || c.DownloadTTL != 0 {
		t.Errorf("LoadConfig = %+v, %v", c, err)
	}
	env = map[string]string{EnvQuotaBytes: "-1", EnvQuotaFiles: "many", EnvUploadTTL: "1s", EnvDownloadTTL: "soon"}
	_, err = LoadConfig(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	for k := range env {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("error %v does not name %s", err, k)
		}
	}
}
