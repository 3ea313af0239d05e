package cli

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/client"
)

func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, Env{Stdout: &out, Stderr: &errb, Version: "1.0.0", Getenv: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

func TestParseInterspersed(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	o := fs.String("o", "text", "")
	q := fs.Bool("q", false, "")
	pos, err := parseInterspersed(fs, []string{"a", "-o", "json", "b", "-q", "--", "-c", "d"})
	if err != nil || *o != "json" || !*q || !slices.Equal(pos, []string{"a", "b", "-c", "d"}) {
		t.Errorf("pos %q, o %q, q %v, err %v", pos, *o, *q, err)
	}
}

func TestUsageAndExitCodes(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{EnvConfigDir: dir}
	for _, tc := range []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{nil, ExitUsage, "", "Commands:"},
		{[]string{"help"}, ExitOK, "sync", ""},
		{[]string{"help", "put"}, ExitOK, "", "Usage: bitvault put [flags] LOCAL REMOTE"},
		{[]string{"put", "--help"}, ExitOK, "", "-no-clobber"},
		{[]string{"help", "nope"}, ExitUsage, "", `unknown command "nope"`},
		{[]string{"nope"}, ExitUsage, "", `unknown command "nope"`},
		{[]string{"--server", "http://x.example", "-o", "json", "version"}, ExitOK, `"version": "1.0.0"`, ""},
		{[]string{"--version"}, ExitOK, "bitvault 1.0.0 (" + runtime.Version(), ""},
		{[]string{"ls", "-o", "yaml"}, ExitUsage, "", `--output "yaml": use text or json`},
		{[]string{"put", "a"}, ExitUsage, "", "missing arguments"},
		{[]string{"mv", "a", "b", "c"}, ExitUsage, "", `unexpected argument "c"`},
		{[]string{"ls"}, ExitAuth, "", "not logged in"},
		{[]string{"ls", "-o", "json"}, ExitAuth, "", `{"error":{"code":"unauthenticated","message":"not logged in"`},
		{[]string{"ls", "--server", "ftp://x"}, ExitAuth, "", "not logged in"},
		{[]string{"login", "--server", "ftp://x"}, ExitUsage, "", "want http(s)://host"},
		{[]string{"login"}, ExitUsage, "", "no server: give --server URL or set BITVAULT_SERVER"},
		{[]string{"logout"}, ExitOK, "Not logged in.", ""},
		{[]string{"share", "/a"}, ExitUsage, "", "give PATH and USER"},
		{[]string{"share", "--list", "--with-me"}, ExitUsage, "", "give one of"},
		{[]string{"share", "/a", "b@x", "--role", "owner"}, ExitUsage, "", `--role "owner"`},
		{[]string{"search", "x", "--limit", "0"}, ExitUsage, "", "--limit must be at least 1"},
	} {
		code, stdout, stderr := run(t, env, tc.args...)
		if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("bitvault %q: exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout ~ %q, stderr ~ %q", tc.args, code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
	// Logged in to another server.
	st := &credStore{dir: dir}
	if err := st.save(&credentials{Server: "http://a.example", RefreshToken: "r"}); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := run(t, env, "ls", "--server", "http://b.example"); code != ExitAuth || !strings.Contains(stderr, "not logged in to http://b.example (logged in to http://a.example)") {
		t.Errorf("another server: %d %q", code, stderr)
	}
}

func TestCredStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bitvault")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	st := &credStore{dir: dir}
	if c, err := st.load(); c != nil || err != nil {
		t.Fatalf("load without a file: %v, %v", c, err)
	}
	in := &credentials{Server: "http://x", AccessToken: "a", RefreshToken: "r", ExpiresAt: time.Now().Add(time.Hour).UTC().Truncate(time.Second)}
	if err := st.save(in); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		for p, want := range map[string]os.FileMode{dir: 0o700, st.path(): 0o600} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: %v, %v; want %v", p, fi.Mode().Perm(), err, want)
			}
		}
	}
	out, err := st.load()
	if err != nil || out.RefreshToken != "r" || !out.ExpiresAt.Equal(in.ExpiresAt) {
		t.Fatalf("load: %+v, %v", out, err)
	}

	// Lock: exclusive, and it returns the stored session.
	s, unlock, err := st.Lock(context.Background())
	if err != nil || s == nil || s.RefreshToken != "r" {
		t.Fatalf("Lock: %+v, %v", s, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := st.Lock(ctx); err == nil {
		t.Fatal("a second Lock succeeded while the first is held")
	}
	if err := st.Save(client.Session{AccessToken: "a2", RefreshToken: "r2"}); err != nil {
		t.Fatal(err)
	}
	unlock()
	s, unlock, err = st.Lock(context.Background())
	if err != nil || s.RefreshToken != "r2" {
		t.Fatalf("Lock after Save: %+v, %v", s, err)
	}
	unlock()
	// A lock left by a dead process is taken over.
	lock := st.path() + ".lock"
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-lockStale - time.Minute)
	_ = os.Chtimes(lock, old, old)
	if _, unlock, err := st.Lock(context.Background()); err != nil {
		t.Fatalf("stale lock: %v", err)
	} else {
		unlock()
	}
	// Save after logout does not bring the session back.
	if err := st.remove(); err != nil {
		t.Fatal(err)
	}
	if err := st.Save(client.Session{RefreshToken: "r3"}); err != nil {
		t.Fatal(err)
	}
	if c, _ := st.load(); c != nil {
		t.Errorf("Save resurrected the credentials: %+v", c)
	}
	// A corrupt file is reported.
	if err := os.WriteFile(st.path(), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := st.load(); err == nil || !strings.Contains(err.Error(), "bitvault login") {
		t.Errorf("corrupt file: %v", err)
	}
}

func TestParseExpiry(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"7d":                   now.Add(7 * 24 * time.Hour),
		"36h":                  now.Add(36 * time.Hour),
		"2026-02-01T00:00:00Z": time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
	} {
		if got, err := parseExpiry(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseExpiry(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0d", "-1h", "soon"} {
		if _, err := parseExpiry(in, now); err == nil {
			t.Errorf("parseExpiry(%q) succeeded", in)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3<<20 + 17: "3.0 MiB", 5 << 30: "5.0 GiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, tty: true, label: "/a.bin", start: time.Now()}
	p.update("upload", 512, 1024)
	p.update("upload", 1024, 1024)
	p.done("uploaded 1.0 KiB to /a.bin")
	out := buf.String()
	if !strings.Contains(out, "\r\033[Kuploading /a.bin  512 B / 1.0 KiB   50%") || !strings.Contains(out, "100%") || !strings.Contains(out, "\r\033[Kuploaded 1.0 KiB to /a.bin (") {
		t.Errorf("tty progress %q", out)
	}
	buf.Reset()
	p = &progress{w: &buf, label: "/a.bin", start: time.Now()}
	p.update("upload", 512, 1024)
	p.done("uploaded 1.0 KiB to /a.bin")
	if out := buf.String(); strings.Contains(out, "\r") || !strings.HasPrefix(out, "uploaded 1.0 KiB to /a.bin (") {
		t.Errorf("non-tty progress %q: want only the summary line", out)
	}
}

func TestSyncDesired(t *testing.T) {
	s := &syncer{st: &syncState{Nodes: map[string]*syncNode{
		"d1": {Name: "docs", Type: client.TypeFolder},
		"f1": {Parent: "d1", Name: "a.txt", Type: client.TypeFile},
		"d2": {Name: "old", Type: client.TypeFolder, Trashed: true},
		"f2": {Parent: "d2", Name: "b.txt", Type: client.TypeFile},   // in the trash through d2
		"f3": {Parent: "gone", Name: "c.txt", Type: client.TypeFile}, // its folder was purged
		"f4": {Name: StateDir, Type: client.TypeFile},                // would clash with the state
		"f5": {Parent: "d1", Name: `x\y`, Type: client.TypeFile},     // not a local name
	}}}
	want := s.desired()
	var rels []string
	for _, w := range want {
		rels = append(rels, w.rel)
	}
	slices.Sort(rels)
	if !slices.Equal(rels, []string{"docs", "docs/a.txt"}) {
		t.Errorf("desired %q", rels)
	}
	if _, ok := s.st.Nodes["f3"]; ok {
		t.Error("the orphan f3 was kept in the model")
	}
	if _, ok := s.st.Nodes["f2"]; !ok {
		t.Error("f2 (restorable with its folder) was dropped from the model")
	}
	if len(s.res.Warnings) != 2 {
		t.Errorf("warnings %q", s.res.Warnings)
	}
}
