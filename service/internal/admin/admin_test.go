package admin_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"lukechampine.com/blake3"

	"github.com/bitvault/bitvault/service/internal/admin"
	"github.com/bitvault/bitvault/service/internal/audit"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/sharing"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
)

func TestMain(m *testing.M) { os.Exit(apitest.Main(m)) }

func newEnv(t *testing.T) *apitest.Env {
	t.Helper()
	e := apitest.New(t)
	svc, err := admin.New(e.Pool, e.Identity, admin.Config{Now: e.Clock.Now}, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	svc.Routes(e.Mux, e.Auth)
	sh, err := sharing.New(e.Pool, e.Identity, e.Store, sharing.Config{Now: e.Clock.Now}, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	sh.Routes(e.Mux, e.Auth)
	return e
}

// auditTypes lists the event types of the tenant's log, oldest first, through the API.
func auditTypes(t *testing.T, e *apitest.Env, u apitest.User) []string {
	t.Helper()
	var all []audit.Entry
	cursor := ""
	for {
		var page admin.AuditPage
		e.Want(e.Do("GET", "/v1/admin/audit?limit=3&cursor="+cursor, u.Token, nil), 200, "").Decode(t, &page)
		all = append(all, page.Entries...)
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	var types []string
	for i := len(all) - 1; i >= 0; i-- {
		if i > 0 && all[i].ID >= all[i-1].ID {
			t.Fatalf("audit page not newest first: %d then %d", all[i-1].ID, all[i].ID)
		}
		types = append(types, all[i].EventType)
	}
	return types
}

// TestAdminAccess: every admin endpoint is denied to members, viewers and file-scoped API
// tokens (403) and allowed to owners, admins and admin-scoped tokens; users of another
// tenant are 404.
func TestAdminAccess(t *testing.T) {
	e := newEnv(t)
	owner, member, viewer := e.Tenant("acme")
	adm := e.AddUser(owner, "admin@acme.example", identity.RoleAdmin)
	filesToken := e.APIToken(owner, "files:write")
	adminToken := e.APIToken(owner, "admin")
	otherOwner, otherMember, _ := e.Tenant("other")

	calls := []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/admin/quota", nil},
		{"PUT", "/v1/admin/quota", map[string]any{"bytes_limit": 1000}},
		{"GET", "/v1/admin/usage", nil},
		{"GET", "/v1/admin/flags", nil},
		{"PUT", "/v1/admin/flags", map[string]any{"flags": map[string]any{"beta": true}}},
		{"GET", "/v1/admin/users", nil},
		{"POST", "/v1/admin/users", map[string]any{"email": "x@acme.example", "password": apitest.Password, "role": "member"}},
		{"PATCH", "/v1/admin/users/" + viewer.P.UserID, map[string]any{"role": "member"}},
		{"GET", "/v1/admin/audit", nil},
	}
	for _, c := range calls {
		for _, u := range []struct {
			name string
			u    apitest.User
			code string
		}{{"member", member, "permission_denied"}, {"viewer", viewer, "permission_denied"}, {"files token", filesToken, "insufficient_scope"}} {
			e.Want(e.Do(c.method, c.path, u.u.Token, c.body), 403, u.code)
		}
		e.Want(e.Do(c.method, c.path, "", c.body), 401, "unauthenticated")
	}
	e.Want(e.Do("GET", "/v1/admin/users", adm.Token, nil), 200, "")
	e.Want(e.Do("GET", "/v1/admin/users", adminToken.Token, nil), 200, "")
	e.Want(e.Do("DELETE", "/v1/admin/users", owner.Token, nil), 405, "method_not_allowed")

	// Another tenant's user: not found, whoever asks.
	e.Want(e.Do("PATCH", "/v1/admin/users/"+otherMember.P.UserID, owner.Token, map[string]any{"status": "disabled"}), 404, "not_found")
	e.Want(e.Do("PATCH", "/v1/admin/users/not-a-uuid", owner.Token, map[string]any{"status": "disabled"}), 404, "not_found")
	// Each tenant sees only its own users, flags and log.
	var us struct{ Users []admin.User }
	e.Want(e.Do("GET", "/v1/admin/users", otherOwner.Token, nil), 200, "").Decode(t, &us)
	for _, u := range us.Users {
		if !strings.HasSuffix(u.Email, "@other.example") {
			t.Errorf("tenant other lists %s", u.Email)
		}
	}
	e.Want(e.Do("PUT", "/v1/admin/flags", owner.Token, map[string]any{"flags": map[string]any{"beta": true}}), 200, "")
	var fl struct{ Flags map[string]any }
	e.Want(e.Do("GET", "/v1/admin/flags", otherOwner.Token, nil), 200, "").Decode(t, &fl)
	if len(fl.Flags) != 0 {
		t.Errorf("tenant other sees flags %v", fl.Flags)
	}
	for _, typ := range auditTypes(t, e, otherOwner) {
		if typ == audit.FlagChanged {
			t.Errorf("tenant other sees acme's flag change")
		}
	}
}

// TestUsers: adding users, changing roles, disabling (which ends the user's access at once);
// admins cannot touch owners, nobody changes themselves, the last owner stays.
func TestUsers(t *testing.T) {
	e := newEnv(t)
	owner, member, _ := e.Tenant("acme")
	adm := e.AddUser(owner, "admin@acme.example", identity.RoleAdmin)

	var u admin.User
	e.Want(e.Do("POST", "/v1/admin/users", adm.Token, map[string]any{"email": "New@acme.example", "password": apitest.Password, "role": "viewer"}), 201, "").Decode(t, &u)
	if u.Email != "new@acme.example" || u.Role != identity.RoleViewer || u.Status != "active" {
		t.Fatalf("added %+v", u)
	}
	e.Want(e.Do("POST", "/v1/admin/users", adm.Token, map[string]any{"email": "new@acme.example", "password": apitest.Password, "role": "viewer"}), 409, "already_exists")
	e.Want(e.Do("POST", "/v1/admin/users", adm.Token, map[string]any{"email": "o2@acme.example", "password": apitest.Password, "role": "owner"}), 403, "permission_denied")

	e.Want(e.Do("PATCH", "/v1/admin/users/"+u.ID, adm.Token, map[string]any{"role": "member"}), 200, "").Decode(t, &u)
	if u.Role != identity.RoleMember {
		t.Errorf("role %s, want member", u.Role)
	}
	e.Want(e.Do("PATCH", "/v1/admin/users/"+u.ID, adm.Token, map[string]any{"role": "owner"}), 403, "permission_denied")
	e.Want(e.Do("PATCH", "/v1/admin/users/"+owner.P.UserID, adm.Token, map[string]any{"status": "disabled"}), 403, "permission_denied")
	e.Want(e.Do("PATCH", "/v1/admin/users/"+adm.P.UserID, adm.Token, map[string]any{"role": "owner"}), 403, "permission_denied")
	e.Want(e.Do("PATCH", "/v1/admin/users/"+u.ID, adm.Token, map[string]any{"role": "root"}), 400, "invalid_argument")
	e.Want(e.Do("PATCH", "/v1/admin/users/"+u.ID, adm.Token, map[string]any{"status": "gone"}), 400, "invalid_argument")

	// Disabling ends the member's access at once; enabling restores it.
	e.Want(e.Do("GET", "/v1/nodes", member.Token, nil), 200, "")
	e.Want(e.Do("PATCH", "/v1/admin/users/"+member.P.UserID, adm.Token, map[string]any{"status": "disabled"}), 200, "")
	e.Want(e.Do("GET", "/v1/nodes", member.Token, nil), 401, "")
	if _, err := e.Identity.Login(context.Background(), identity.Credentials{Tenant: "acme", Email: member.Email, Password: apitest.Password}); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Errorf("disabled user logs in: %v", err)
	}
	e.Want(e.Do("PATCH", "/v1/admin/users/"+member.P.UserID, adm.Token, map[string]any{"status": "active"}), 200, "")
	e.Login("acme", member.Email)

	// Owners: the last active owner cannot be demoted; with a second one it can.
	o2 := e.AddUser(owner, "owner2@acme.example", identity.RoleOwner)
	e.Want(e.Do("PATCH", "/v1/admin/users/"+o2.P.UserID, owner.Token, map[string]any{"role": "admin"}), 200, "")
	e.Want(e.Do("PATCH", "/v1/admin/users/"+owner.P.UserID, owner.Token, map[string]any{"role": "admin"}), 403, "permission_denied") // oneself
	e.Want(e.Do("PATCH", "/v1/admin/users/"+o2.P.UserID, owner.Token, map[string]any{"role": "owner"}), 200, "")
	e.Want(e.Do("PATCH", "/v1/admin/users/"+owner.P.UserID, o2.Token, map[string]any{"status": "disabled"}), 200, "")
	e.Want(e.Do("PATCH", "/v1/admin/users/"+owner.P.UserID, o2.Token, map[string]any{"status": "active"}), 200, "")

	var list struct{ Users []admin.User }
	e.Want(e.Do("GET", "/v1/admin/users", owner.Token, nil), 200, "").Decode(t, &list)
	if len(list.Users) != 6 {
		t.Errorf("%d users, want 6: %+v", len(list.Users), list.Users)
	}
}

// upload starts an upload of content at path (no commit) and returns the answer.
func startUpload(e *apitest.Env, u apitest.User, path string, size int) apitest.Response {
	sum := blake3.Sum256(make([]byte, size))
	return e.Do("POST", "/v1/files", u.Token, map[string]any{"path": path, "size": size, "blake3": hex.EncodeToString(sum[:])})
}

// TestQuotaAndUsage: a quota set through the admin API is enforced when an upload starts
// (413 before any bytes move); usage follows uploads and purges.
func TestQuotaAndUsage(t *testing.T) {
	e := newEnv(t)
	owner, member, _ := e.Tenant("acme")
	other, _, _ := e.Tenant("other")

	var q admin.Quota
	e.Want(e.Do("GET", "/v1/admin/quota", owner.Token, nil), 200, "").Decode(t, &q)
	if q.BytesLimit != nil || q.FilesLimit != nil || q.EffectiveBytesLimit != 0 {
		t.Fatalf("initial quota %+v", q)
	}
	e.Want(e.Do("PUT", "/v1/admin/quota", owner.Token, map[string]any{"bytes_limit": -1}), 400, "invalid_argument")
	e.Want(e.Do("PUT", "/v1/admin/quota", owner.Token, map[string]any{"bytes_limit": 100, "files_limit": 3}), 200, "").Decode(t, &q)
	if q.BytesLimit == nil || *q.BytesLimit != 100 || q.EffectiveFilesLimit != 3 {
		t.Fatalf("quota after PUT %+v", q)
	}

	a := e.Upload(member, "docs/a.txt", []byte(strings.Repeat("a", 60)))
	// 60 of 100 bytes used: 41 more do not fit, refused before any bytes move.
	r := e.Want(startUpload(e, member, "docs/b.txt", 41), 413, "quota_exceeded")
	_ = r
	e.Upload(member, "docs/b.txt", []byte(strings.Repeat("b", 40)))
	e.Want(startUpload(e, member, "docs/c.txt", 1), 413, "quota_exceeded")
	// Another tenant is not limited by acme's quota.
	e.Upload(other, "big.bin", []byte(strings.Repeat("x", 500)))

	var u admin.Usage
	e.Want(e.Do("GET", "/v1/admin/usage", owner.Token, nil), 200, "").Decode(t, &u)
	if u.BytesStored != 100 || u.Files != 2 || u.UploadsThisMonth != 2 {
		t.Errorf("usage %+v, want 100 bytes, 2 files, 2 uploads", u)
	}

	// Raising the limit lets the upload through; purging frees the bytes.
	e.Want(e.Do("PUT", "/v1/admin/quota", owner.Token, map[string]any{"bytes_limit": nil, "files_limit": nil}), 200, "")
	e.Upload(member, "docs/c.txt", []byte("c"))
	e.Want(e.Do("POST", "/v1/nodes/"+a.Node.ID+"/trash", member.Token, nil), 200, "")
	e.Want(e.Do("GET", "/v1/admin/usage", owner.Token, nil), 200, "").Decode(t, &u)
	if u.BytesStored != 101 || u.Files != 3 {
		t.Errorf("usage with a file in the trash %+v, want 101 bytes, 3 files", u)
	}
	e.Want(e.Do("DELETE", "/v1/nodes/"+a.Node.ID, member.Token, nil), 204, "")
	e.Want(e.Do("GET", "/v1/admin/usage", owner.Token, nil), 200, "").Decode(t, &u)
	if u.BytesStored != 41 || u.Files != 2 || u.UploadsThisMonth != 3 {
		t.Errorf("usage after purge %+v, want 41 bytes, 2 files, 3 uploads", u)
	}
	var ou admin.Usage
	e.Want(e.Do("GET", "/v1/admin/usage", other.Token, nil), 200, "").Decode(t, &ou)
	if ou.BytesStored != 500 || ou.Files != 1 || ou.UploadsThisMonth != 1 {
		t.Errorf("other's usage %+v", ou)
	}

	// The monthly counter is exact under concurrent uploads.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if r := startUpload(e, member, fmt.Sprintf("par/%d.bin", i), 1); r.Status != 201 {
				t.Errorf("upload %d: %d %s", i, r.Status, r.Body)
			}
		})
	}
	wg.Wait()
	e.Want(e.Do("GET", "/v1/admin/usage", owner.Token, nil), 200, "").Decode(t, &u)
	if u.UploadsThisMonth != 23 {
		t.Errorf("uploads this month %d, want 23", u.UploadsThisMonth)
	}
}

