package files_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

// TestChildQueriesUseIndexes: with many nodes in a folder and at the root of two tenants,
// the folder listing (first page and after a cursor) and the child-by-name lookup of the
// commit path read nodes through an index as the app role under row-level security, never
// by a sequential scan. (Migration 0007: on 0002's coalesce() expression indexes the planner
// fell back to sequential scans, 0.5 s at 1M nodes.)
func TestChildQueriesUseIndexes(t *testing.T) {
	e := apitest.New(t)
	ctx := context.Background()
	owner, _, _ := e.Tenant("acme")
	other, _, _ := e.Tenant("globex")
	folder := e.Folder(owner, "/big")
	const n = 20000
	for _, u := range []apitest.User{owner, other} {
		// n files in /big (the other tenant: in a folder of its own) and n at the root.
		parent := folder.ID
		if u.P.TenantID != owner.P.TenantID {
			parent = e.Folder(u, "/big").ID
		}
		for _, p := range []*string{&parent, nil} {
			e.Exec(`INSERT INTO nodes (tenant_id, parent_id, type, name, created_by)
SELECT $1, $2, 'folder', 'f-' || lpad(g::text, 6, '0'), $3 FROM generate_series(1, $4::int) g`, u.P.TenantID, p, u.P.UserID, n)
		}
	}
	e.Exec("ANALYZE nodes")

	root := files.ParentKey(nil)
	cases := []struct {
		name, sql string
		args      []any
		index     string
	}{
		{"list folder", files.ListSQL(false, 101), []any{owner.P.TenantID, folder.ID}, "nodes_children_key"},
		{"list folder after cursor", files.ListSQL(true, 101), []any{owner.P.TenantID, folder.ID, "f-010000", root}, "nodes_children_key"},
		{"list root", files.ListSQL(false, 101), []any{owner.P.TenantID, root}, "nodes_children_key"},
		{"child by name", files.ChildSQL, []any{owner.P.TenantID, folder.ID, "f-012345"}, "nodes_live_name_key"},
		{"child by name at the root", files.ChildSQL, []any{owner.P.TenantID, root, "f-000001"}, "nodes_live_name_key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var scans []pgtest.Scan
			var plan string
			err := db.WithTenant(ctx, e.Pool, owner.P.TenantID, func(tx pgx.Tx) (err error) {
				scans, plan, err = pgtest.Scans(ctx, tx, "nodes", c.sql, c.args...)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(scans) != 1 || scans[0].Index == "" || scans[0].Type == "Seq Scan" {
				t.Fatalf("nodes read by %+v, want an index scan (%s)\n%s", scans, c.index, plan)
			}
			if scans[0].Index != c.index {
				t.Errorf("nodes read by %s using %s, want %s", scans[0].Type, scans[0].Index, c.index)
			}
		})
	}

	// And the queries give the rows they should.
	err := db.WithTenant(ctx, e.Pool, owner.P.TenantID, func(tx pgx.Tx) error {
		var names []string
		rows, err := tx.Query(ctx, fmt.Sprintf("SELECT name FROM (%s) q", files.ListSQL(true, 3)), owner.P.TenantID, folder.ID, "f-010000", root)
		if err != nil {
			return err
		}
		if names, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
		if fmt.Sprint(names) != "[f-010000 f-010001 f-010002]" {
			// (name, id) > ("f-010000", nil uuid): the node named f-010000 itself comes first.
			t.Errorf("page after (f-010000, 0…) = %v, want [f-010000 f-010001 f-010002]", names)
		}
		var got string
		if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT name FROM (%s) q", files.ChildSQL), owner.P.TenantID, root, "big").Scan(&got); err != nil {
			return fmt.Errorf("root child big: %w", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
