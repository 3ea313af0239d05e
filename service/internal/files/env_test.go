package files_test

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"lukechampine.com/blake3"

	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/storage"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
	"github.com/bitvault/bitvault/service/internal/testsupport/s3test"
)

func TestMain(m *testing.M) {
	os.Exit(s3test.Main(func() int { return apitest.Main(m) }))
}

// Backends the end-to-end tests run against.
const (
	backendS3 = "s3"
	backendFS = "fs"
)

var backends = []string{backendS3, backendFS}

// env is bitvaultd's API (identity + files) over a fresh database and a fresh bucket (or
// directory), served through the production middleware: an apitest.Env under the names
// these tests use.
type env struct {
	*apitest.Env
	t      *testing.T
	url    string
	files  *files.Service
	id     *identity.Service
	store  storage.ObjectStore
	super  *pgxpool.Pool // bypasses RLS: for arranging and inspecting rows only
	clock  *apitest.Clock
	client *http.Client
}

func newEnv(t *testing.T, backend string, tweak ...func(*files.Config)) *env {
	t.Helper()
	var newStore apitest.StoreFunc
	switch backend {
	case backendS3:
		newStore = func(t testing.TB, _ *http.ServeMux, _ string) storage.ObjectStore { return s3test.New(t).Store(t) }
	case backendFS:
		newStore = apitest.FSStore
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	a := apitest.NewWithStore(t, newStore, tweak...)
	return &env{
		Env: a, t: t, url: a.URL, files: a.Files, id: a.Identity, store: a.Objects, super: a.Super, clock: a.Clock, client: a.Client,
	}
}

// user is a logged-in user of a tenant.
type user struct {
	token string
	p     identity.Principal
}

func fromAPI(u apitest.User) user { return user{token: u.Token, p: u.P} }

// tenant creates a tenant and logs in its owner, a member and a viewer.
func (e *env) tenant(slug string) (owner, member, viewer user) {
	e.t.Helper()
	o, m, v := e.Tenant(slug)
	return fromAPI(o), fromAPI(m), fromAPI(v)
}

func (e *env) login(slug, email string) user {
	e.t.Helper()
	return fromAPI(e.Login(slug, email))
}

type response = apitest.Response

// do sends a request as apitest.Env.Do does, always declaring a JSON body.
func (e *env) do(method, path, token string, body any) response {
	e.t.Helper()
	return e.Do(method, path, token, body, "Content-Type", "application/json")
}

// want fails the test unless r has status (and, for errors, code).
func (e *env) want(r response, status int, code string) response {
	e.t.Helper()
	return e.Want(r, status, code)
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
	e.want(e.do("POST", "/v1/files", u.token, jsonObj{"path": path, "size": len(content), "blake3": blake3Hex(content)}), 201, "").Decode(e.t, &up)
	return up
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
	if code := e.Put(up.Upload, content); code != 200 {
		e.t.Fatalf("PUT to the presigned URL: %d", code)
	}
	var res result
	e.want(e.commitReq(u, up.ID, base), 201, "").Decode(e.t, &res)
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
	loc := r.Header.Get("Location")
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
		e.want(e.do("GET", "/v1/nodes?parent="+parent+"&cursor="+cursor, u.token, nil), 200, "").Decode(e.t, &page)
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