// TestFlags: set, read, remove; keys are validated.
func TestFlags(t *testing.T) {
	e := newEnv(t)
	owner, _, _ := e.Tenant("acme")
	var fl struct{ Flags map[string]any }
	e.Want(e.Do("PUT", "/v1/admin/flags", owner.Token, map[string]any{"flags": map[string]any{"beta": true, "search.mode": "fast"}}), 200, "").Decode(t, &fl)
	if fl.Flags["beta"] != true || fl.Flags["search.mode"] != "fast" {
		t.Errorf("flags %v", fl.Flags)
	}
	e.Want(e.Do("PUT", "/v1/admin/flags", owner.Token, map[string]any{"flags": map[string]any{"beta": nil}}), 200, "")
	fl.Flags = nil
	e.Want(e.Do("GET", "/v1/admin/flags", owner.Token, nil), 200, "").Decode(t, &fl)
	if len(fl.Flags) != 1 || fl.Flags["search.mode"] != "fast" {
		t.Errorf("flags after removal %v", fl.Flags)
	}
	e.Want(e.Do("PUT", "/v1/admin/flags", owner.Token, map[string]any{"flags": map[string]any{"Bad Key": 1}}), 400, "invalid_argument")
	e.Want(e.Do("PUT", "/v1/admin/flags", owner.Token, map[string]any{"flags": map[string]any{}}), 400, "invalid_argument")
}

