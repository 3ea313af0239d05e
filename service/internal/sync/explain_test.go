package sync

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

// TestPullUsesJournalIndex: with a sizeable journal for two tenants, the pull query (as the
// app role, under row-level security) reads change_journal by an Index Scan of its primary
// key (tenant_id, seq), never a sequential scan.
func TestPullUsesJournalIndex(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	owner, _, _ := e.Tenant("acme")
	other, _, _ := e.Tenant("globex")
	for _, p := range []apitest.User{owner, other} {
		e.Exec(`INSERT INTO nodes (tenant_id, id, type, name, created_by) VALUES ($1, $1, 'folder', 'root', $2)`, p.P.TenantID, p.P.UserID)
		e.Exec(`INSERT INTO change_journal (tenant_id, seq, node_id, op, node_type, parent_id, name, actor_id)
SELECT $1, g, $1, 'create', 'file', $1, 'f' || g, $2 FROM generate_series(1, 20000) g`, p.P.TenantID, p.P.UserID)
		e.Exec(`INSERT INTO journal_counters (tenant_id, seq) VALUES ($1, 20000)`, p.P.TenantID)
	}
	e.Exec("ANALYZE change_journal")
	e.Exec("ANALYZE nodes")

	for _, cursor := range []int64{0, 10000, 19990} {
		var scans []pgtest.Scan
		var plan string
		err := db.WithTenant(ctx, e.Pool, owner.P.TenantID, func(tx pgx.Tx) (err error) {
			scans, plan, err = pgtest.Scans(ctx, tx, "change_journal", PullSQL, owner.P.TenantID, cursor, DefaultPageSize+1)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(scans) != 1 || scans[0].Type != "Index Scan" || scans[0].Index != "change_journal_pkey" {
			t.Errorf("cursor %d: change_journal read by %+v, want one Index Scan using change_journal_pkey\n%s", cursor, scans, plan)
		}
	}
	// And the query gives the page it should.
	var got []int64
	err := db.WithTenant(ctx, e.Pool, owner.P.TenantID, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT seq FROM ("+PullSQL+") q", owner.P.TenantID, int64(19990), 5)
		if err != nil {
			return err
		}
		got, err = pgx.CollectRows(rows, pgx.RowTo[int64])
		return err
	})
	if err != nil || len(got) != 5 || got[0] != 19991 || got[4] != 19995 {
		t.Errorf("page after 19990 = %v (%v), want 19991..19995", got, err)
	}
}
