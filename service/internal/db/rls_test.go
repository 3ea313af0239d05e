package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

const (
	tenantA = "aaaaaaaa-0000-4000-8000-000000000001"
	tenantB = "bbbbbbbb-0000-4000-8000-000000000002"
)

// fixtures inserts rows for one tenant into every tenant-owned table, keyed by table name.
// A new tenant-owned table must get an entry here: TestRLSCatalog fails otherwise, so the
// isolation proof always covers every table.
var fixtures = map[string]string{
	"tenants":        `INSERT INTO tenants (id, slug, name) VALUES ($1::uuid, 'slug-' || left($1::uuid::text, 8), 'Tenant')`,
	"users":          `INSERT INTO users (tenant_id, id, email, password_hash) VALUES ($1::uuid, $1::uuid, 'owner@example.com', 'x')`,
	"memberships":    `INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1::uuid, $1::uuid, 'owner')`,
	"sessions":       `INSERT INTO sessions (tenant_id, id, user_id, expires_at) VALUES ($1::uuid, $1::uuid, $1::uuid, now() + interval '1 day')`,
	"refresh_tokens": `INSERT INTO refresh_tokens (tenant_id, session_id, token_hash, expires_at) VALUES ($1::uuid, $1::uuid, sha256(($1::uuid::text)::bytea), now() + interval '1 day')`,
	"api_tokens":     `INSERT INTO api_tokens (tenant_id, user_id, name, token_hash, prefix, scopes, expires_at) VALUES ($1::uuid, $1::uuid, 'ci', sha256(('api' || $1::uuid::text)::bytea), 'bvt_x', '{files:read}', now() + interval '1 day')`,
	// 0002_files
	"blobs":            `INSERT INTO blobs (tenant_id, hash, size, refcount, state) VALUES ($1::uuid, repeat('a', 64), 3, 1, 'committed')`,
	"nodes":            `INSERT INTO nodes (tenant_id, id, type, name, created_by) VALUES ($1::uuid, $1::uuid, 'file', 'a.txt', $1::uuid)`,
	"versions":         `INSERT INTO versions (tenant_id, id, node_id, number, blob_hash, size, created_by) VALUES ($1::uuid, $1::uuid, $1::uuid, 1, repeat('a', 64), 3, $1::uuid)`,
	"uploads":          `INSERT INTO uploads (tenant_id, path, staging_key, size, blake3, created_by, expires_at) VALUES ($1::uuid, 'a.txt', 'staging/' || $1::uuid::text || '/x', 3, repeat('a', 64), $1::uuid, now() + interval '1 hour')`,
	"change_journal":   `INSERT INTO change_journal (tenant_id, seq, node_id, op, node_type, name, version_id, actor_id) VALUES ($1::uuid, 1, $1::uuid, 'create', 'file', 'a.txt', $1::uuid, $1::uuid)`,
	"journal_counters": `INSERT INTO journal_counters (tenant_id, seq) VALUES ($1::uuid, 1)`,
	"outbox":           `INSERT INTO outbox (tenant_id, topic, payload) VALUES ($1::uuid, 'files.version.created', '{}')`,
	"quotas":           `INSERT INTO quotas (tenant_id, bytes_limit) VALUES ($1::uuid, 100)`,
	// 0003_sync_sharing_search
	"devices":          `INSERT INTO devices (tenant_id, id, user_id, name, sync_cursor) VALUES ($1::uuid, $1::uuid, $1::uuid, 'laptop', 1)`,
	"journal_horizons": `INSERT INTO journal_horizons (tenant_id, horizon) VALUES ($1::uuid, 0)`,
	"shares":           `INSERT INTO shares (tenant_id, node_id, user_id, role, created_by) VALUES ($1::uuid, $1::uuid, $1::uuid, 'viewer', $1::uuid)`,
	"share_links":      `INSERT INTO share_links (tenant_id, node_id, token_hash, prefix, created_by) VALUES ($1::uuid, $1::uuid, sha256(('link' || $1::uuid::text)::bytea), 'bvl_x', $1::uuid)`,
	"node_metadata":    `INSERT INTO node_metadata (tenant_id, node_id, key, value) VALUES ($1::uuid, $1::uuid, 'project', 'apollo')`,
	// 0004_admin_audit
	"feature_flags": `INSERT INTO feature_flags (tenant_id, key, value) VALUES ($1::uuid, 'beta', 'true')`,
	"usage_meters":  `INSERT INTO usage_meters (tenant_id, month, uploads) VALUES ($1::uuid, date_trunc('month', now())::date, 1)`,
	"audit_log":     `INSERT INTO audit_log (tenant_id, actor_id, event_type) VALUES ($1::uuid, $1::uuid, 'auth.login.succeeded')`,
	// 0005_events
	"processed_events": `INSERT INTO processed_events (tenant_id, consumer, event_id) VALUES ($1::uuid, 'meter', $1::uuid::text)`,
	"usage_counters":   `INSERT INTO usage_counters (tenant_id, versions_created) VALUES ($1::uuid, 1)`,
	// 0006_workers
	"node_content":       `INSERT INTO node_content (tenant_id, node_id, version_id, content, search_vector) VALUES ($1::uuid, $1::uuid, $1::uuid, 'hello world', to_tsvector('simple', 'hello world'))`,
	"webhook_endpoints":  `INSERT INTO webhook_endpoints (tenant_id, id, url, secret, created_by) VALUES ($1::uuid, $1::uuid, 'https://hooks.example/x', 'whsec_x', $1::uuid)`,
	"webhook_deliveries": `INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_id, event_type, payload, next_attempt_at) VALUES ($1::uuid, $1::uuid, $1::uuid::text, 'files.node.created', '{}', now())`,
	// 0008_rate_limits
	"rate_limits": `INSERT INTO rate_limits (tenant_id, scope, key, failures, window_start, expires_at) VALUES ($1::uuid, 'login.target', sha256(('rl' || $1::uuid::text)::bytea), 1, now(), now() + interval '15 minutes')`,
}

