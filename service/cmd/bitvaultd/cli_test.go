package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/cmd/bitvault/cli"
	"github.com/bitvault/bitvault/service/internal/client"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/processtest"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

// The CLI's end-to-end tests: the bitvault command line (package cli, run in process as
// main runs it) against bitvaultd's real handler stack (newStack).

const ownerPassword = "owner-password-1"

// cliRunner runs bitvault command lines with an environment.
type cliRunner struct {
	t   *testing.T
	env map[string]string
}

type cliResult struct {
	code           int
	stdout, stderr string
}

func (c *cliRunner) run(stdin string, args ...string) cliResult {
	c.t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), args, cli.Env{
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Version: "test",
		Getenv: func(k string) string { return c.env[k] },
	})
	return cliResult{code, out.String(), errb.String()}
}

// ok runs a command line that must succeed.
func (c *cliRunner) ok(args ...string) cliResult {
	c.t.Helper()
	r := c.run("", args...)
	if r.code != cli.ExitOK {
		c.t.Fatalf("bitvault %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// json runs a command line with --output json that must succeed and decodes its output.
func (c *cliRunner) json(v any, args ...string) {
	c.t.Helper()
	r := c.ok(append(args, "--output", "json")...)
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		c.t.Fatalf("bitvault %s --output json: %v\n%s", strings.Join(args, " "), err, r.stdout)
	}
}

// fail runs a command line that must fail with code, its stderr containing msg.
func (c *cliRunner) fail(code int, msg string, args ...string) cliResult {
	c.t.Helper()
	r := c.run("", args...)
	if r.code != code || !strings.Contains(r.stderr, msg) {
		c.t.Fatalf("bitvault %s: exit %d, stderr %q; want exit %d and %q", strings.Join(args, " "), r.code, r.stderr, code, msg)
	}
	return r
}

// newTenant creates tenant acme with its owner over the API, and adds member@acme.example.
func newTenant(t *testing.T, s *stack) {
	t.Helper()
	ctx := context.Background()
	c, err := client.New(s.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTenant(ctx, bootstrap, client.NewTenant{Slug: "acme", Name: "Acme", Owner: client.NewOwner{Email: "owner@acme.example", Password: ownerPassword}}); err != nil {
		t.Fatal(err)
	}
	// Users are added through the identity service (there is no endpoint for it yet).
	pool, err := db.Open(ctx, s.Env["BITVAULT_DATABASE_URL"], 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	cfg, err := identity.LoadConfig(func(k string) (string, bool) { v, ok := s.Env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	ids, err := identity.New(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ids.Login(ctx, identity.Credentials{Tenant: "acme", Email: "owner@acme.example", Password: ownerPassword})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ids.AddUser(ctx, tok.Principal, identity.NewUser{Email: "member@acme.example", Password: ownerPassword, Role: identity.RoleMember}); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

type nodeList struct {
	Nodes []client.Node `json:"nodes"`
}

func names(l nodeList) []string {
	var out []string
	for _, n := range l.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestCLI goes through the bitvault commands against bitvaultd with the filesystem backend.
func TestCLI(t *testing.T) {
	// No long-poll re-check within the test: only the signal wakes sync --watch.
	s := newStack(t, "fs", "BITVAULT_SYNC_RECHECK=1h")
	newTenant(t, s)
	config := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", config) // os.UserConfigDir on Linux
	t.Setenv("HOME", t.TempDir())
	credFile := filepath.Join(config, "bitvault", cli.CredentialsFile)
	if got, err := os.UserConfigDir(); err != nil || got != config {
		t.Skipf("os.UserConfigDir() = %q, %v: not $XDG_CONFIG_HOME on this platform", got, err)
	}
	bv := &cliRunner{t: t, env: map[string]string{}}
	work := t.TempDir()

	// Not logged in: exit 3.
	bv.fail(cli.ExitAuth, "not logged in", "ls", "--server", s.URL)

	// A wrong password: exit 3 with a clear message, nothing stored.
	r := bv.run("wrong-password-1\n", "login", "--server", s.URL, "--tenant", "acme", "--email", "owner@acme.example")
	if r.code != cli.ExitAuth || !strings.Contains(r.stderr, "invalid tenant, email or password") {
		t.Fatalf("login with a wrong password: exit %d, stderr %q; want 3 and the server's message", r.code, r.stderr)
	}
	if _, err := os.Stat(credFile); !os.IsNotExist(err) {
		t.Fatalf("credentials stored after a failed login: %v", err)
	}
	// Missing flags without a terminal: usage.
	bv.fail(cli.ExitUsage, "--tenant and --email are required", "login", "--server", s.URL)

	// Log in: the password from stdin; the credentials file is 0600 in a 0700 directory.
	r = bv.run(ownerPassword+"\n", "login", "--server", s.URL, "--tenant", "acme", "--email", "owner@acme.example", "-o", "json")
	if r.code != cli.ExitOK {
		t.Fatalf("login: exit %d: %s", r.code, r.stderr)
	}
	var login struct {
		Server, Tenant, Email, Role string
		CredentialsFile             string `json:"credentials_file"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &login); err != nil || login.Server != s.URL || login.Role != "owner" || login.CredentialsFile != credFile {
		t.Fatalf("login output %q (%v)", r.stdout, err)
	}
	if strings.Contains(r.stdout, "refresh_token") || strings.Contains(r.stdout, "access_token") {
		t.Errorf("login prints tokens: %s", r.stdout)
	}
	if m := mode(t, credFile); m != 0o600 {
		t.Errorf("credentials file mode %v, want 0600", m)
	}
	if m := mode(t, filepath.Dir(credFile)); m != 0o700 {
		t.Errorf("credentials directory mode %v, want 0700", m)
	}
	if out := bv.ok("whoami").stdout; !strings.Contains(out, "owner@acme.example (tenant acme, role owner) on "+s.URL) {
		t.Errorf("whoami = %q", out)
	}

	// put into a new folder, with progress on stderr; get gives the same bytes.
	v1 := randomBytes(t, 3<<20+17)
	local := filepath.Join(work, "report.bin")
	writeFile(t, local, v1)
	bv.ok("mkdir", "/docs")
	r = bv.ok("put", local, "/docs/")
	if !strings.Contains(r.stderr, "uploaded 3.0 MiB to /docs/report.bin") {
		t.Errorf("put stderr %q: want the progress summary", r.stderr)
	}
	if !strings.Contains(r.stdout, "/docs/report.bin  version 1") {
		t.Errorf("put stdout %q", r.stdout)
	}
	out := filepath.Join(work, "out.bin")
	bv.ok("get", "/docs/report.bin", out)
	if !bytes.Equal(readFile(t, out), v1) {
		t.Fatal("get: the bytes differ from the uploaded ones")
	}
	if r := bv.ok("get", "/docs/report.bin", "-"); r.stdout != string(v1) {
		t.Fatal("get to stdout: the bytes differ")
	}

	// A second version; --output json everywhere.
	v2 := append(bytes.Clone(v1[:1000]), []byte("version two")...)
	writeFile(t, local, v2)
	var commit client.CommitResult
	bv.json(&commit, "put", local, "docs/report.bin")
	if commit.Version.Number != 2 || commit.Node.Path != "/docs/report.bin" || commit.Version.Size != int64(len(v2)) {
		t.Fatalf("second put: %+v", commit)
	}
	var versions struct {
		Path     string           `json:"path"`
		Versions []client.Version `json:"versions"`
	}
	bv.json(&versions, "versions", "/docs/report.bin")
	if len(versions.Versions) != 2 || versions.Versions[0].Number != 2 || versions.Versions[1].Size != int64(len(v1)) {
		t.Fatalf("versions: %+v", versions)
	}
	if out := bv.ok("versions", "/docs/report.bin").stdout; !strings.Contains(out, "VERSION") || !strings.Contains(out, "2*") {
		t.Errorf("versions text:\n%s", out)
	}
	var got struct {
		Local   string         `json:"local"`
		Size    int64          `json:"size"`
		Version client.Version `json:"version"`
	}
	bv.json(&got, "get", "/docs/report.bin", out, "--version", "1")
	if got.Size != int64(len(v1)) || got.Version.Number != 1 || !bytes.Equal(readFile(t, out), v1) {
		t.Fatalf("get --version 1: %+v", got)
	}
	bv.ok("get", "/docs/report.bin", work) // into a directory: its name
	if !bytes.Equal(readFile(t, filepath.Join(work, "report.bin")), v2) {
		t.Fatal("get into a directory: not the current version")
	}

	// ls.
	var ls nodeList
	bv.json(&ls, "ls")
	if !contains(names(ls), "docs") || ls.Nodes[0].Type != client.TypeFolder {
		t.Fatalf("ls /: %+v", ls)
	}
	if out := bv.ok("ls", "/docs").stdout; !strings.Contains(out, "report.bin") || !strings.Contains(out, "SIZE") {
		t.Errorf("ls /docs:\n%s", out)
	}

	// mv: rename, then into a folder.
	var moved client.Node
	bv.json(&moved, "mv", "/docs/report.bin", "/docs/renamed.bin")
	if moved.Path != "/docs/renamed.bin" {
		t.Fatalf("mv: %+v", moved)
	}
	bv.ok("mkdir", "/archive")
	bv.ok("mkdir", "-p", "/archive") // exists: fine with -p
	bv.fail(cli.ExitError, "exists already", "mkdir", "/archive")
	if out := bv.ok("mv", "/docs/renamed.bin", "/archive").stdout; !strings.Contains(out, "/docs/renamed.bin -> /archive/renamed.bin") {
		t.Errorf("mv into a folder: %q", out)
	}
	bv.json(&ls, "ls", "/docs")
	if len(ls.Nodes) != 0 {
		t.Errorf("ls /docs after mv: %v", names(ls))
	}

	// cp: the copy has the same bytes.
	var copied client.CommitResult
	bv.json(&copied, "cp", "/archive/renamed.bin", "/docs/copy.bin")
	if copied.Node.Path != "/docs/copy.bin" || !copied.Deduplicated {
		t.Fatalf("cp: %+v", copied)
	}
	bv.ok("get", "/docs/copy.bin", out)
	if !bytes.Equal(readFile(t, out), v2) {
		t.Fatal("cp: the copy's bytes differ")
	}

	// rm puts in the trash; restore takes it back.
	bv.ok("rm", "/docs/copy.bin")
	bv.json(&ls, "ls", "/docs")
	if len(ls.Nodes) != 0 {
		t.Errorf("ls /docs after rm: %v", names(ls))
	}
	bv.json(&ls, "ls", "--trash")
	if !contains(names(ls), "copy.bin") {
		t.Errorf("ls --trash: %v", names(ls))
	}
	var restored client.Node
	bv.json(&restored, "restore", "/docs/copy.bin")
	if restored.Path != "/docs/copy.bin" || restored.TrashedAt != nil {
		t.Fatalf("restore: %+v", restored)
	}
	bv.ok("get", "/docs/copy.bin", out)
	if !bytes.Equal(readFile(t, out), v2) {
		t.Fatal("restored file's bytes differ")
	}
	bv.ok("rm", "--purge", "/docs/copy.bin")
	bv.json(&ls, "ls", "--trash")
	if contains(names(ls), "copy.bin") {
		t.Errorf("rm --purge left it in the trash: %v", names(ls))
	}
	bv.fail(cli.ExitError, "not in the trash", "restore", "/docs/copy.bin")

	// Errors: a clear message (text), the API's error body (json), usage errors exit 2.
	bv.fail(cli.ExitError, "/docs/nope.txt: no such file or folder", "get", "/docs/nope.txt", out)
	r = bv.run("", "get", "/docs/nope.txt", out, "-o", "json")
	var apiErr struct {
		Error client.Error `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stderr), &apiErr); err != nil || r.code != cli.ExitError || apiErr.Error.Code != client.CodeNotFound {
		t.Errorf("get --output json of a missing file: exit %d, stderr %q", r.code, r.stderr)
	}
	bv.fail(cli.ExitUsage, "missing arguments", "put", local)
	bv.fail(cli.ExitUsage, "flag provided but not defined", "ls", "--frobnicate")
	bv.fail(cli.ExitUsage, "is a directory", "put", work, "/docs/")

	// The session refreshes itself: an expired access token is renewed before the request,
	// a refused one after it; the rotated tokens are stored.
	creds := readCreds(t, credFile)
	creds["expires_at"] = time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	writeCreds(t, credFile, creds)
	bv.ok("ls", "/archive")
	after := readCreds(t, credFile)
	if after["refresh_token"] == creds["refresh_token"] {
		t.Fatal("an expired access token was not refreshed and stored")
	}
	if m := mode(t, credFile); m != 0o600 {
		t.Errorf("credentials file mode after a refresh %v, want 0600", m)
	}
	after["access_token"] = "garbage"
	writeCreds(t, credFile, after)
	bv.ok("ls", "/archive")
	if again := readCreds(t, credFile); again["refresh_token"] == after["refresh_token"] || again["access_token"] == "garbage" {
		t.Fatal("a refused access token was not refreshed")
	}

	// An API token instead of the session.
	apiTok := createAPIToken(t, s.URL, readCreds(t, credFile))
	tokenRunner := &cliRunner{t: t, env: map[string]string{cli.EnvAPIToken: apiTok, cli.EnvServer: s.URL, cli.EnvConfigDir: t.TempDir()}}
	tokenRunner.json(&ls, "ls", "/archive")
	if !contains(names(ls), "renamed.bin") {
		t.Errorf("ls with an API token: %v", names(ls))
	}

	t.Run("sync", func(t *testing.T) { testCLISync(t, s, bv, work) })
	t.Run("sync --watch", func(t *testing.T) { testCLISyncWatch(t, s, bv, work) })
	t.Run("sharing", func(t *testing.T) { testCLISharing(t, s, bv, v2) })
	t.Run("search", func(t *testing.T) {
		var res struct {
			Results []client.SearchHit `json:"results"`
		}
		bv.json(&res, "search", "final")
		if len(res.Results) == 0 || res.Results[0].Path != "/docs/final.bin" {
			t.Errorf("search final: %+v", res.Results)
		}
		if out := bv.ok("search", "nothing-like-this").stdout; out != "" {
			t.Errorf("search without results printed %q", out)
		}
	})

	// logout ends the session and forgets it.
	if out := bv.ok("logout").stdout; !strings.Contains(out, "Logged out of "+s.URL) {
		t.Errorf("logout: %q", out)
	}
	if _, err := os.Stat(credFile); !os.IsNotExist(err) {
		t.Errorf("credentials file still there after logout: %v", err)
	}
	bv.fail(cli.ExitAuth, "not logged in", "ls")
	if out := bv.ok("logout").stdout; !strings.Contains(out, "Not logged in") {
		t.Errorf("second logout: %q", out)
	}

	// All that traffic is what service/api/openapi.yaml describes.
	t.Logf("%d operations checked against the OpenAPI document", s.checkTraffic(t))
}

func readCreds(t *testing.T, path string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(readFile(t, path), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeCreds(t *testing.T, path string, m map[string]any) {
	t.Helper()
	b, _ := json.Marshal(m)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// createAPIToken creates an API token with the stored session (rotating it: the new tokens
// are written back).
func createAPIToken(t *testing.T, server string, creds map[string]any) string {
	t.Helper()
	c, err := client.New(server, client.Options{Session: &client.Session{AccessToken: creds["access_token"].(string), RefreshToken: creds["refresh_token"].(string)}})
	if err != nil {
		t.Fatal(err)
	}
	days := 1
	tok, err := c.CreateAPIToken(context.Background(), client.NewAPIToken{Name: "cli test", Scopes: []string{"files:read"}, ExpiresInDays: &days})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

// testCLISync: sync pulls the namespace into a folder, then the changes since.
func testCLISync(t *testing.T, s *stack, bv *cliRunner, work string) {
	dir := filepath.Join(t.TempDir(), "vault")
	var res struct {
		Cursor     int64    `json:"cursor"`
		FullResync bool     `json:"full_resync"`
		Downloaded []string `json:"downloaded"`
		Deleted    []string `json:"deleted"`
		Moved      []struct{ From, To string }
		Kept       []string `json:"kept"`
	}
	bv.json(&res, "sync", dir)
	if !res.FullResync || res.Cursor == 0 || !contains(res.Downloaded, "archive/renamed.bin") {
		t.Fatalf("first sync: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "docs")); err != nil {
		t.Errorf("the empty folder docs was not created: %v", err)
	}
	remote, _ := os.ReadFile(filepath.Join(work, "report.bin")) // v2
	if !bytes.Equal(readFile(t, filepath.Join(dir, "archive", "renamed.bin")), remote) {
		t.Fatal("synced bytes differ")
	}
	first := res.Cursor

	// Nothing changed: nothing to do.
	bv.json(&res, "sync", dir)
	if res.FullResync || res.Cursor != first || len(res.Downloaded) != 0 {
		t.Fatalf("second sync: %+v", res)
	}

	// Remote changes: a new file, a move, a new version, a trashed file, a local edit kept.
	newFile := filepath.Join(work, "notes.txt")
	writeFile(t, newFile, []byte("notes"))
	bv.ok("put", newFile, "/docs/notes.txt")
	bv.ok("put", newFile, "/docs/gone.txt")
	bv.ok("sync", dir)
	writeFile(t, filepath.Join(dir, "docs", "notes.txt"), []byte("edited locally"))
	bv.ok("mv", "/archive/renamed.bin", "/docs/final.bin")
	writeFile(t, newFile, []byte("notes, version two"))
	bv.ok("put", newFile, "/docs/notes.txt")
	bv.ok("rm", "/docs/gone.txt")
	bv.ok("rm", "/archive")
	bv.json(&res, "sync", dir)
	if res.FullResync || res.Cursor <= first {
		t.Fatalf("third sync: %+v", res)
	}
	want := map[string]string{"docs/final.bin": string(remote), "docs/notes.txt": "notes, version two"}
	for p, content := range want {
		if b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p))); err != nil || string(b) != content {
			t.Errorf("%s after sync: %q, %v", p, b, err)
		}
	}
	for _, p := range []string{"docs/gone.txt", "archive"} {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p))); !os.IsNotExist(err) {
			t.Errorf("%s still there after sync: %v", p, err)
		}
	}
	if len(res.Moved) != 1 || res.Moved[0].From != "archive/renamed.bin" || res.Moved[0].To != "docs/final.bin" {
		t.Errorf("moves: %+v", res.Moved)
	}
	if len(res.Kept) != 1 || !strings.HasPrefix(res.Kept[0], "docs/notes.txt.local-") {
		t.Errorf("kept: %v", res.Kept)
	} else if b := readFile(t, filepath.Join(dir, filepath.FromSlash(res.Kept[0]))); string(b) != "edited locally" {
		t.Errorf("the local edit was not kept: %q", b)
	}
	var state struct {
		Cursor   int64  `json:"cursor"`
		DeviceID string `json:"device_id"`
	}
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, cli.StateDir, "sync.json")), &state); err != nil || state.Cursor != res.Cursor || state.DeviceID == "" {
		t.Errorf("sync state: %+v, %v", state, err)
	}

	// The journal was compacted past the folder's cursor: 409 cursor_stale, and sync
	// resyncs fully, ending with the same tree.
	writeFile(t, newFile, []byte("after compaction"))
	bv.ok("put", newFile, "/docs/late.txt")
	bv.ok("rm", "/docs/notes.txt")
	super := pgtest.Pool(t, s.SuperDSN)
	if _, err := super.Exec(context.Background(), `INSERT INTO journal_horizons (tenant_id, horizon)
SELECT tenant_id, seq FROM journal_counters WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'acme')`); err != nil {
		t.Fatal(err)
	}
	bv.json(&res, "sync", dir)
	if !res.FullResync || !contains(res.Downloaded, "docs/late.txt") || !contains(res.Deleted, "docs/notes.txt") {
		t.Fatalf("sync after compaction: %+v", res)
	}
	if b := readFile(t, filepath.Join(dir, "docs", "late.txt")); string(b) != "after compaction" {
		t.Errorf("late.txt: %q", b)
	}
	if !bytes.Equal(readFile(t, filepath.Join(dir, "docs", "final.bin")), remote) {
		t.Error("final.bin changed in the full resync")
	}
	bv.ok("restore", "/archive") // for the tests after this one
}

// testCLISyncWatch: sync --watch applies the remote changes as they come (its long poll
// woken by the commit, not by a re-check: there is none within the test, nor by the end of
// its 30s wait), printing them, until its context ends (Ctrl-C): then it exits 0.
func testCLISyncWatch(t *testing.T, s *stack, bv *cliRunner, work string) {
	dir := filepath.Join(t.TempDir(), "watched")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errOut lockedBuffer
	done := make(chan int, 1)
	parked := s.Logs.Count("long poll waiting")
	go func() {
		done <- cli.Run(ctx, []string{"sync", "--watch", "-q", dir}, cli.Env{
			Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Version: "test",
			Getenv: func(k string) string { return bv.env[k] },
		})
	}()
	waitOutput := func(want string, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !strings.Contains(out.String(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("sync --watch printed %q, stderr %q; want %q within %s", out.String(), errOut.String(), want, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitOutput("full sync", 30*time.Second)
	// Its long poll has read the journal and waits: the commit cannot be in that read.
	deadline := time.Now().Add(15 * time.Second)
	for s.Logs.Count("long poll waiting") <= parked {
		if time.Now().After(deadline) {
			t.Fatal("sync --watch's long poll is not waiting")
		}
		time.Sleep(10 * time.Millisecond)
	}
	local := filepath.Join(work, "watched.txt")
	writeFile(t, local, []byte("seen live"))
	bv.ok("put", local, "/docs/watched.txt")
	// Well within the long poll's 30s wait: only the signal can have woken it.
	waitOutput("downloaded docs/watched.txt", 15*time.Second)
	if b := readFile(t, filepath.Join(dir, "docs", "watched.txt")); string(b) != "seen live" {
		t.Errorf("watched.txt: %q", b)
	}
	cancel()
	select {
	case code := <-done:
		if code != cli.ExitOK || errOut.String() != "" {
			t.Errorf("sync --watch ended with exit %d, stderr %q; want 0 and nothing", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sync --watch did not end with its context")
	}
}

// lockedBuffer is a bytes.Buffer written and read concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testCLISharing: share with another user of the tenant, who sees it; a public link
// downloads the file without credentials.
func testCLISharing(t *testing.T, s *stack, bv *cliRunner, content []byte) {
	var share client.Share
	bv.json(&share, "share", "/docs", "member@acme.example", "--role", "editor")
	if share.Role != "editor" || share.UserEmail != "member@acme.example" {
		t.Fatalf("share: %+v", share)
	}
	var shares struct {
		Shares []client.Share `json:"shares"`
	}
	bv.json(&shares, "share", "--list", "/docs")
	if len(shares.Shares) != 1 {
		t.Fatalf("share --list: %+v", shares)
	}
	member := &cliRunner{t: t, env: map[string]string{cli.EnvConfigDir: t.TempDir(), cli.EnvServer: s.URL}}
	if r := member.run(ownerPassword+"\n", "login", "--tenant", "acme", "--email", "member@acme.example"); r.code != 0 {
		t.Fatalf("member login: %d %s", r.code, r.stderr)
	}
	var withMe struct {
		Shares []client.SharedNode `json:"shares"`
	}
	member.json(&withMe, "share", "--with-me")
	if len(withMe.Shares) != 1 || withMe.Shares[0].Path != "/docs" {
		t.Errorf("share --with-me: %+v", withMe)
	}
	bv.ok("share", "--revoke", "/docs", "member@acme.example")
	bv.json(&shares, "share", "--list", "/docs")
	if len(shares.Shares) != 0 {
		t.Errorf("share --list after --revoke: %+v", shares)
	}

	var link struct {
		URL   string      `json:"url"`
		Token string      `json:"token"`
		Link  client.Link `json:"link"`
	}
	bv.json(&link, "link", "/docs/final.bin", "--expires", "7d")
	if !strings.HasPrefix(link.URL, s.URL+"/v1/links/") || link.Link.ExpiresAt == nil {
		t.Fatalf("link: %+v", link)
	}
	resp, err := http.Get(link.URL) // anyone, following the redirect
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(b, content) {
		t.Fatalf("GET the link: %d, %d bytes", resp.StatusCode, len(b))
	}
	var links struct {
		Links []client.Link `json:"links"`
	}
	bv.json(&links, "link", "--list", "/docs/final.bin")
	if len(links.Links) != 1 {
		t.Fatalf("link --list: %+v", links)
	}
	bv.ok("link", "--revoke", links.Links[0].ID, "/docs/final.bin")
	if resp, err := http.Get(link.URL); err != nil || resp.StatusCode == http.StatusOK {
		t.Errorf("GET a revoked link: %v, %v", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
}

// TestCLIS3 puts and gets through S3 presigned URLs (signed headers, a redirect to another
// host that must not get the bearer token).
func TestCLIS3(t *testing.T) {
	s := newStack(t, "s3")
	newTenant(t, s)
	bv := &cliRunner{t: t, env: map[string]string{cli.EnvConfigDir: t.TempDir(), cli.EnvServer: s.URL}}
	if r := bv.run(ownerPassword+"\n", "login", "--tenant", "acme", "--email", "owner@acme.example"); r.code != 0 {
		t.Fatalf("login: %d %s", r.code, r.stderr)
	}
	work := t.TempDir()
	for _, size := range []int{0, 1, 5 << 20} {
		content := randomBytes(t, size)
		local := filepath.Join(work, "in")
		writeFile(t, local, content)
		bv.ok("put", local, "/s3/file.bin")
		bv.ok("get", "/s3/file.bin", filepath.Join(work, "out"))
		if !bytes.Equal(readFile(t, filepath.Join(work, "out")), content) {
			t.Fatalf("%d bytes through S3: the bytes differ", size)
		}
	}
	s.checkTraffic(t)
}

// TestCLIBinary runs the real, static bitvault binary: exit codes are the process's.
func TestCLIBinary(t *testing.T) {
	s := newStack(t, "fs")
	newTenant(t, s)
	bin := processtest.Build(t, "../bitvault", "-trimpath", "-ldflags", "-X main.version=9.9.9")
	config := t.TempDir()
	run := func(stdin string, args ...string) (int, string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), cli.EnvConfigDir + "=" + config, cli.EnvServer + "=" + s.URL}
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), stderr.String()
	}
	if code, stderr := run("wrong-password-1\n", "login", "--tenant", "acme", "--email", "owner@acme.example"); code != cli.ExitAuth || !strings.Contains(stderr, "invalid tenant, email or password") {
		t.Errorf("login with a wrong password: exit %d, %q", code, stderr)
	}
	if code, stderr := run(ownerPassword+"\n", "login", "--tenant", "acme", "--email", "owner@acme.example"); code != 0 {
		t.Fatalf("login: exit %d, %s", code, stderr)
	}
	if code, stderr := run("", "ls", "/"); code != 0 {
		t.Errorf("ls: exit %d, %s", code, stderr)
	}
	if code, _ := run("", "ls", "--bogus"); code != cli.ExitUsage {
		t.Errorf("bad flag: exit %d, want %d", code, cli.ExitUsage)
	}
	if code, stderr := run("", "get", "/nope"); code != cli.ExitError || !strings.Contains(stderr, "no such file") {
		t.Errorf("get /nope: exit %d, %q", code, stderr)
	}
}
