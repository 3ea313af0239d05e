package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"lukechampine.com/blake3"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/platform/processtest"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
	"github.com/bitvault/bitvault/service/internal/testsupport/s3test"
)

func TestMain(m *testing.M) {
	// The template is migrated so that the cluster has the app role; some tests use empty
	// databases that bitvaultd itself migrates.
	code := s3test.Main(func() int {
		return pgtest.Main(m, pgtest.Options{Template: func(ctx context.Context, ownerDSN string) error {
			_, err := db.MigrateURL(ctx, ownerDSN, 0, nil)
			return err
		}})
	})
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// shared is the bitvaultd binary built once for the tests that need no special flags.
var shared struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

func buildOnce(t *testing.T) string {
	t.Helper()
	shared.once.Do(func() {
		if shared.dir, shared.err = os.MkdirTemp("", "bitvaultd-test-*"); shared.err != nil {
			return
		}
		shared.bin = shared.dir + "/bitvaultd"
		cmd := exec.Command("go", "build", "-o", shared.bin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			shared.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.bin
}

var (
	tokenKey  = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	bootstrap = strings.Repeat("b", 32)
)

// post sends a JSON body with an optional bearer token.
func post(t *testing.T, url, bearer, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// freeAddr returns a local address with a free port, for a bitvaultd whose presigned URLs
// must name its own address before it starts.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// acmeOwner creates the tenant acme on the bitvaultd at base and returns its owner's
// access token.
func acmeOwner(t *testing.T, base string) string {
	t.Helper()
	if code, body := post(t, base+"/v1/tenants", bootstrap, `{"slug":"acme","name":"Acme","owner":{"email":"owner@acme.example","password":"owner-password-1"}}`); code != http.StatusCreated {
		t.Fatalf("POST /v1/tenants = %d %s", code, body)
	}
	_, body := post(t, base+"/v1/auth/login", "", `{"tenant":"acme","email":"owner@acme.example","password":"owner-password-1"}`)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("login: %s", body)
	}
	return tok.AccessToken
}

// declaredUpload is the answer of POST /v1/files.
type declaredUpload struct {
	UploadID string `json:"upload_id"`
	Upload   struct {
		Method  string              `json:"method"`
		URL     string              `json:"url"`
		Headers map[string][]string `json:"headers"`
	} `json:"upload"`
}

// put sends content to the upload's presigned request and returns the status.
func (up declaredUpload) put(t *testing.T, content []byte) int {
	t.Helper()
	req, _ := http.NewRequest(up.Upload.Method, up.Upload.URL, bytes.NewReader(content))
	for k, vs := range up.Upload.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func blake3Hex(b []byte) string {
	sum := blake3.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// uploadFile declares, uploads and commits content at path on the bitvaultd at base, as
// token; it returns the commit's answer (201).
func uploadFile(t *testing.T, base, token, path string, content []byte) []byte {
	t.Helper()
	code, body := post(t, base+"/v1/files", token, fmt.Sprintf(`{"path":%q,"size":%d,"blake3":%q}`, path, len(content), blake3Hex(content)))
	var up declaredUpload
	if err := json.Unmarshal(body, &up); err != nil || code != http.StatusCreated {
		t.Fatalf("POST /v1/files = %d %s", code, body)
	}
	if code := up.put(t, content); code != http.StatusOK {
		t.Fatalf("PUT to %s = %d", up.Upload.URL, code)
	}
	code, body = post(t, base+"/v1/files/commit", token, fmt.Sprintf(`{"upload_id":%q}`, up.UploadID))
	if code != http.StatusCreated {
		t.Fatalf("commit = %d %s", code, body)
	}
	return body
}

func baseEnv(t *testing.T, extra ...string) []string {
	return append([]string{
		"BITVAULT_HTTP_ADDR=127.0.0.1:0",
		"BITVAULT_DRAIN_DELAY=0s",
		"BITVAULT_SHUTDOWN_TIMEOUT=5s",
		"BITVAULT_DATA_DIR=" + t.TempDir(),
		"BITVAULT_STORAGE=none",
		"PATH=" + os.Getenv("PATH"),
	}, extra...)
}

// runCmd runs bin with args, env and stdin to completion and returns its exit code and the
// JSON log lines it printed.
func runCmd(t *testing.T, bin string, env []string, stdin string, args ...string) (int, []map[string]any) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("stdout line is not JSON: %q", l)
			continue
		}
		lines = append(lines, m)
	}
	if stderr.Len() > 0 {
		t.Logf("stderr: %s", stderr.String())
	}
	return cmd.ProcessState.ExitCode(), lines
}

func hasMsg(lines []map[string]any, msg string) map[string]any {
	for _, l := range lines {
		if l["msg"] == msg {
			return l
		}
	}
	return nil
}

// TestBinaryWithPostgres starts two replicas at once on an empty database with the owner URL:
// both migrate behind the advisory lock and become ready; then the identity API works end to
// end through one of them, and both drain cleanly on SIGTERM.
func TestBinaryWithPostgres(t *testing.T) {
	d := pgtest.NewEmpty(t)
	bin := buildOnce(t)
	env := baseEnv(t,
		"BITVAULT_DATABASE_URL="+d.AppDSN,
		"BITVAULT_DATABASE_OWNER_URL="+d.OwnerDSN,
		"BITVAULT_TOKEN_KEY="+tokenKey,
		"BITVAULT_BOOTSTRAP_TOKEN="+bootstrap,
	)
	var procs [2]*processtest.Process
	var bases [2]string
	var wg sync.WaitGroup
	for i := range procs {
		procs[i] = processtest.Start(t, bin, env...)
	}
	for i := range procs {
		wg.Go(func() { bases[i] = "http://" + procs[i].Addr(30*time.Second) })
	}
	wg.Wait()
	for _, base := range bases {
		if code, body := processtest.Get(t, base+"/readyz"); code != http.StatusOK || !strings.Contains(string(body), `"database":{"status":"ok"}`) ||
			!strings.Contains(string(body), `"storage":{"status":"not_configured"`) {
			t.Fatalf("/readyz = %d %s, want 200 with the database ok and no storage", code, body)
		}
	}
	if code, body := post(t, bases[0]+"/v1/files", "", `{}`); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "BITVAULT_STORAGE=none") {
		t.Errorf("POST /v1/files without storage = %d %s, want 503", code, body)
	}
	applied := 0
	for _, p := range procs {
		for _, l := range p.Lines() {
			if l["msg"] == "migration applied" {
				applied++
			}
		}
	}
	ms, _ := db.Migrations()
	if applied != len(ms) {
		t.Errorf("the replicas applied %d migrations in total, want %d (each once)", applied, len(ms))
	}

	base := bases[0]
	code, body := post(t, base+"/v1/tenants", bootstrap, `{"slug":"acme","name":"Acme","owner":{"email":"owner@acme.example","password":"owner-password-1"}}`)
	if code != http.StatusCreated {
		t.Fatalf("POST /v1/tenants = %d %s", code, body)
	}
	code, body = post(t, bases[1]+"/v1/auth/login", "", `{"tenant":"acme","email":"owner@acme.example","password":"owner-password-1"}`)
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || code != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("login = %d %s", code, body)
	}
	code, body = post(t, base+"/v1/api-tokens", tok.AccessToken, `{"name":"ci","scopes":["admin"],"expires_in_days":7}`)
	var created struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &created); err != nil || code != http.StatusCreated {
		t.Fatalf("POST /v1/api-tokens = %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodGet, bases[1]+"/v1/api-tokens", nil)
	req.Header.Set("Authorization", "Bearer "+created.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/api-tokens with the API token on the other replica = %d", resp.StatusCode)
	}

	for _, p := range procs {
		p.Signal(syscall.SIGTERM)
	}
	for _, p := range procs {
		if code := p.Wait(10 * time.Second); code != 0 {
			t.Errorf("exit code = %d; logs: %v", code, p.Lines())
		}
		p.CheckOnlyJSON()
	}
}

// TestBinaryStartRefused: a missing database URL is a configuration error (exit 2) naming
// the variable; a superuser app role, an unmigrated schema without the owner URL, or a missing
// token key stop the start too.
func TestBinaryStartRefused(t *testing.T) {
	d := pgtest.New(t)
	empty := pgtest.NewEmpty(t)
	bin := buildOnce(t)
	key := "BITVAULT_TOKEN_KEY=" + tokenKey
	tests := []struct {
		name     string
		env      []string
		wantCode int
		wantText string
	}{
		{"no database URL", nil, 2, "BITVAULT_DATABASE_URL is required"},
		{"no token key", []string{"BITVAULT_DATABASE_URL=" + d.AppDSN}, 2, "BITVAULT_TOKEN_KEY is required"},
		{"no storage", []string{"BITVAULT_DATABASE_URL=" + d.AppDSN, key, "BITVAULT_STORAGE="}, 2, "BITVAULT_STORAGE is required"},
		{"fs storage without public URL", []string{"BITVAULT_DATABASE_URL=" + d.AppDSN, key, "BITVAULT_STORAGE=fs"}, 2, "BITVAULT_PUBLIC_URL is required"},
		{"superuser", []string{"BITVAULT_DATABASE_URL=" + d.SuperDSN, key}, 1, "superuser"},
		{"owner as app role", []string{"BITVAULT_DATABASE_URL=" + d.OwnerDSN, key}, 1, "owns tables"},
		{"not migrated, no owner URL", []string{"BITVAULT_DATABASE_URL=" + empty.AppDSN, key}, 1, "bitvaultd migrate"},
		{"unreachable database", []string{"BITVAULT_DATABASE_URL=postgres://bitvault_app@127.0.0.1:1/x?sslmode=disable", "BITVAULT_DATABASE_WAIT=0s", key}, 1, "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, lines := runCmd(t, bin, baseEnv(t, tt.env...), "")
			if code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d; logs %v", code, tt.wantCode, lines)
			}
			found := false
			for _, l := range lines {
				if e, _ := l["error"].(string); strings.Contains(e, tt.wantText) {
					found = true
				}
			}
			if !found {
				t.Errorf("no error log containing %q in %v", tt.wantText, lines)
			}
		})
	}
}

