package sharing_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/server"
	"github.com/bitvault/bitvault/service/internal/sharing"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
)

func TestMain(m *testing.M) { os.Exit(apitest.Main(m)) }

type env struct {
	*apitest.Env
	sharing *sharing.Service
}

func newEnv(t *testing.T, tweak ...func(*sharing.Config)) *env {
	t.Helper()
	e := apitest.New(t)
	cfg := sharing.Config{Now: e.Clock.Now}
	for _, f := range tweak {
		f(&cfg)
	}
	svc, err := sharing.New(e.Pool, e.Identity, e.Store, cfg, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	svc.Routes(e.Mux, e.Auth)
	return &env{Env: e, sharing: svc}
}

// strictViewers is the digest's role table: a tenant viewer reads only what is shared with
// it (identity's table lets viewers read the whole tenant).
func strictViewers(c *sharing.Config) {
	c.RBAC = func(p identity.Principal, perm identity.Permission) error {
		if p.Role == identity.RoleViewer && (perm == identity.PermFilesRead || perm == identity.PermFilesWrite) {
			return identity.ErrPermissionDenied
		}
		return identity.Authorize(p, perm)
	}
}

type createdLink struct {
	Link  sharing.Link `json:"link"`
	Token string       `json:"token"`
	URL   string       `json:"url"`
}

func (e *env) link(t *testing.T, u apitest.User, nodeID string, body map[string]any) createdLink {
	t.Helper()
	var l createdLink
	e.Want(e.Do("POST", "/v1/nodes/"+nodeID+"/links", u.Token, body), 201, "").Decode(t, &l)
	return l
}

// follow resolves a link anonymously and fetches what it redirects to.
func (e *env) follow(t *testing.T, token string, header ...string) (string, http.Header) {
	t.Helper()
	r := e.Want(e.Do("GET", "/v1/links/"+token, "", nil, header...), http.StatusFound, "")
	status, body, h := e.Fetch(r.Header.Get("Location"))
	if status != 200 {
		t.Fatalf("presigned download: %d %s", status, body)
	}
	return string(body), h
}

// TestShares: sharing with a user of the tenant as editor gives write access to that
// subtree (to a tenant viewer too), viewer read only; changing the role, listing, revoking
// (which ends the access at once); who may share.
func TestShares(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner, member, viewer := e.Tenant("acme")
	team := e.Folder(owner, "/team")
	plan := e.Upload(owner, "/team/q/plan.txt", []byte("plan"))
	secret := e.Upload(owner, "/private/secret.txt", []byte("secret"))

	var sh sharing.Share
	e.Want(e.Do("POST", "/v1/nodes/"+team.ID+"/shares", owner.Token, map[string]any{"email": "VIEWER@acme.example", "role": "editor"}), 201, "").Decode(t, &sh)
	if sh.UserID != viewer.P.UserID || sh.Role != "editor" || sh.NodeID != team.ID || sh.CreatedBy != owner.P.UserID || sh.UserEmail != viewer.Email {
		t.Fatalf("share = %+v", sh)
	}
	// Editor share: the tenant viewer writes in /team (links are writes), not elsewhere.
	if err := e.sharing.Authorize(ctx, viewer.P, plan.Node.ID, sharing.Write); err != nil {
		t.Errorf("viewer with an editor share on /team: write /team/q/plan.txt: %v", err)
	}
	if err := e.sharing.Authorize(ctx, viewer.P, secret.Node.ID, sharing.Write); !isCode(err, apierror.CodePermissionDenied) {
		t.Errorf("viewer: write /private/secret.txt: %v, want permission_denied", err)
	}
	l := e.link(t, viewer, plan.Node.ID, nil)
	e.Want(e.Do("POST", "/v1/nodes/"+secret.Node.ID+"/links", viewer.Token, nil), 403, apierror.CodePermissionDenied)
	// An API token of that viewer cannot exceed its files:read scope.
	viewerToken := e.APIToken(viewer, "files:read")
	e.Want(e.Do("POST", "/v1/nodes/"+plan.Node.ID+"/links", viewerToken.Token, nil), 403, apierror.CodePermissionDenied)

	// Sharing again changes the role.
	e.Want(e.Do("POST", "/v1/nodes/"+team.ID+"/shares", owner.Token, map[string]any{"user_id": viewer.P.UserID, "role": "viewer"}), 200, "").Decode(t, &sh)
	if sh.Role != "viewer" {
		t.Errorf("role after sharing again = %q", sh.Role)
	}
	e.Want(e.Do("POST", "/v1/nodes/"+plan.Node.ID+"/links", viewer.Token, nil), 403, apierror.CodePermissionDenied)
	if err := e.sharing.Authorize(ctx, viewer.P, plan.Node.ID, sharing.Read); err != nil {
		t.Errorf("viewer share: read: %v", err)
	}

	var list struct{ Shares []sharing.Share }
	e.Want(e.Do("GET", "/v1/nodes/"+team.ID+"/shares", viewer.Token, nil), 200, "").Decode(t, &list)
	if len(list.Shares) != 1 || list.Shares[0].ID != sh.ID || list.Shares[0].Role != "viewer" {
		t.Errorf("shares of /team = %+v", list.Shares)
	}
	var mine struct{ Shares []sharing.SharedNode }
	e.Want(e.Do("GET", "/v1/shares", viewer.Token, nil), 200, "").Decode(t, &mine)
	if len(mine.Shares) != 1 || mine.Shares[0].Path != "/team" || mine.Shares[0].NodeType != "folder" {
		t.Errorf("shared with the viewer = %+v", mine.Shares)
	}

	// Who may share: write access (member and above, or an editor share).
	e.Want(e.Do("POST", "/v1/nodes/"+secret.Node.ID+"/shares", viewer.Token, map[string]any{"user_id": member.P.UserID, "role": "viewer"}), 403, apierror.CodePermissionDenied)
	e.Want(e.Do("POST", "/v1/nodes/"+secret.Node.ID+"/shares", member.Token, map[string]any{"user_id": viewer.P.UserID, "role": "viewer"}), 201, "")
	e.Want(e.Do("DELETE", "/v1/nodes/"+team.ID+"/shares/"+sh.ID, viewer.Token, nil), 403, apierror.CodePermissionDenied)

	// Revoking ends the editor's write at once, and its list entry.
	e.Want(e.Do("POST", "/v1/nodes/"+team.ID+"/shares", owner.Token, map[string]any{"user_id": viewer.P.UserID, "role": "editor"}), 200, "")
	e.Want(e.Do("POST", "/v1/nodes/"+plan.Node.ID+"/links", viewer.Token, nil), 201, "")
	e.Want(e.Do("DELETE", "/v1/nodes/"+team.ID+"/shares/"+sh.ID, owner.Token, nil), 204, "")
	e.Want(e.Do("POST", "/v1/nodes/"+plan.Node.ID+"/links", viewer.Token, nil), 403, apierror.CodePermissionDenied)
	e.Want(e.Do("DELETE", "/v1/nodes/"+plan.Node.ID+"/links/"+l.Link.ID, viewer.Token, nil), 403, apierror.CodePermissionDenied)
	e.Want(e.Do("DELETE", "/v1/nodes/"+team.ID+"/shares/"+sh.ID, owner.Token, nil), 404, apierror.CodeNotFound)
	e.Want(e.Do("GET", "/v1/nodes/"+team.ID+"/shares", owner.Token, nil), 200, "").Decode(t, &list)
	if len(list.Shares) != 0 {
		t.Errorf("shares of /team after revoking = %+v", list.Shares)
	}
	// Sharing again after a revocation is a new share.
	e.Want(e.Do("POST", "/v1/nodes/"+team.ID+"/shares", owner.Token, map[string]any{"user_id": viewer.P.UserID, "role": "viewer"}), 201, "")

	// Events, in the same transactions.
	var created, updated, revoked int
	if err := e.Super.QueryRow(ctx, `SELECT count(*) FILTER (WHERE topic = 'sharing.share.created'), count(*) FILTER (WHERE topic = 'sharing.share.updated'),
	count(*) FILTER (WHERE topic = 'sharing.share.revoked') FROM outbox WHERE tenant_id = $1`, owner.P.TenantID).Scan(&created, &updated, &revoked); err != nil {
		t.Fatal(err)
	}
	if created != 3 || updated != 2 || revoked != 1 {
		t.Errorf("share events created/updated/revoked = %d/%d/%d, want 3/2/1", created, updated, revoked)
	}

	// Bad requests.
	for _, body := range []map[string]any{
		{"email": viewer.Email, "role": "owner"},
		{"email": viewer.Email},
		{"email": viewer.Email, "user_id": viewer.P.UserID, "role": "viewer"},
		{"role": "viewer"},
		{"email": owner.Email, "role": "viewer"}, // oneself
		{"email": viewer.Email, "role": "viewer", "unknown": true},
	} {
		e.Want(e.Do("POST", "/v1/nodes/"+team.ID+"/shares", owner.Token, body), 400, apierror.CodeInvalidArgument)
	}
	e.Want(e.Do("POST", "/v1/nodes/"+team.ID+"/shares", owner.Token, map[string]any{"email": "nobody@acme.example", "role": "viewer"}), 404, apierror.CodeNotFound)
	e.Want(e.Do("POST", "/v1/nodes/not-an-id/shares", owner.Token, map[string]any{"email": viewer.Email, "role": "viewer"}), 404, apierror.CodeNotFound)
	e.Want(e.Do("GET", "/v1/nodes/"+team.ID+"/shares", "", nil), 401, apierror.CodeUnauthenticated)

	// A node in the trash cannot be shared.
	e.Want(e.Do("POST", "/v1/nodes/"+team.ID+"/trash", owner.Token, nil), 200, "")
	e.Want(e.Do("POST", "/v1/nodes/"+plan.Node.ID+"/shares", owner.Token, map[string]any{"user_id": member.P.UserID, "role": "viewer"}), 404, apierror.CodeNotFound)
	e.Want(e.Do("GET", "/v1/shares", viewer.Token, nil), 200, "").Decode(t, &mine)
	if len(mine.Shares) != 1 || mine.Shares[0].NodeID != secret.Node.ID {
		t.Errorf("shared with the viewer, /team in the trash = %+v, want only secret.txt", mine.Shares)
	}
}

// TestRevokedShareLosesAccess, with the digest's role table (a tenant viewer reads only what
// is shared with it): a share gives read access to its subtree and nothing else, and loses it
// when revoked.
func TestRevokedShareLosesAccess(t *testing.T) {
	e := newEnv(t, strictViewers)
	ctx := context.Background()
	owner, _, viewer := e.Tenant("acme")
	team := e.Folder(owner, "/team")
	plan := e.Upload(owner, "/team/plan.txt", []byte("plan"))
	secret := e.Upload(owner, "/secret.txt", []byte("secret"))

	for _, id := range []string{team.ID, plan.Node.ID, secret.Node.ID} {
		if err := e.sharing.Authorize(ctx, viewer.P, id, sharing.Read); !isCode(err, apierror.CodeNotFound) {
			t.Errorf("viewer, nothing shared: read %s: %v, want not_found", id, err)
		}
	}
	e.Want(e.Do("GET", "/v1/nodes/"+team.ID+"/shares", viewer.Token, nil), 404, apierror.CodeNotFound)
	var sh sharing.Share
	e.Want(e.Do("POST", "/v1/nodes/"+team.ID+"/shares", owner.Token, map[string]any{"user_id": viewer.P.UserID, "role": "viewer"}), 201, "").Decode(t, &sh)
	if err := e.sharing.Authorize(ctx, viewer.P, plan.Node.ID, sharing.Read); err != nil {
		t.Errorf("viewer share on /team: read plan.txt: %v", err)
	}
	if err := e.sharing.Authorize(ctx, viewer.P, plan.Node.ID, sharing.Write); !isCode(err, apierror.CodePermissionDenied) {
		t.Errorf("viewer share on /team: write plan.txt: %v, want permission_denied", err)
	}
	if err := e.sharing.Authorize(ctx, viewer.P, secret.Node.ID, sharing.Read); !isCode(err, apierror.CodeNotFound) {
		t.Errorf("viewer share on /team: read /secret.txt: %v, want not_found", err)
	}
	all, roots, err := e.sharing.ReadScope(ctx, viewer.P)
	if err != nil || all || len(roots) != 1 || roots[0] != team.ID {
		t.Errorf("ReadScope = %v %v %v, want the /team subtree", all, roots, err)
	}
	e.Want(e.Do("GET", "/v1/nodes/"+team.ID+"/shares", viewer.Token, nil), 200, "")

	e.Want(e.Do("DELETE", "/v1/nodes/"+team.ID+"/shares/"+sh.ID, owner.Token, nil), 204, "")
	if err := e.sharing.Authorize(ctx, viewer.P, plan.Node.ID, sharing.Read); !isCode(err, apierror.CodeNotFound) {
		t.Errorf("after revoking: read plan.txt: %v, want not_found", err)
	}
	e.Want(e.Do("GET", "/v1/nodes/"+team.ID+"/shares", viewer.Token, nil), 404, apierror.CodeNotFound)
	var mine struct{ Shares []sharing.SharedNode }
	e.Want(e.Do("GET", "/v1/shares", viewer.Token, nil), 200, "").Decode(t, &mine)
	if len(mine.Shares) != 0 {
		t.Errorf("shared with the viewer after revoking = %+v", mine.Shares)
	}
	if all, roots, err := e.sharing.ReadScope(ctx, viewer.P); err != nil || all || len(roots) != 0 {
		t.Errorf("ReadScope after revoking = %v %v %v, want nothing", all, roots, err)
	}
}

// TestLinks: a public link redirects anyone to a presigned download of the file's current
// version; password, expiry, revocation, trash and purge; the token is stored hashed and
// never logged.
func TestLinks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner, member, _ := e.Tenant("acme")
	f := e.Upload(member, "/docs/report.pdf", []byte("version one"))
	g := e.Upload(member, "/g.txt", []byte("g"))
	folder := e.Folder(member, "/folder")

	l := e.link(t, member, f.Node.ID, nil)
	if !strings.HasPrefix(l.Token, "bvl_") || l.URL != "/v1/links/"+l.Token || !l.Link.DownloadOnly || l.Link.HasPassword || l.Link.ExpiresAt != nil ||
		!strings.HasPrefix(l.Link.Prefix, "bvl_…") || len(l.Link.Prefix) > len("bvl_…")+6 {
		t.Fatalf("link = %+v", l)
	}
	body, h := e.follow(t, l.Token)
	if body != "version one" || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") {
		t.Errorf("download = %q, Content-Disposition %q; want the file as an attachment", body, h.Get("Content-Disposition"))
	}
	// The current version, after an update.
	e.UploadVersion(member, "/docs/report.pdf", []byte("version two"), f.Version.ID)
	if body, _ := e.follow(t, l.Token); body != "version two" {
		t.Errorf("download after an update = %q", body)
	}
	// Not download-only: no attachment.
	inline := e.link(t, owner, f.Node.ID, map[string]any{"download_only": false})
	if _, h := e.follow(t, inline.Token); h.Get("Content-Disposition") != "" {
		t.Errorf("inline link: Content-Disposition %q", h.Get("Content-Disposition"))
	}

	// Stored hashed.
	var hash []byte
	var prefix string
	if err := e.Super.QueryRow(ctx, "SELECT token_hash, prefix FROM share_links WHERE id = $1", l.Link.ID).Scan(&hash, &prefix); err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256([]byte(l.Token)); !bytes.Equal(hash, sum[:]) || prefix != l.Link.Prefix {
		t.Errorf("stored token_hash %x prefix %q: want the SHA-256 and a short prefix", hash, prefix)
	}

	// Password.
	pw := e.link(t, member, f.Node.ID, map[string]any{"password": "open sesame"})
	if !pw.Link.HasPassword {
		t.Error("has_password false")
	}
	e.Want(e.Do("GET", "/v1/links/"+pw.Token, "", nil), 401, apierror.CodeUnauthenticated)
	e.Want(e.Do("GET", "/v1/links/"+pw.Token, "", nil, sharing.HeaderLinkPassword, "open sesame!"), 401, apierror.CodeUnauthenticated)
	if body, _ := e.follow(t, pw.Token, sharing.HeaderLinkPassword, "open sesame"); body != "version two" {
		t.Errorf("with the password: %q", body)
	}
	e.Want(e.Do("POST", "/v1/links/"+pw.Token, "", map[string]any{"password": "open sesame"}), http.StatusFound, "")
	e.Want(e.Do("POST", "/v1/links/"+pw.Token, "", map[string]any{"password": "wrong"}), 401, apierror.CodeUnauthenticated)

	// Expiry.
	exp := e.link(t, member, f.Node.ID, map[string]any{"expires_at": e.Clock.Now().Add(time.Hour)})
	e.Want(e.Do("GET", "/v1/links/"+exp.Token, "", nil), http.StatusFound, "")
	e.Clock.Advance(2 * time.Hour)
	e.Want(e.Do("GET", "/v1/links/"+exp.Token, "", nil), http.StatusGone, apierror.CodeGone)
	e.Want(e.Do("GET", "/v1/links/"+l.Token, "", nil), http.StatusFound, "") // no expiry

	// Revocation.
	var links struct{ Links []sharing.Link }
	e.Want(e.Do("GET", "/v1/nodes/"+f.Node.ID+"/links", member.Token, nil), 200, "").Decode(t, &links)
	if len(links.Links) != 4 {
		t.Errorf("links = %d, want 4", len(links.Links))
	}
	e.Want(e.Do("DELETE", "/v1/nodes/"+f.Node.ID+"/links/"+l.Link.ID, member.Token, nil), 204, "")
	e.Want(e.Do("GET", "/v1/links/"+l.Token, "", nil), http.StatusGone, apierror.CodeGone)
	e.Want(e.Do("DELETE", "/v1/nodes/"+f.Node.ID+"/links/"+l.Link.ID, member.Token, nil), 404, apierror.CodeNotFound)
	e.Want(e.Do("GET", "/v1/nodes/"+f.Node.ID+"/links", member.Token, nil), 200, "").Decode(t, &links)
	if len(links.Links) != 3 {
		t.Errorf("links after revoking one = %d, want 3", len(links.Links))
	}

	// Unknown and malformed tokens; a token naming another tenant.
	other := "bvl_" + strings.Repeat("0", 32) + l.Token[len("bvl_")+32:]
	changed := inline.Token[:len(inline.Token)-2] + map[bool]string{true: "A", false: "B"}[inline.Token[len(inline.Token)-2] != 'A'] + inline.Token[len(inline.Token)-1:]
	for _, token := range []string{"nope", "bvl_x", other, changed} {
		e.Want(e.Do("GET", "/v1/links/"+token, "", nil), 404, apierror.CodeNotFound)
	}

	// The file in the trash: 404; restored: back; purged: gone with its links.
	e.Want(e.Do("POST", "/v1/nodes/"+f.Node.ID+"/trash", member.Token, nil), 200, "")
	e.Want(e.Do("GET", "/v1/links/"+inline.Token, "", nil), 404, apierror.CodeNotFound)
	e.Want(e.Do("POST", "/v1/nodes/"+f.Node.ID+"/restore", member.Token, nil), 200, "")
	e.Want(e.Do("GET", "/v1/links/"+inline.Token, "", nil), http.StatusFound, "")
	e.Want(e.Do("POST", "/v1/nodes/"+f.Node.ID+"/trash", member.Token, nil), 200, "")
	e.Want(e.Do("DELETE", "/v1/nodes/"+f.Node.ID, member.Token, nil), 204, "")
	e.Want(e.Do("GET", "/v1/links/"+inline.Token, "", nil), 404, apierror.CodeNotFound)

	// Bad requests.
	for _, body := range []map[string]any{
		{"password": "short"},
		{"expires_at": e.Clock.Now().Add(-time.Minute)},
		{"expires_at": e.Clock.Now().Add(400 * 24 * time.Hour)},
		{"expires": "tomorrow"},
	} {
		e.Want(e.Do("POST", "/v1/nodes/"+g.Node.ID+"/links", member.Token, body), 400, apierror.CodeInvalidArgument)
	}
	e.Want(e.Do("POST", "/v1/nodes/"+folder.ID+"/links", member.Token, nil), 400, apierror.CodeInvalidArgument)
	e.Want(e.Do("PUT", "/v1/links/"+inline.Token, "", nil), 405, apierror.CodeMethodNotAllowed)

	// A suspended tenant's links stop working.
	gl := e.link(t, member, g.Node.ID, nil)
	e.Want(e.Do("GET", "/v1/links/"+gl.Token, "", nil), http.StatusFound, "")
	e.Exec("UPDATE tenants SET status = 'suspended' WHERE id = $1", owner.P.TenantID)
	e.Want(e.Do("GET", "/v1/links/"+gl.Token, "", nil), 404, apierror.CodeNotFound)
}