// fixtureOrder respects the foreign keys.
var fixtureOrder = []string{"tenants", "users", "memberships", "sessions", "refresh_tokens", "api_tokens",
	"blobs", "nodes", "versions", "uploads", "change_journal", "journal_counters", "outbox", "quotas",
	"devices", "journal_horizons", "shares", "share_links", "node_metadata",
	"feature_flags", "usage_meters", "audit_log",
	"processed_events", "usage_counters",
	"node_content", "webhook_endpoints", "webhook_deliveries",
	"rate_limits"}

// tenantColumn is the column the policy compares with app.tenant_id.
func tenantColumn(table string) string {
	if table == "tenants" {
		return "id"
	}
	return "tenant_id"
}

// seed fills every tenant-owned table with rows of tenants A and B, as the superuser.
func seed(t *testing.T, d *pgtest.DB) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	super := connect(t, d.SuperDSN)
	for _, tenant := range []string{tenantA, tenantB} {
		for _, table := range fixtureOrder {
			if _, err := super.Exec(ctx, fixtures[table], tenant); err != nil {
				t.Fatalf("seed %s for %s: %v", table, tenant, err)
			}
		}
	}
	return super
}

// rlsTables lists the tables of the public schema that row-level security must cover: all
// but schema_migrations.
func rlsTables(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname <> 'schema_migrations' ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

// TestRLSCatalog checks the schema itself: every table but schema_migrations has tenant_id
// (tenants: id), ENABLE and FORCE ROW LEVEL SECURITY and the app.tenant_id policy, and is
// covered by the fixtures of TestRLSIsolation; the app role is no superuser, cannot bypass
// RLS and owns nothing.
func TestRLSCatalog(t *testing.T) {
	ctx := context.Background()
	d := pgtest.New(t)
	super := connect(t, d.SuperDSN)
	tables := rlsTables(t, super)
	if len(tables) == 0 {
		t.Fatal("no tables")
	}
	for _, table := range tables {
		t.Run(table, func(t *testing.T) {
			var enabled, forced bool
			if err := super.QueryRow(ctx, "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = $1::regclass", table).Scan(&enabled, &forced); err != nil {
				t.Fatal(err)
			}
			if !enabled || !forced {
				t.Errorf("row level security enabled=%v forced=%v, want both", enabled, forced)
			}
			var hasColumn bool
			if err := super.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 AND column_name = $2 AND data_type = 'uuid')", table, tenantColumn(table)).Scan(&hasColumn); err != nil {
				t.Fatal(err)
			}
			if !hasColumn {
				t.Errorf("no uuid column %s", tenantColumn(table))
			}
			var quals []string
			rows, err := super.Query(ctx, "SELECT coalesce(qual, '') FROM pg_policies WHERE schemaname = 'public' AND tablename = $1 AND cmd = 'ALL'", table)
			if err != nil {
				t.Fatal(err)
			}
			if quals, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("(%s = (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid)", tenantColumn(table))
			if !slices.Contains(quals, want) {
				t.Errorf("policies for ALL = %q, want one with %s", quals, want)
			}
			if _, ok := fixtures[table]; !ok {
				t.Errorf("no fixture for %s in rls_test.go: add one so TestRLSIsolation covers it", table)
			}
		})
	}
	var super_, bypass, owns bool
	err := super.QueryRow(ctx, `SELECT r.rolsuper, r.rolbypassrls, EXISTS (SELECT 1 FROM pg_class c WHERE c.relowner = r.oid AND c.relnamespace = 'public'::regnamespace)
FROM pg_roles r WHERE r.rolname = $1`, AppRole).Scan(&super_, &bypass, &owns)
	if err != nil {
		t.Fatal(err)
	}
	if super_ || bypass || owns {
		t.Errorf("%s: superuser=%v bypassrls=%v owns tables=%v, want none", AppRole, super_, bypass, owns)
	}
}

