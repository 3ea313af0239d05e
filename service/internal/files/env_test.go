package files_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"lukechampine.com/blake3"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/server"
	"github.com/bitvault/bitvault/service/internal/storage"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
	"github.com/bitvault/bitvault/service/internal/testsupport/s3test"
)

func TestMain(m *testing.M) {
	os.Exit(s3test.Main(func() int {
		return pgtest.Main(m, pgtest.Options{Template: func(ctx context.Context, ownerDSN string) error {
			_, err := db.MigrateURL(ctx, ownerDSN, 0, nil)
			return err
		}})
	}))
}

// Backends the end-to-end tests run against.
const (
	backendS3 = "s3"
	backendFS = "fs"
)

var backends = []string{backendS3, backendFS}

const password = "user-password-1"

// clock is a settable files.Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// env is bitvaultd's API (identity + files) over a fresh database and a fresh bucket (or
// directory), served through the production middleware.
type env struct {
	t      *testing.T
	url    string
	files  *files.Service
	id     *identity.Service
	store  storage.ObjectStore
	super  *pgxpool.Pool // bypasses RLS: for arranging and inspecting rows only
	clock  *clock
	client *http.Client
}

func newEnv(t *testing.T, backend string, tweak ...func(*files.Config)) *env {
	t.Helper()
	ctx := context.Background()
	d := pgtest.New(t)
	pool, err := db.Open(ctx, d.AppDSN, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ids, err := identity.New(pool, identity.Config{
		TokenKey: []byte(strings.Repeat("k", 32)),
		Password: identity.PasswordParams{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", apierror.NotFound)
	logger := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(server.Handler(logger, mux))
	t.Cleanup(srv.Close)

	var store storage.ObjectStore
	switch backend {
	case backendS3:
		store = s3test.New(t).Store(t)
	case backendFS:
		fs, err := storage.NewFS(t.TempDir(), srv.URL, bytes.Repeat([]byte("f"), 32))
		if err != nil {
			t.Fatal(err)
		}
		mux.Handle(storage.BlobsPath, fs.Handler())
		store = fs
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	c := &clock{t: time.Now().UTC()}
	cfg := files.Config{Now: c.Now}
	for _, f := range tweak {
		f(&cfg)
	}
	fsvc, err := files.New(pool, store, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	ids.Routes(mux, logger)
	fsvc.Routes(mux, func(next func(http.ResponseWriter, *http.Request, identity.Principal)) http.Handler {
		return ids.Authenticated(logger, next)
	})
	return &env{
		t: t, url: srv.URL, files: fsvc, id: ids, store: store, super: pgtest.Pool(t, d.SuperDSN), clock: c,
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

// user is a logged-in user of a tenant.
type user struct {
	token string
	p     identity.Principal
}

// tenant creates a tenant and logs in its owner, a member and a viewer.
func (e *env) tenant(slug string) (owner, member, viewer user) {
	e.t.Helper()
	ctx := context.Background()
	if _, _, err := e.id.CreateTenant(ctx, identity.NewTenant{Slug: slug, Name: slug, OwnerEmail: "owner@" + slug + ".example", OwnerPassword: password}); err != nil {
		e.t.Fatal(err)
	}
	owner = e.login(slug, "owner@"+slug+".example")
	for _, r := range []identity.Role{identity.RoleMember, identity.RoleViewer} {
		email := string(r) + "@" + slug + ".example"
		if _, err := e.id.AddUser(ctx, owner.p, identity.NewUser{Email: email, Password: password, Role: r}); err != nil {
			e.t.Fatal(err)
		}
	}
	return owner, e.login(slug, "member@"+slug+".example"), e.login(slug, "viewer@"+slug+".example")
}

func (e *env) login(slug, email string) user {
	e.t.Helper()
	tok, err := e.id.Login(context.Background(), identity.Credentials{Tenant: slug, Email: email, Password: password})
	if err != nil {
		e.t.Fatal(err)
	}
	return user{token: tok.AccessToken, p: tok.Principal}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
}

// code is the error code of an error body (checking its shape), or "".
func (r response) code(t *testing.T) string {
	t.Helper()
	if r.status < 400 {
		return ""
	}
	var e apierror.Error
	r.decode(t, &e)
	if e.Message == "" || e.RequestID == "" {
		t.Errorf("error body %s: want code, message and request id", r.body)
	}
	return e.Code
}

func (e *env) do(method, path, token string, body any) response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// want fails the test unless r has status (and, for errors, code).
func (e *env) want(r response, status int, code string) response {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d %s, want %d %s", r.status, r.body, status, code)
	}
	if code != "" {
		if got := r.code(e.t); got != code {
			e.t.Fatalf("code %q, want %q (%s)", got, code, r.body)
		}
	}
	return r
}

type jsonObj = map[string]any

func blake3Hex(b []byte) string {
	sum := blake3.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// upload is a started upload as the API returns it.
type upload struct {
	ID     string            `json:"upload_id"`
	Path   string            `json:"path"`
	Upload storage.Presigned `json:"upload"`
}

// startUpload declares content at path.
func (e *env) startUpload(u user, path string, content []byte) upload {
	e.t.Helper()
	var up upload
	e.want(e.do("POST", "/v1/files", u.token, jsonObj{"path": path, "size": len(content), "blake3": blake3Hex(content)}), 201, "").decode(e.t, &up)
	return up
}

// put sends body to a presigned request and returns the status.
func (e *env) put(p storage.Presigned, body []byte) int {
	e.t.Helper()
	req, err := http.NewRequest(p.Method, p.URL, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, vs := range p.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (e *env) commitReq(u user, uploadID string, base string) response {
	e.t.Helper()
	body := jsonObj{"upload_id": uploadID}
	if base != "" {
		body["base_version"] = base
	}
	return e.do("POST", "/v1/files/commit", u.token, body)
}

// result is a commit's answer.
type result struct {
	Node         files.Node    `json:"node"`
	Version      files.Version `json:"version"`
	Deduplicated bool          `json:"deduplicated"`
	Seq          int64         `json:"seq"`
}

// conflictAnswer is the 409 version_conflict body.
type conflictAnswer struct {
	Code     string `json:"code"`
	Message  string `json:"message"`
	Conflict result `json:"conflict"`
}

// uploadFile runs the whole protocol and expects a 201.
func (e *env) uploadFile(u user, path string, content []byte, base string) result {
	e.t.Helper()
	up := e.startUpload(u, path, content)
	if code := e.put(up.Upload, content); code != 200 {
		e.t.Fatalf("PUT to the presigned URL: %d", code)
	}
	var res result
	e.want(e.commitReq(u, up.ID, base), 201, "").decode(e.t, &res)
	return res
}

// download follows GET /v1/files/{id}/content to the object store.
func (e *env) download(u user, nodeID, version string) ([]byte, http.Header) {
	e.t.Helper()
	path := "/v1/files/" + nodeID + "/content"
	if version != "" {
		path += "?version=" + version
	}
	r := e.want(e.do("GET", path, u.token, nil), http.StatusFound, "")
	loc := r.header.Get("Location")
	if loc == "" {
		e.t.Fatal("302 without Location")
	}
	resp, err := http.Get(loc)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		e.t.Fatalf("GET presigned URL: %d %s", resp.StatusCode, b)
	}
	return b, resp.Header
}

// list returns all the children of parent ("" root), following cursors.
func (e *env) list(u user, parent string) []files.Node {
	e.t.Helper()
	var all []files.Node
	cursor := ""
	for {
		var page files.Page
		e.want(e.do("GET", "/v1/nodes?parent="+parent+"&cursor="+cursor, u.token, nil), 200, "").decode(e.t, &page)
		all = append(all, page.Nodes...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

func names(ns []files.Node) []string {
	out := []string{}
	for _, n := range ns {
		out = append(out, n.Name)
	}
	return out
}

// count runs a count query as the superuser.
func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.super.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// exists reports whether the object store has key.
func (e *env) exists(key string) bool {
	e.t.Helper()
	_, err := e.store.Stat(context.Background(), key)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}

// journal returns a tenant's change-journal seqs and ops in order.
func (e *env) journal(tenantID string) ([]int64, []string) {
	e.t.Helper()
	rows, err := e.super.Query(context.Background(), "SELECT seq, op FROM change_journal WHERE tenant_id = $1 ORDER BY seq", tenantID)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var seqs []int64
	var ops []string
	for rows.Next() {
		var s int64
		var op string
		if err := rows.Scan(&s, &op); err != nil {
			e.t.Fatal(err)
		}
		seqs = append(seqs, s)
		ops = append(ops, op)
	}
	return seqs, ops
}

// checkGapFree fails unless seqs are 1..n.
func checkGapFree(t *testing.T, seqs []int64) {
	t.Helper()
	for i, s := range seqs {
		if s != int64(i+1) {
			t.Fatalf("journal seqs %v: not 1..%d without gaps", seqs, len(seqs))
		}
	}
}
