// Package apitest serves bitvaultd's identity and files API over a fresh database and a filesystem object store, for the end-to-end tests of the modules built on them.
//
// Use Main from TestMain (it runs pgtest with the migrations as template), New in each test,
// and mount the module under test on Env.Mux with Env.Auth as its authenticator.
package apitest

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
)

// Password is every test user's password.
const Password = "user-password-1"

// Main runs a package's tests with a PostgreSQL cluster whose template database has the
// migrations applied.
func Main(m *testing.M) int {
	return pgtest.Main(m, pgtest.Options{Template: func(ctx context.Context, ownerDSN string) error {
		_, err := db.MigrateURL(ctx, ownerDSN, 0, nil)
		return err
	}})
}

// Clock is a settable clock for the modules' Config.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// Env is the identity and files API on a test server.
type Env struct {
	t        testing.TB
	URL      string
	Mux      *http.ServeMux
	Logger   *slog.Logger
	Pool     *pgxpool.Pool // the app role's: row-level security applies
	Super    *pgxpool.Pool // the superuser's, bypassing row-level security: arranging and inspecting only
	Identity *identity.Service
	Files    *files.Service
	Store    *storage.FS // the object store when it is a storage.FS (the default), else nil
	Objects  storage.ObjectStore
	Clock    *Clock
	// Client does not follow redirects.
	Client *http.Client
}

// New starts an Env on a fresh database.
func New(t testing.TB) *Env { return NewWith(t) }

// NewWith is New with the files configuration adjusted by tweak.
func NewWith(t testing.TB, tweak ...func(*files.Config)) *Env {
	t.Helper()
	return NewWithStore(t, FSStore, tweak...)
}

// StoreFunc makes an Env's object store; url is the test server's and mux serves it (a store
// may add its handlers there).
type StoreFunc func(t testing.TB, mux *http.ServeMux, url string) storage.ObjectStore

// FSStore is the default StoreFunc: a storage.FS in a temporary directory, served under
// storage.BlobsPath.
func FSStore(t testing.TB, mux *http.ServeMux, url string) storage.ObjectStore {
	t.Helper()
	store, err := storage.NewFS(t.TempDir(), url, bytes.Repeat([]byte("f"), 32))
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(storage.BlobsPath, store.Handler())
	return store
}