// TestLinkTokenNotLogged: the access log shows the link's tenant prefix, never its secret.
func TestLinkTokenNotLogged(t *testing.T) {
	e := newEnv(t)
	_, member, _ := e.Tenant("acme")
	f := e.Upload(member, "/a.txt", []byte("a"))
	l := e.link(t, member, f.Node.ID, nil)
	var logs bytes.Buffer
	h := server.Handler(slog.New(slog.NewJSONHandler(&logs, nil)), e.Mux)
	for _, method := range []string{"GET", "POST"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "/v1/links/"+l.Token, nil))
		if rec.Code != http.StatusFound {
			t.Fatalf("%s: %d %s", method, rec.Code, rec.Body)
		}
	}
	secret := l.Token[len(l.Token)-43:]
	if !strings.Contains(logs.String(), `"path":"/v1/links/bvl_`) || strings.Contains(logs.String(), secret) {
		t.Errorf("access log:\n%s\nwant the link path without its secret", logs.String())
	}
}

// TestCrossTenant: every sharing endpoint answers 404 for another tenant's nodes, shares and
// links, and a share cannot name another tenant's user.
func TestCrossTenant(t *testing.T) {
	e := newEnv(t)
	ownerA, _, viewerA := e.Tenant("acme")
	ownerB, _, _ := e.Tenant("globex")
	f := e.Upload(ownerA, "/a.txt", []byte("a"))
	var sh sharing.Share
	e.Want(e.Do("POST", "/v1/nodes/"+f.Node.ID+"/shares", ownerA.Token, map[string]any{"user_id": viewerA.P.UserID, "role": "viewer"}), 201, "").Decode(t, &sh)
	l := e.link(t, ownerA, f.Node.ID, nil)

	for _, req := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/nodes/" + f.Node.ID + "/shares", nil},
		{"POST", "/v1/nodes/" + f.Node.ID + "/shares", map[string]any{"user_id": ownerB.P.UserID, "role": "editor"}},
		{"DELETE", "/v1/nodes/" + f.Node.ID + "/shares/" + sh.ID, nil},
		{"GET", "/v1/nodes/" + f.Node.ID + "/links", nil},
		{"POST", "/v1/nodes/" + f.Node.ID + "/links", nil},
		{"DELETE", "/v1/nodes/" + f.Node.ID + "/links/" + l.Link.ID, nil},
	} {
		e.Want(e.Do(req.method, req.path, ownerB.Token, req.body), 404, apierror.CodeNotFound)
	}
	// B's own node shared with A's user: no such user in B.
	g := e.Upload(ownerB, "/b.txt", []byte("b"))
	e.Want(e.Do("POST", "/v1/nodes/"+g.Node.ID+"/shares", ownerB.Token, map[string]any{"user_id": viewerA.P.UserID, "role": "editor"}), 404, apierror.CodeNotFound)
	e.Want(e.Do("POST", "/v1/nodes/"+g.Node.ID+"/shares", ownerB.Token, map[string]any{"email": viewerA.Email, "role": "editor"}), 404, apierror.CodeNotFound)
	var mine struct{ Shares []sharing.SharedNode }
	e.Want(e.Do("GET", "/v1/shares", ownerB.Token, nil), 200, "").Decode(t, &mine)
	if len(mine.Shares) != 0 {
		t.Errorf("B's shared-with-me = %+v", mine.Shares)
	}
	// Nothing changed in A.
	e.Want(e.Do("GET", "/v1/links/"+l.Token, "", nil), http.StatusFound, "")
	var list struct{ Shares []sharing.Share }
	e.Want(e.Do("GET", "/v1/nodes/"+f.Node.ID+"/shares", ownerA.Token, nil), 200, "").Decode(t, &list)
	if len(list.Shares) != 1 {
		t.Errorf("A's shares = %+v", list.Shares)
	}
}

func isCode(err error, code string) bool {
	c, ok := err.(*apierror.Coded)
	return ok && c.Code == code
}