// TestAuditLog: each security-relevant action leaves a row, in order, readable page by page.
func TestAuditLog(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner, member, viewer := e.Tenant("acme") // login.succeeded, user.added ×2 + 2 logins
	if _, err := e.Identity.Login(ctx, identity.Credentials{Tenant: "acme", Email: member.Email, Password: "wrong-password-1"}); err == nil {
		t.Fatal("wrong password accepted")
	}
	tok := e.APIToken(owner, "files:read")
	e.Want(e.Do("DELETE", "/v1/api-tokens/"+tok.P.APITokenID, owner.Token, nil), 204, "")
	f := e.Folder(member, "team")
	res := e.Upload(member, "team/a.txt", []byte("hello"))
	var sh sharing.Share
	e.Want(e.Do("POST", "/v1/nodes/"+f.ID+"/shares", member.Token, map[string]any{"user_id": viewer.P.UserID, "role": "editor"}), 201, "").Decode(t, &sh)
	e.Want(e.Do("DELETE", "/v1/nodes/"+f.ID+"/shares/"+sh.ID, member.Token, nil), 204, "")
	var link struct{ Link sharing.Link }
	e.Want(e.Do("POST", "/v1/nodes/"+res.Node.ID+"/links", member.Token, map[string]any{}), 201, "").Decode(t, &link)
	e.Want(e.Do("DELETE", "/v1/nodes/"+res.Node.ID+"/links/"+link.Link.ID, member.Token, nil), 204, "")
	e.Want(e.Do("PATCH", "/v1/admin/users/"+viewer.P.UserID, owner.Token, map[string]any{"role": "member"}), 200, "")
	e.Want(e.Do("PATCH", "/v1/admin/users/"+viewer.P.UserID, owner.Token, map[string]any{"status": "disabled"}), 200, "")
	e.Want(e.Do("PUT", "/v1/admin/quota", owner.Token, map[string]any{"bytes_limit": 1 << 20}), 200, "")
	e.Want(e.Do("POST", "/v1/nodes/"+res.Node.ID+"/trash", member.Token, nil), 200, "")
	e.Want(e.Do("DELETE", "/v1/nodes/"+res.Node.ID, member.Token, nil), 204, "")

	got := auditTypes(t, e, owner)
	want := []string{
		audit.LoginSucceeded,                  // owner
		audit.UserAdded, audit.LoginSucceeded, // member
		audit.UserAdded, audit.LoginSucceeded, // viewer
		audit.LoginFailed, // wrong password
		audit.APITokenCreated, audit.APITokenRevoked,
		audit.ShareCreated, audit.ShareRevoked,
		audit.LinkCreated, audit.LinkRevoked,
		audit.RoleChanged, audit.UserDisabled,
		audit.QuotaChanged,
		audit.NodePurged,
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("audit log:\n got %v\nwant %v", got, want)
	}
	e.Want(e.Do("GET", "/v1/admin/audit?cursor=abc", owner.Token, nil), 400, "invalid_argument")
	e.Want(e.Do("GET", "/v1/admin/audit?limit=0", owner.Token, nil), 400, "invalid_argument")

	// Actor and target of a row.
	var page admin.AuditPage
	e.Want(e.Do("GET", "/v1/admin/audit?limit=1", owner.Token, nil), 200, "").Decode(t, &page)
	if len(page.Entries) != 1 || page.Entries[0].ActorID == nil || *page.Entries[0].ActorID != member.P.UserID || page.Entries[0].Target == nil || *page.Entries[0].Target != res.Node.ID {
		t.Errorf("newest entry %+v, want the member's purge of %s", page.Entries, res.Node.ID)
	}
}

