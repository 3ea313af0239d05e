package search_test

import (
	"net/url"
	"os"
	"slices"
	"testing"

	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/search"
	"github.com/bitvault/bitvault/service/internal/sharing"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
)

func TestMain(m *testing.M) { os.Exit(apitest.Main(m)) }

type env struct {
	*apitest.Env
}

// newEnv serves search (and sharing, which decides what a caller may read) on an
// apitest.Env; rbac, if set, replaces identity's role table.
func newEnv(t *testing.T, rbac func(identity.Principal, identity.Permission) error) *env {
	t.Helper()
	e := apitest.New(t)
	sh, err := sharing.New(e.Pool, e.Identity, e.Store, sharing.Config{Now: e.Clock.Now, RBAC: rbac}, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	sh.Routes(e.Mux, e.Auth)
	s, err := search.New(e.Pool, sh, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	s.Routes(e.Mux, e.Auth)
	return &env{Env: e}
}

func (e *env) search(t *testing.T, u apitest.User, q string, extra string) search.Page {
	t.Helper()
	var p search.Page
	e.Want(e.Do("GET", "/v1/search?q="+url.QueryEscape(q)+extra, u.Token, nil), 200, "").Decode(t, &p)
	return p
}

func (e *env) names(t *testing.T, u apitest.User, q string) []string {
	t.Helper()
	out := []string{}
	for _, h := range e.search(t, u, q, "&limit=100").Results {
		out = append(out, h.Name)
	}
	return out
}

// TestRanking: prefix matching on the words of names and metadata, every word required; an
// exact name first, then the name without its extension, then by ts_rank.
func TestRanking(t *testing.T) {
	e := newEnv(t, nil)
	owner, member, _ := e.Tenant("acme")
	e.Upload(member, "/docs/annual report draft.txt", []byte("1"))
	e.Upload(member, "/docs/Quarterly_Report-2024.final.docx", []byte("2"))
	e.Upload(member, "/docs/report.pdf", []byte("3"))
	e.Upload(member, "/docs/reports.csv", []byte("4"))
	e.Folder(member, "/archive/report")
	u := e.Upload(member, "/docs/unrelated.txt", []byte("5"))

	got := e.names(t, owner, "report")
	if len(got) != 5 || got[0] != "report" || got[1] != "report.pdf" || slices.Contains(got, "unrelated.txt") {
		t.Errorf("search report = %v, want the folder 'report', then report.pdf, then the partial matches", got)
	}
	if got := e.names(t, owner, "REPORT.PDF"); len(got) == 0 || got[0] != "report.pdf" {
		t.Errorf("search REPORT.PDF = %v, want report.pdf first", got)
	}
	if got := e.names(t, owner, "rep"); len(got) != 5 {
		t.Errorf("search rep (prefix) = %v, want the 5 report*", got)
	}
	if got := e.names(t, owner, "quarterly final"); !slices.Equal(got, []string{"Quarterly_Report-2024.final.docx"}) {
		t.Errorf("search 'quarterly final' = %v", got)
	}
	if got := e.names(t, owner, "2024 docx"); !slices.Equal(got, []string{"Quarterly_Report-2024.final.docx"}) {
		t.Errorf("search '2024 docx' = %v", got)
	}
	if got := e.names(t, owner, "report nothing"); len(got) != 0 {
		t.Errorf("search 'report nothing' = %v, want none (every word required)", got)
	}
	// The path comes with each hit.
	p := e.search(t, owner, "unrelated", "")
	if len(p.Results) != 1 || p.Results[0].Path != "/docs/unrelated.txt" || p.Results[0].Type != "file" || p.Results[0].Size != 1 {
		t.Errorf("search unrelated = %+v", p.Results)
	}

	// Metadata is searched too, and kept in step with it.
	if got := e.names(t, owner, "apollo"); len(got) != 0 {
		t.Fatalf("apollo before any metadata: %v", got)
	}
	e.Exec("INSERT INTO node_metadata (tenant_id, node_id, key, value) VALUES ($1, $2, 'project', 'Apollo moon-landing')", owner.P.TenantID, u.Node.ID)
	if got := e.names(t, owner, "apollo moon"); !slices.Equal(got, []string{"unrelated.txt"}) {
		t.Errorf("search 'apollo moon' = %v, want unrelated.txt by its metadata", got)
	}
	// A name match outranks a metadata match.
	e.Upload(member, "/apollo.txt", []byte("6"))
	if got := e.names(t, owner, "apollo"); !slices.Equal(got, []string{"apollo.txt", "unrelated.txt"}) {
		t.Errorf("search apollo = %v, want the name match first", got)
	}
	e.Exec("DELETE FROM node_metadata WHERE tenant_id = $1 AND node_id = $2", owner.P.TenantID, u.Node.ID)
	if got := e.names(t, owner, "moon"); len(got) != 0 {
		t.Errorf("search moon after deleting the metadata = %v", got)
	}
	// Renames are searched by the new name.
	e.Want(e.Do("POST", "/v1/nodes/"+u.Node.ID+"/move", member.Token, map[string]any{"name": "budget.xlsx"}), 200, "")
	if got := e.names(t, owner, "budget"); !slices.Equal(got, []string{"budget.xlsx"}) {
		t.Errorf("search budget after the rename = %v", got)
	}
	if got := e.names(t, owner, "unrelated"); len(got) != 0 {
		t.Errorf("search unrelated after the rename = %v", got)
	}

	// A node with metadata can be purged (the metadata goes with it).
	m := e.Upload(member, "/meta.txt", []byte("m"))
	e.Exec("INSERT INTO node_metadata (tenant_id, node_id, key, value) VALUES ($1, $2, 'k', 'zebra')", owner.P.TenantID, m.Node.ID)
	if got := e.names(t, owner, "zebra"); !slices.Equal(got, []string{"meta.txt"}) {
		t.Errorf("search zebra = %v", got)
	}
	e.Want(e.Do("POST", "/v1/nodes/"+m.Node.ID+"/trash", member.Token, nil), 200, "")
	if got := e.names(t, owner, "zebra"); len(got) != 0 {
		t.Errorf("search zebra with meta.txt in the trash = %v", got)
	}
	e.Want(e.Do("DELETE", "/v1/nodes/"+m.Node.ID, member.Token, nil), 204, "")

	for _, bad := range []string{"q=", "q=%20%2B%2B%20", "q=a&limit=0", "q=a&limit=101", "q=a&cursor=garbage"} {
		e.Want(e.Do("GET", "/v1/search?"+bad, owner.Token, nil), 400, apierror.CodeInvalidArgument)
	}
	e.Want(e.Do("GET", "/v1/search?q=a", "", nil), 401, apierror.CodeUnauthenticated)
	// tsquery syntax in q is only words.
	if got := e.names(t, owner, "report & !x | (y) :* 'z'"); len(got) != 0 {
		t.Errorf("search with operators = %v", got)
	}
}

// TestPagination: keyset pages cover the ranked results once each, in order.
func TestPagination(t *testing.T) {
	e := newEnv(t, nil)
	owner, _, _ := e.Tenant("acme")
	for _, name := range []string{"plan", "plan.txt", "plan b.txt", "old plan.txt", "plan 2024 q1 final.txt", "plans", "planning notes.md"} {
		e.Folder(owner, "/x/"+name)
	}
	full := e.search(t, owner, "plan", "&limit=100").Results
	if len(full) != 7 || full[0].Name != "plan" || full[1].Name != "plan.txt" {
		t.Fatalf("one page: %v", full)
	}
	var paged []search.Hit
	cursor, pages := "", 0
	for {
		p := e.search(t, owner, "plan", "&limit=3&cursor="+cursor)
		paged = append(paged, p.Results...)
		pages++
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if pages != 3 || len(paged) != len(full) {
		t.Fatalf("%d pages, %d hits; want 3 pages, %d hits", pages, len(paged), len(full))
	}
	for i := range full {
		if paged[i].ID != full[i].ID {
			t.Errorf("hit %d: %s paged, %s in one page", i, paged[i].Name, full[i].Name)
		}
		if i > 0 && full[i].Rank > full[i-1].Rank {
			t.Errorf("hit %d ranks above hit %d", i, i-1)
		}
	}
}

// TestPermissionFiltering: what each caller sees. With identity's roles every member of the
// tenant reads every live node; trashed nodes (and what is under them) never show. With the
// digest's stricter roles a viewer sees only what is shared with it, until revoked. Another
// tenant's nodes never show.
func TestPermissionFiltering(t *testing.T) {
	t.Run("identity roles", func(t *testing.T) {
		e := newEnv(t, nil)
		owner, member, viewer := e.Tenant("acme")
		e.Upload(member, "/team/report a.txt", []byte("a"))
		e.Upload(member, "/old/report b.txt", []byte("b"))
		c := e.Upload(member, "/report c.txt", []byte("c"))
		for _, u := range []apitest.User{owner, member, viewer, e.APIToken(viewer, "files:read")} {
			if got := e.names(t, u, "report"); len(got) != 3 {
				t.Errorf("%s sees %v, want 3 reports", u.Email, got)
			}
		}
		old := e.search(t, owner, "old", "").Results
		if len(old) != 1 || old[0].Path != "/old" {
			t.Fatalf("search old = %+v", old)
		}
		e.Want(e.Do("POST", "/v1/nodes/"+old[0].ID+"/trash", member.Token, nil), 200, "")
		e.Want(e.Do("POST", "/v1/nodes/"+c.Node.ID+"/trash", member.Token, nil), 200, "")
		if got := e.names(t, viewer, "report"); !slices.Equal(got, []string{"report a.txt"}) {
			t.Errorf("with /old and /report c.txt in the trash: %v, want only report a.txt", got)
		}
		admin := e.APIToken(owner, "admin")
		e.Want(e.Do("GET", "/v1/search?q=report", admin.Token, nil), 403, apierror.CodeInsufficientScope)

		ownerB, _, _ := e.Tenant("globex")
		if got := e.names(t, ownerB, "report"); len(got) != 0 {
			t.Errorf("another tenant sees %v", got)
		}
		e.Upload(ownerB, "/report b2.txt", []byte("b2"))
		if got := e.names(t, ownerB, "report"); !slices.Equal(got, []string{"report b2.txt"}) {
			t.Errorf("tenant B sees %v, want only its own", got)
		}
		if got := e.names(t, owner, "b2"); len(got) != 0 {
			t.Errorf("tenant A sees B's %v", got)
		}
	})
	t.Run("viewers read what is shared", func(t *testing.T) {
		e := newEnv(t, func(p identity.Principal, perm identity.Permission) error {
			if p.Role == identity.RoleViewer && (perm == identity.PermFilesRead || perm == identity.PermFilesWrite) {
				return identity.ErrPermissionDenied
			}
			return identity.Authorize(p, perm)
		})
		owner, member, viewer := e.Tenant("acme")
		team := e.Folder(member, "/team")
		e.Upload(member, "/team/sub/report a.txt", []byte("a"))
		e.Upload(member, "/report c.txt", []byte("c"))
		single := e.Upload(member, "/private/report d.txt", []byte("d"))
		if got := e.names(t, member, "report"); len(got) != 3 {
			t.Errorf("member sees %v, want all 3", got)
		}
		if got := e.names(t, viewer, "report"); len(got) != 0 {
			t.Errorf("viewer, nothing shared, sees %v", got)
		}
		var sh sharing.Share
		e.Want(e.Do("POST", "/v1/nodes/"+team.ID+"/shares", owner.Token, map[string]any{"user_id": viewer.P.UserID, "role": "viewer"}), 201, "").Decode(t, &sh)
		e.Want(e.Do("POST", "/v1/nodes/"+single.Node.ID+"/shares", owner.Token, map[string]any{"user_id": viewer.P.UserID, "role": "editor"}), 201, "")
		if got := e.names(t, viewer, "report"); !slices.Equal(got, []string{"report a.txt", "report d.txt"}) && !slices.Equal(got, []string{"report d.txt", "report a.txt"}) {
			t.Errorf("viewer with /team and report d.txt shared sees %v", got)
		}
		if got := e.names(t, viewer, "team"); !slices.Equal(got, []string{"team"}) {
			t.Errorf("viewer searching team sees %v, want the shared folder itself", got)
		}
		e.Want(e.Do("DELETE", "/v1/nodes/"+team.ID+"/shares/"+sh.ID, owner.Token, nil), 204, "")
		if got := e.names(t, viewer, "report"); !slices.Equal(got, []string{"report d.txt"}) {
			t.Errorf("after revoking /team, viewer sees %v", got)
		}
	})
}
