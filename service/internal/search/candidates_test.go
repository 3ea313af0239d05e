package search_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/search"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
)

// indexScans returns the number of scans of each index of the search (pg_stat_user_indexes).
func indexScans(t *testing.T, e *apitest.Env) map[string]int64 {
	t.Helper()
	rows, err := e.Super.Query(context.Background(), "SELECT indexrelname, idx_scan FROM pg_stat_user_indexes WHERE indexrelname IN ('nodes_search_tenant', 'node_content_search_tenant')")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			t.Fatal(err)
		}
		out[name] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// onOneConnection is a search.Service on a pool of one app-role connection without
// sequential scans, and a function
// making that backend publish its statistics now (they are otherwise flushed when it has
// been idle a while).
func onOneConnection(t *testing.T, e *apitest.Env) (*search.Service, func()) {
	t.Helper()
	cfg, err := db.ParseConfig(e.Pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	// The question is whether the planner may use the indexes at all (under row-level
	// security it may not for a leaky condition, whatever the cost), not whether it prefers
	// them for this little data: make sequential scans the last resort.
	cfg.ConnConfig.RuntimeParams["enable_seqscan"] = "off"
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := search.New(pool, readEverything{}, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	flush := func() {
		t.Helper()
		// The flush happens when the backend next goes idle: after the second statement.
		for _, q := range []string{"SELECT pg_stat_force_next_flush()", "SELECT 1"} {
			if _, err := pool.Exec(context.Background(), q); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s, flush
}

// TestSearchUsesIndexes: a search reads the GIN indexes of names and contents (through
// search_candidates: as bitvault_app, under row-level security, the planner cannot use them
// for the non-leakproof @@ operator), with the same results as before: name, content and a
// query whose words are split between a node's name and its content.
func TestSearchUsesIndexes(t *testing.T) {
	e := newEnv(t, nil)
	owner, member, _ := e.Tenant("acme")
	other, _, _ := e.Tenant("globex")
	notes := e.Upload(member, "/docs/meeting-notes.txt", []byte("x"))
	e.Upload(member, "/docs/budget.xlsx", []byte("y"))
	e.Upload(other, "/docs/meeting-minutes.txt", []byte("z"))
	e.Exec(`INSERT INTO node_content (tenant_id, node_id, version_id, content, search_vector)
VALUES ($1, $2, $3, 'the quarterly roadmap', setweight(to_tsvector('simple', 'the quarterly roadmap'), 'D'))`,
		owner.P.TenantID, notes.Node.ID, notes.Version.ID)
	// Other rows, to search among.
	filler := e.Folder(member, "/filler")
	e.Exec(`INSERT INTO nodes (tenant_id, parent_id, type, name, created_by)
SELECT $1, $2, 'folder', 'filler-' || g, $3 FROM generate_series(1, 2000) g`, owner.P.TenantID, filler.ID, owner.P.UserID)
	e.Exec(`INSERT INTO node_content (tenant_id, node_id, version_id, content, search_vector)
SELECT tenant_id, id, $2, name, to_tsvector('simple', name) FROM nodes WHERE tenant_id = $1 AND parent_id = $3`, owner.P.TenantID, notes.Version.ID, filler.ID)
	e.Exec("ANALYZE nodes")
	e.Exec("ANALYZE node_content")

	cases := []struct {
		q     string
		want  []string
		index string
	}{
		{"meeting", []string{"meeting-notes.txt"}, "nodes_search_tenant"}, // not globex's
		{"roadmap", []string{"meeting-notes.txt"}, "node_content_search_tenant"},
		{"meeting roadmap", []string{"meeting-notes.txt"}, "node_content_search_tenant"}, // split between name and content
		{"budget roadmap", []string{}, "nodes_search_tenant"},
	}
	s, flush := onOneConnection(t, e.Env)
	for _, c := range cases {
		t.Run(c.q, func(t *testing.T) {
			before := indexScans(t, e.Env)
			page, err := s.Search(context.Background(), owner.P, c.q, "", 100)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, h := range page.Results {
				got = append(got, h.Name)
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("search %q = %v, want %v", c.q, got, c.want)
			}
			flush()
			if after := indexScans(t, e.Env); after[c.index] <= before[c.index] {
				t.Errorf("%s not scanned by the search (idx_scan %d → %d): the match is not index-backed", c.index, before[c.index], after[c.index])
			}
		})
	}
}

// TestSearchCandidatesTenantScoped: search_candidates returns the current tenant's nodes only
// and refuses to run without a tenant, whoever calls it.
func TestSearchCandidatesTenantScoped(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	a, _, _ := e.Tenant("acme")
	b, _, _ := e.Tenant("globex")
	na := e.Upload(a, "/shared-name.txt", []byte("a"))
	e.Upload(b, "/shared-name.txt", []byte("b"))
	const q = "SELECT node_id FROM search_candidates(to_tsquery('simple', 'shared'), to_tsquery('simple', 'shared'), 100)"

	var got []string
	err := db.WithTenant(ctx, e.Pool, a.P.TenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q)
		if err != nil {
			return err
		}
		got, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil || !slices.Equal(got, []string{na.Node.ID}) {
		t.Errorf("as acme: %v (%v), want only acme's node %s", got, err, na.Node.ID)
	}
	_, err = e.Pool.Exec(ctx, q)
	if err == nil || !isCode(err, "42501") {
		t.Errorf("without a tenant: err %v, want 42501 app.tenant_id is not set", err)
	}
}

// TestCandidateLimit: a word matching more nodes than the limit is ranked among at most
// that many of them per lookup, and a narrower query still finds its node.
func TestCandidateLimit(t *testing.T) {
	e := apitest.New(t)
	owner, _, _ := e.Tenant("acme")
	folder := e.Folder(owner, "/many")
	e.Exec(`INSERT INTO nodes (tenant_id, parent_id, type, name, created_by)
SELECT $1, $2, 'folder', 'common-' || g, $3 FROM generate_series(1, 50) g`, owner.P.TenantID, folder.ID, owner.P.UserID)
	s, err := search.New(e.Pool, readEverything{}, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	s.CandidateLimit = 10
	page, err := s.Search(context.Background(), owner.P, "common", "", 100)
	if err != nil || len(page.Results) != 10 {
		t.Errorf("common with 10 candidates: %d results (%v), want 10", len(page.Results), err)
	}
	page, err = s.Search(context.Background(), owner.P, "common 37", "", 100)
	if err != nil || len(page.Results) != 1 || page.Results[0].Name != "common-37" {
		t.Errorf("'common 37': %+v (%v), want common-37", page.Results, err)
	}
}

// readEverything lets every caller read the whole tenant.
type readEverything struct{}

func (readEverything) ReadScope(context.Context, identity.Principal) (bool, []string, error) {
	return true, nil, nil
}

func isCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// TestCandidatesSkipTrash: a node in the trash does not take a candidate slot through its
// content, so the live match is still found with a limit of one.
func TestCandidatesSkipTrash(t *testing.T) {
	e := apitest.New(t)
	owner, _, _ := e.Tenant("acme")
	content := func(n files.CommitResult, text string) {
		e.Exec(`INSERT INTO node_content (tenant_id, node_id, version_id, content, search_vector)
VALUES ($1, $2, $3, $4, setweight(to_tsvector('simple', $4), 'D'))`, owner.P.TenantID, n.Node.ID, n.Version.ID, text)
	}
	trashed := e.Upload(owner, "/old.txt", []byte("a"))
	content(trashed, "zebra crossing")
	e.Want(e.Do("POST", "/v1/nodes/"+trashed.Node.ID+"/trash", owner.Token, nil), 200, "")
	live := e.Upload(owner, "/new.txt", []byte("b"))
	content(live, "zebra stripes")

	s, err := search.New(e.Pool, readEverything{}, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	s.CandidateLimit = 1
	page, err := s.Search(context.Background(), owner.P, "zebra", "", 10)
	if err != nil || len(page.Results) != 1 || page.Results[0].Name != "new.txt" {
		t.Errorf("zebra with one candidate: %+v (%v), want new.txt", page.Results, err)
	}
}