// NewWithStore is NewWith over the object store that newStore makes.
func NewWithStore(t testing.TB, newStore StoreFunc, tweak ...func(*files.Config)) *Env {
	t.Helper()
	ctx := context.Background()
	d := pgtest.New(t)
	pool, err := db.Open(ctx, d.AppDSN, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	clock := &Clock{t: time.Now().UTC().Truncate(time.Millisecond)}
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
	store := newStore(t, mux, srv.URL)
	fcfg := files.Config{Now: clock.Now}
	for _, f := range tweak {
		f(&fcfg)
	}
	fsvc, err := files.New(pool, store, fcfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{
		t: t, URL: srv.URL, Mux: mux, Logger: logger, Pool: pool, Super: pgtest.Pool(t, d.SuperDSN),
		Identity: ids, Files: fsvc, Objects: store, Clock: clock,
		Client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
	e.Store, _ = store.(*storage.FS)
	ids.Routes(mux, logger)
	fsvc.Routes(mux, e.Auth)
	return e
}

// Auth is the authenticator modules take (identity.Service.Authenticated).
func (e *Env) Auth(next func(http.ResponseWriter, *http.Request, identity.Principal)) http.Handler {
	return e.Identity.Authenticated(e.Logger, next)
}

// User is a logged-in user.
type User struct {
	Token string
	P     identity.Principal
	Email string
}

// Tenant creates a tenant with an owner, a member and a viewer, all logged in.
func (e *Env) Tenant(slug string) (owner, member, viewer User) {
	e.t.Helper()
	ctx := context.Background()
	if _, _, err := e.Identity.CreateTenant(ctx, identity.NewTenant{Slug: slug, Name: slug, OwnerEmail: "owner@" + slug + ".example", OwnerPassword: Password}); err != nil {
		e.t.Fatal(err)
	}
	owner = e.Login(slug, "owner@"+slug+".example")
	member = e.AddUser(owner, "member@"+slug+".example", identity.RoleMember)
	viewer = e.AddUser(owner, "viewer@"+slug+".example", identity.RoleViewer)
	return owner, member, viewer
}

// AddUser adds a user with role to admin's tenant and logs it in.
func (e *Env) AddUser(admin User, email string, role identity.Role) User {
	e.t.Helper()
	if _, err := e.Identity.AddUser(context.Background(), admin.P, identity.NewUser{Email: email, Password: Password, Role: role}); err != nil {
		e.t.Fatal(err)
	}
	slug := email[strings.LastIndexByte(email, '@')+1 : len(email)-len(".example")]
	return e.Login(slug, email)
}

// Login logs a user in (slug is the tenant's).
func (e *Env) Login(slug, email string) User {
	e.t.Helper()
	tok, err := e.Identity.Login(context.Background(), identity.Credentials{Tenant: slug, Email: email, Password: Password})
	if err != nil {
		e.t.Fatal(err)
	}
	return User{Token: tok.AccessToken, P: tok.Principal, Email: email}
}

// APIToken creates an API token of u with scopes.
func (e *Env) APIToken(u User, scopes ...string) User {
	e.t.Helper()
	_, token, err := e.Identity.CreateAPIToken(context.Background(), u.P, identity.NewAPIToken{Name: "test", Scopes: scopes, ExpiresAt: time.Now().Add(24 * time.Hour)})
	if err != nil {
		e.t.Fatal(err)
	}
	p, err := e.Identity.Authenticate(context.Background(), token)
	if err != nil {
		e.t.Fatal(err)
	}
	return User{Token: token, P: p, Email: u.Email}
}

// Response is an HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Decode unmarshals the JSON body into v.
func (r Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
}

// Code is the error code of an error body (checking its shape), or "".
func (r Response) Code(t testing.TB) string {
	t.Helper()
	if r.Status < 400 {
		return ""
	}
	var e apierror.Error
	r.Decode(t, &e)
	if e.Message == "" || e.RequestID == "" {
		t.Errorf("error body %s: want code, message and request id", r.Body)
	}
	return e.Code
}

// Do sends a request with a JSON body (nil: none) and bearer token ("": none); header
// holds extra header name/value pairs.
func (e *Env) Do(method, path, token string, body any, header ...string) Response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := e.Client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Want fails the test unless r has status and, for errors, code ("" to not check it).
func (e *Env) Want(r Response, status int, code string) Response {
	e.t.Helper()
	if r.Status != status {
		e.t.Fatalf("status %d %s, want %d %s", r.Status, r.Body, status, code)
	}
	if code != "" {
		if got := r.Code(e.t); got != code {
			e.t.Fatalf("code %q, want %q (%s)", got, code, r.Body)
		}
	}
	return r
}

// Upload writes content at path through the whole upload protocol, as u: a new file.
func (e *Env) Upload(u User, path string, content []byte) files.CommitResult {
	e.t.Helper()
	return e.UploadVersion(u, path, content, "")
}

// UploadVersion writes content at path as a new version of base (a version id; "": a new
// file), as u.
func (e *Env) UploadVersion(u User, path string, content []byte, base string) files.CommitResult {
	e.t.Helper()
	sum := blake3.Sum256(content)
	var up files.Upload
	e.Want(e.Do("POST", "/v1/files", u.Token, map[string]any{"path": path, "size": len(content), "blake3": hex.EncodeToString(sum[:])}), 201, "").Decode(e.t, &up)
	if code := e.Put(up.Put, content); code != http.StatusOK {
		e.t.Fatalf("PUT to the presigned URL: %d", code)
	}
	var res files.CommitResult
	commit := map[string]any{"upload_id": up.ID}
	if base != "" {
		commit["base_version"] = base
	}
	e.Want(e.Do("POST", "/v1/files/commit", u.Token, commit), 201, "").Decode(e.t, &res)
	return res
}

// Put sends body to a presigned request (an upload's PUT) and returns the status.
func (e *Env) Put(p storage.Presigned, body []byte) int {
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
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Folder creates the folder at path (and those above it), as u.
func (e *Env) Folder(u User, path string) files.Node {
	e.t.Helper()
	var n files.Node
	e.Want(e.Do("POST", "/v1/folders", u.Token, map[string]any{"path": path}), 201, "").Decode(e.t, &n)
	return n
}

// Fetch GETs a URL (a presigned download) without credentials and returns status and body.
func (e *Env) Fetch(url string) (int, []byte, http.Header) {
	e.t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// Exec runs SQL as the superuser (bypassing row-level security).
func (e *Env) Exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.Super.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}