// TestRLSIsolation is the isolation proof: raw SQL as the app role (and as the owner, which
// FORCE subjects to the policies too) with tenant A set sees exactly A's rows of every
// tenant-owned table, and can neither see, update nor delete B's rows nor write a row into B;
// with no tenant set it sees nothing.
func TestRLSIsolation(t *testing.T) {
	ctx := context.Background()
	d := pgtest.New(t)
	super := seed(t, d)
	tables := rlsTables(t, super)

	count := func(t *testing.T, conn *pgx.Conn, table, tenant string) int {
		t.Helper()
		var n int
		q := fmt.Sprintf("SELECT count(*) FROM %s WHERE %s = $1", pgx.Identifier{table}.Sanitize(), tenantColumn(table))
		if err := conn.QueryRow(ctx, q, tenant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	want := map[string]map[string]int{}
	for _, table := range tables {
		want[table] = map[string]int{tenantA: count(t, super, table, tenantA), tenantB: count(t, super, table, tenantB)}
		if want[table][tenantA] == 0 || want[table][tenantB] == 0 {
			t.Fatalf("%s: no fixture rows for both tenants", table)
		}
	}

	// inTx runs sql in a transaction with the tenant set (none if ""), then rolls it back.
	inTx := func(conn *pgx.Conn, tenant, sql string, args ...any) (pgconn.CommandTag, int, error) {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return pgconn.CommandTag{}, 0, err
		}
		defer tx.Rollback(ctx)
		if tenant != "" {
			if err := SetTenant(ctx, tx, tenant); err != nil {
				return pgconn.CommandTag{}, 0, err
			}
		}
		if strings.HasPrefix(sql, "SELECT") {
			var n int
			err := tx.QueryRow(ctx, sql, args...).Scan(&n)
			return pgconn.CommandTag{}, n, err
		}
		tag, err := tx.Exec(ctx, sql, args...)
		return tag, 0, err
	}

	conns := map[string]*pgx.Conn{"app": connect(t, d.AppDSN), "owner": connect(t, d.OwnerDSN)}
	for _, role := range []string{"app", "owner"} {
		conn := conns[role]
		for _, table := range tables {
			tbl, col := pgx.Identifier{table}.Sanitize(), tenantColumn(table)
			t.Run(role+"/"+table, func(t *testing.T) {
				if _, n, err := inTx(conn, "", "SELECT count(*) FROM "+tbl); err != nil || n != 0 {
					t.Errorf("no tenant set: sees %d rows (err %v), want 0", n, err)
				}
				if _, n, err := inTx(conn, "", "SELECT count(*) FROM "+tbl+" WHERE "+col+" = $1", tenantA); err != nil || n != 0 {
					t.Errorf("no tenant set, filtering on A: sees %d rows (err %v), want 0", n, err)
				}
				for _, pair := range [][2]string{{tenantA, tenantB}, {tenantB, tenantA}} {
					self, other := pair[0], pair[1]
					if _, n, err := inTx(conn, self, "SELECT count(*) FROM "+tbl); err != nil || n != want[table][self] {
						t.Errorf("tenant %s: sees %d rows (err %v), want its own %d", self[:8], n, err, want[table][self])
					}
					if _, n, err := inTx(conn, self, "SELECT count(*) FROM "+tbl+" WHERE "+col+" = $1", other); err != nil || n != 0 {
						t.Errorf("tenant %s: sees %d rows of %s (err %v), want 0", self[:8], n, other[:8], err)
					}
					tag, _, err := inTx(conn, self, "UPDATE "+tbl+" SET "+col+" = "+col+" WHERE "+col+" = $1", other)
					if err == nil && tag.RowsAffected() != 0 || err != nil && !isCode(err, "42501") {
						t.Errorf("tenant %s: UPDATE of %s's rows affected %d (err %v), want 0", self[:8], other[:8], tag.RowsAffected(), err)
					}
					tag, _, err = inTx(conn, self, "DELETE FROM "+tbl+" WHERE "+col+" = $1", other)
					if err == nil && tag.RowsAffected() != 0 || err != nil && !isCode(err, "42501") {
						t.Errorf("tenant %s: DELETE of %s's rows affected %d (err %v), want 0", self[:8], other[:8], tag.RowsAffected(), err)
					}
					// Moving an own row to the other tenant, or inserting a copy into it, breaks
					// the policy's WITH CHECK (or, for the app role on an append-only table
					// such as change_journal, is not even allowed).
					_, _, err = inTx(conn, self, "UPDATE "+tbl+" SET "+col+" = $1", other)
					if !isRLSViolation(err) && !(role == "app" && isPrivilegeDenied(err)) {
						t.Errorf("tenant %s: moving rows to %s: err %v, want a row-level security violation", self[:8], other[:8], err)
					}
					cols := insertableColumns(t, super, table)
					_, _, err = inTx(conn, self, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM (SELECT (jsonb_populate_record(s, jsonb_build_object('%s', $1::text))).* FROM %s s LIMIT 1) r",
						tbl, cols, cols, col, tbl), other)
					if !isRLSViolation(err) {
						t.Errorf("tenant %s: inserting a row of %s: err %v, want a row-level security violation", self[:8], other[:8], err)
					}
				}
			})
		}
	}
	// Nothing changed, as the superuser sees it.
	for _, table := range tables {
		for _, tenant := range []string{tenantA, tenantB} {
			if n := count(t, super, table, tenant); n != want[table][tenant] {
				t.Errorf("%s: tenant %s has %d rows after the attempts, want %d", table, tenant[:8], n, want[table][tenant])
			}
		}
	}
}