// TestAuditLogAppendOnly: as the app role, with raw SQL, audit_log accepts INSERT and
// SELECT and refuses UPDATE, DELETE and TRUNCATE.
func TestAuditLogAppendOnly(t *testing.T) {
	e := newEnv(t)
	owner, _, _ := e.Tenant("acme")
	ctx := context.Background()
	var role string
	if err := e.Pool.QueryRow(ctx, "SELECT current_user").Scan(&role); err != nil || role != db.AppRole {
		t.Fatalf("pool role %q (err %v), want %s", role, err, db.AppRole)
	}
	run := func(sql string) error {
		return db.WithTenant(ctx, e.Pool, owner.P.TenantID, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, sql)
			return err
		})
	}
	if err := run("INSERT INTO audit_log (tenant_id, event_type) VALUES ('" + owner.P.TenantID + "', 'test.event')"); err != nil {
		t.Fatalf("INSERT: %v", err)
	}
	var n int
	if err := db.WithTenant(ctx, e.Pool, owner.P.TenantID, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM audit_log").Scan(&n)
	}); err != nil || n < 2 {
		t.Fatalf("SELECT: %d rows (err %v)", n, err)
	}
	for _, sql := range []string{
		"UPDATE audit_log SET event_type = 'forged.event'",
		"DELETE FROM audit_log",
		"TRUNCATE audit_log",
	} {
		err := run(sql)
		pgErr, ok := errors.AsType[*pgconn.PgError](err)
		if !ok || pgErr.Code != "42501" {
			t.Errorf("%s: err %v, want 42501 permission denied", sql, err)
		}
	}
	var after int
	if err := e.Super.QueryRow(ctx, "SELECT count(*) FROM audit_log WHERE event_type = 'forged.event'").Scan(&after); err != nil || after != 0 {
		t.Errorf("forged rows %d (err %v)", after, err)
	}
}