// TestMigrateCommand: 'bitvaultd migrate' applies the migrations once; running it again
// applies nothing; without the owner URL it is a configuration error.
func TestMigrateCommand(t *testing.T) {
	d := pgtest.NewEmpty(t)
	bin := buildOnce(t)
	env := baseEnv(t, "BITVAULT_DATABASE_OWNER_URL="+d.OwnerDSN)
	ms, _ := db.Migrations()
	for i, wantApplied := range []float64{float64(len(ms)), 0} {
		code, lines := runCmd(t, bin, env, "", "migrate")
		done := hasMsg(lines, "schema up to date")
		if code != 0 || done == nil || done["applied"] != wantApplied {
			t.Fatalf("run %d: exit %d, logs %v; want 0 and applied=%v", i+1, code, lines, wantApplied)
		}
	}
	if code, lines := runCmd(t, bin, baseEnv(t), "", "migrate"); code != 2 || hasMsg(lines, "invalid configuration") == nil {
		t.Errorf("without owner URL: exit %d, logs %v; want 2", code, lines)
	}
	if code, _ := runCmd(t, bin, baseEnv(t), "", "migrate", "extra"); code != 2 {
		t.Errorf("unknown arguments: exit %d, want 2", code)
	}
}

// TestAdminCreateTenant: the CLI bootstrap creates a tenant whose owner can log in with the
// password given on stdin; a taken slug fails.
func TestAdminCreateTenant(t *testing.T) {
	d := pgtest.New(t)
	bin := buildOnce(t)
	env := baseEnv(t, "BITVAULT_DATABASE_URL="+d.AppDSN, "BITVAULT_TOKEN_KEY="+tokenKey)
	args := []string{"admin", "create-tenant", "--slug", "acme", "--name", "Acme", "--owner-email", "owner@acme.example"}
	code, lines := runCmd(t, bin, env, "owner-password-1\n", args...)
	created := hasMsg(lines, "tenant created")
	if code != 0 || created == nil || created["slug"] != "acme" {
		t.Fatalf("exit %d, logs %v", code, lines)
	}
	for _, l := range lines {
		if b, _ := json.Marshal(l); strings.Contains(string(b), "owner-password-1") || strings.Contains(string(b), "owner@acme.example") {
			t.Errorf("log line leaks the password or email: %s", b)
		}
	}
	conn, err := pgx.Connect(context.Background(), d.SuperDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var role string
	err = conn.QueryRow(context.Background(), `SELECT m.role FROM memberships m JOIN users u ON u.id = m.user_id JOIN tenants t ON t.id = u.tenant_id
WHERE t.slug = 'acme' AND u.email = 'owner@acme.example' AND u.password_hash LIKE '$argon2id$%'`).Scan(&role)
	if err != nil || role != "owner" {
		t.Errorf("owner membership = %q (%v)", role, err)
	}
	if code, lines := runCmd(t, bin, env, "owner-password-1\n", args...); code != 1 || hasMsg(lines, "create tenant failed") == nil {
		t.Errorf("taken slug: exit %d, logs %v; want 1", code, lines)
	}
	if code, _ := runCmd(t, bin, env, "", "admin", "create-tenant", "--slug", "x"); code != 2 {
		t.Errorf("missing flags: exit %d, want 2", code)
	}
}