// TestTenantBySlug: login resolves a tenant by slug through app.tenant_slug; that shows the
// one tenants row and nothing else, and allows no writes.
func TestTenantBySlug(t *testing.T) {
	ctx := context.Background()
	d := pgtest.New(t)
	seed(t, d)
	app := connect(t, d.AppDSN)
	tx, err := app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_slug', $1, true)", "slug-bbbbbbbb"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	rows, err := tx.Query(ctx, "SELECT id::text FROM tenants")
	if err != nil {
		t.Fatal(err)
	}
	if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != tenantB {
		t.Errorf("tenants visible by slug = %v, want only %s", ids, tenantB)
	}
	var users int
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&users); err != nil || users != 0 {
		t.Errorf("users visible by slug = %d (err %v), want 0", users, err)
	}
	tag, err := tx.Exec(ctx, "UPDATE tenants SET name = 'taken' WHERE slug = 'slug-bbbbbbbb'")
	if err != nil || tag.RowsAffected() != 0 {
		t.Errorf("UPDATE by slug affected %d (err %v), want 0", tag.RowsAffected(), err)
	}
}

// TestWithTenant: the setting is scoped to the transaction, so a pooled connection carries
// no tenant into the next one; an empty tenant id is refused.
func TestWithTenant(t *testing.T) {
	ctx := context.Background()
	d := pgtest.New(t)
	seed(t, d)
	pool := pgtest.Pool(t, d.AppDSN)
	var inside int
	err := WithTenant(ctx, pool, tenantA, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&inside)
	})
	if err != nil || inside != 1 {
		t.Fatalf("inside WithTenant: %d users (err %v), want 1", inside, err)
	}
	// Every connection of the pool now reads '' for the setting: nothing is visible.
	for range 3 {
		var n int
		var setting *string
		if err := pool.QueryRow(ctx, "SELECT count(*), current_setting('app.tenant_id', true) FROM users").Scan(&n, &setting); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("after WithTenant: %d users visible (app.tenant_id=%v), want 0", n, setting)
		}
	}
	// fn's error rolls back.
	boom := errors.New("boom")
	err = WithTenant(ctx, pool, tenantA, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE users SET display_name = 'changed'"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	var name string
	if err := WithTenant(ctx, pool, tenantA, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, "SELECT display_name FROM users").Scan(&name)
	}); err != nil || name != "" {
		t.Errorf("display_name = %q (err %v), want the update rolled back", name, err)
	}
	if err := WithTenant(ctx, pool, "", func(pgx.Tx) error { return nil }); !errors.Is(err, ErrNoTenant) {
		t.Errorf("empty tenant: err = %v, want ErrNoTenant", err)
	}
}

// TestOpenRefusesUnsafeRoles: Open accepts the app role and refuses the superuser and the
// owner (which could switch row-level security off), and a schema that is not migrated.
func TestOpenRefusesUnsafeRoles(t *testing.T) {
	ctx := context.Background()
	d := pgtest.New(t)
	tests := []struct {
		name, dsn, wantErr string
	}{
		{"app role", d.AppDSN, ""},
		{"superuser", d.SuperDSN, "superuser"},
		{"owner", d.OwnerDSN, "owns tables"},
		{"not migrated", pgtest.NewEmpty(t).AppDSN, "schema"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool, err := Open(ctx, tt.dsn, 0)
			if pool != nil {
				pool.Close()
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				// And with JIT compilation off (see Open).
				pool, err := Open(ctx, tt.dsn, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer pool.Close()
				var jit string
				if err := pool.QueryRow(ctx, "SHOW jit").Scan(&jit); err != nil || jit != "off" {
					t.Errorf("jit = %q (%v), want off", jit, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func isCode(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

// isPrivilegeDenied: the role lacks the privilege altogether (e.g. UPDATE on an append-only
// table).
func isPrivilegeDenied(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501" && strings.HasPrefix(pgErr.Message, "permission denied for table")
}

func isRLSViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "42501" && strings.Contains(pgErr.Message, "row-level security")
}

// insertableColumns lists table's columns that an INSERT may set (not generated ones such as
// nodes.parent_key), quoted and comma-separated.
func insertableColumns(t *testing.T, super *pgx.Conn, table string) string {
	t.Helper()
	rows, err := super.Query(context.Background(), `SELECT attname FROM pg_attribute
WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`, table)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(names) == 0 {
		t.Fatalf("columns of %s: %v %v", table, names, err)
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(quoted, ", ")
}
