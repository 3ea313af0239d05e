package retention

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, pgtest.Options{Template: func(ctx context.Context, ownerDSN string) error {
		_, err := db.MigrateURL(ctx, ownerDSN, 0, nil)
		return err
	}}))
}

const (
	tenantA = "aaaaaaaa-0000-4000-8000-000000000001"
	tenantB = "bbbbbbbb-0000-4000-8000-000000000002"
)

var tenants = []string{tenantA, tenantB}

// env is a migrated database with tenants A and B (each with one webhook endpoint whose id is
// the tenant's), the app role's pool and the superuser's (fixtures and inspection only).
type env struct {
	d     *pgtest.DB
	app   *pgxpool.Pool
	super *pgxpool.Pool
}

func newEnv(t *testing.T) env {
	t.Helper()
	d := pgtest.New(t)
	e := env{d: d, app: pgtest.Pool(t, d.AppDSN), super: pgtest.Pool(t, d.SuperDSN)}
	for _, tenant := range tenants {
		e.exec(t, `INSERT INTO tenants (id, slug, name) VALUES ($1::uuid, 'slug-' || left($1::text, 8), 'Tenant')`, tenant)
		e.exec(t, `INSERT INTO webhook_endpoints (tenant_id, id, url, secret, created_by) VALUES ($1::uuid, $1::uuid, 'https://hooks.example/x', 'whsec_x', $1::uuid)`, tenant)
	}
	return e
}

func (e env) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.super.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (e env) count(t *testing.T, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.super.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// Row fixtures: $1 the tenant, $2 a key unique in the table (a UUID).
const (
	insOutbox = `INSERT INTO outbox (tenant_id, event_id, topic, payload, created_at, published_at)
VALUES ($1::uuid, $2::uuid, 'files.node.created', '{}', now() - $3::interval, now() - $4::interval)`
	insLedger = `INSERT INTO processed_events (tenant_id, consumer, event_id, processed_at)
VALUES ($1::uuid, 'meter', $2, now() - $3::interval)`
	insDelivery = `INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_id, event_type, payload, status, next_attempt_at, last_attempt_at, created_at)
VALUES ($1::uuid, $1::uuid, $2, 'files.node.created', '{}', $4::text,
	CASE WHEN $4::text = 'pending' THEN now() END, CASE WHEN $4::text <> 'pending' THEN now() - $3::interval END, now() - $3::interval)`
)

// row is one fixture row, inserted for each tenant.
type row struct {
	name  string
	table string
	// age: created_at (outbox, deliveries) or processed_at (ledger).
	age string
	// sent: the outbox row's published_at age (nil: unsent); status: the delivery's.
	sent   *string
	status string
	kept   bool
}

func ago(s string) *string { return &s }

func (r row) insert(t *testing.T, e env, tenant, key string) {
	t.Helper()
	switch r.table {
	case "outbox":
		e.exec(t, insOutbox, tenant, key, r.age, r.sent)
	case "processed_events":
		e.exec(t, insLedger, tenant, key, r.age)
	default:
		e.exec(t, insDelivery, tenant, key, r.age, r.status)
	}
}

func (r row) exists(t *testing.T, e env, tenant, key string) bool {
	t.Helper()
	col := map[string]string{"outbox": "event_id::text", "processed_events": "event_id", "webhook_deliveries": "event_id"}[r.table]
	return e.count(t, fmt.Sprintf("SELECT count(*) FROM %s WHERE tenant_id = $1::uuid AND %s = $2", r.table, col), tenant, key) == 1
}

func key(i int, tenant string) string { return fmt.Sprintf("%s-0000-4000-8000-%012d", tenant[:8], i) }

// TestSweep: with the default retentions, the app role's sweep deletes the expired rows of
// both tenants and nothing else: old sent outbox rows (never unsent ones), ledger rows past
// the horizon, old delivered and dead deliveries (never pending ones); and it logs and counts
// what it did.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	rows := []row{
		{name: "outbox sent 8 days ago", table: "outbox", age: "8 days", sent: ago("8 days")},
		{name: "outbox sent 6 days ago", table: "outbox", age: "8 days", sent: ago("6 days"), kept: true},
		{name: "outbox sent just now", table: "outbox", age: "1 minute", sent: ago("0"), kept: true},
		{name: "outbox unsent for 30 days", table: "outbox", age: "30 days", kept: true},
		{name: "ledger 15 days old", table: "processed_events", age: "15 days"},
		{name: "ledger 13 days old", table: "processed_events", age: "13 days", kept: true},
		{name: "ledger just written", table: "processed_events", age: "0", kept: true},
		{name: "delivered 31 days ago", table: "webhook_deliveries", age: "31 days", status: "delivered"},
		{name: "dead 31 days ago", table: "webhook_deliveries", age: "31 days", status: "dead"},
		{name: "pending for 31 days", table: "webhook_deliveries", age: "31 days", status: "pending", kept: true},
		{name: "delivered 29 days ago", table: "webhook_deliveries", age: "29 days", status: "delivered", kept: true},
	}
	for i, r := range rows {
		for _, tenant := range tenants {
			r.insert(t, e, tenant, key(i, tenant))
		}
	}
	var logs bytes.Buffer
	s, err := New(e.app, Config{}, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Result{Outbox: 2, Ledger: 2, Webhooks: 4, Statements: 3}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			for _, tenant := range tenants {
				if got := r.exists(t, e, tenant, key(i, tenant)); got != r.kept {
					t.Errorf("tenant %s: exists = %v, want %v", tenant[:8], got, r.kept)
				}
			}
		})
	}
	for _, w := range []string{"retention sweep", "outbox=2", "processed_events=2", "webhook_deliveries=4"} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log %q lacks %q", logs.String(), w)
		}
	}
	// A second sweep finds nothing; the totals add up.
	if res, err := s.Sweep(ctx); err != nil || res.Total() != 0 {
		t.Errorf("second sweep = %+v, %v; want nothing deleted", res, err)
	}
	if got, want := s.Totals(), (Totals{Outbox: 2, Ledger: 2, Webhooks: 4, Sweeps: 2}); got != want {
		t.Errorf("totals = %+v, want %+v", got, want)
	}
}

// countingQuerier records what each purge call returned.
type countingQuerier struct {
	q    Querier
	mu   sync.Mutex
	got  []int64
	sqls []string
}

func (c *countingQuerier) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return countingRow{Row: c.q.QueryRow(ctx, sql, args...), c: c, sql: sql}
}

type countingRow struct {
	pgx.Row
	c   *countingQuerier
	sql string
}

func (r countingRow) Scan(dst ...any) error {
	err := r.Row.Scan(dst...)
	if n, ok := dst[0].(*int64); ok && err == nil {
		r.c.mu.Lock()
		r.c.got = append(r.c.got, *n)
		r.c.sqls = append(r.c.sqls, r.sql)
		r.c.mu.Unlock()
	}
	return err
}

// TestBatches: more expired rows than a batch are deleted over several statements of at most
// a batch each, across both tenants.
func TestBatches(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, tenant := range tenants {
		e.exec(t, `INSERT INTO outbox (tenant_id, topic, payload, created_at, published_at)
SELECT $1::uuid, 'files.node.created', '{}', now() - interval '9 days', now() - interval '8 days' FROM generate_series(1, 1250)`, tenant)
		e.exec(t, `INSERT INTO processed_events (tenant_id, consumer, event_id, processed_at)
SELECT $1::uuid, 'meter', g::text, now() - interval '20 days' FROM generate_series(1, 1250) g`, tenant)
		e.exec(t, insDelivery, tenant, "kept", "1 day", "delivered")
	}
	q := &countingQuerier{q: e.app}
	s, err := New(q, Config{Batch: 1000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Result{Outbox: 2500, Ledger: 2500, Statements: 7}); res != want {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	if want := []int64{1000, 1000, 500, 1000, 1000, 500, 0}; !slices.Equal(q.got, want) {
		t.Errorf("rows per statement = %v, want %v", q.got, want)
	}
	for _, table := range []string{"outbox", "processed_events"} {
		if n := e.count(t, "SELECT count(*) FROM "+table); n != 0 {
			t.Errorf("%s: %d rows left, want 0", table, n)
		}
	}
	if n := e.count(t, "SELECT count(*) FROM webhook_deliveries"); n != 2 {
		t.Errorf("webhook_deliveries: %d rows, want the 2 recent ones", n)
	}
}

// TestRelayUnaffected: the sweep neither waits for nor touches rows a relay has claimed, the
// unsent rows keep their id order for outbox_claim, and new rows get ids above every deleted
// one (the identity sequence is not rewound).
func TestRelayUnaffected(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	// Interleaved per tenant: old sent, unsent, old sent, unsent.
	for i := range 4 {
		for _, tenant := range tenants {
			var sent *string
			if i%2 == 0 {
				sent = ago("8 days")
			}
			e.exec(t, insOutbox, tenant, key(i, tenant), "9 days", sent)
		}
	}
	maxID := e.count(t, "SELECT max(id) FROM outbox")
	unsent := collect[int64](t, e.super, "SELECT id FROM outbox WHERE published_at IS NULL ORDER BY id")

	// A relay claims the unsent rows (row locks and tenant advisory locks) and has not
	// committed yet when the sweep runs.
	relay, err := e.app.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Rollback(ctx)
	claimed := collect[int64](t, relay, "SELECT id FROM outbox_claim(100)")
	if !slices.Equal(sorted(claimed), unsent) {
		t.Fatalf("claimed %v, want the unsent %v", claimed, unsent)
	}
	s, err := New(e.app, Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := s.Sweep(sctx)
	if err != nil || res.Outbox != 4 {
		t.Fatalf("sweep beside a relay = %+v, %v; want the 4 old sent rows deleted without waiting", res, err)
	}
	if _, err := relay.Exec(ctx, "SELECT outbox_mark_published($1)", claimed); err != nil {
		t.Fatal(err)
	}
	if err := relay.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// After the sweep: the unsent rows are all there, claimed in id order per tenant.
	perTenant := map[string][]int64{}
	var ids []int64
	for _, c := range collect[string](t, e.app, "SELECT tenant_id::text || ' ' || id FROM outbox_claim(100)") {
		tenant, idText, _ := strings.Cut(c, " ")
		var id int64
		fmt.Sscan(idText, &id)
		perTenant[tenant] = append(perTenant[tenant], id)
		ids = append(ids, id)
	}
	if !slices.Equal(sorted(ids), unsent) {
		t.Errorf("claimable after the sweep: %v, want %v", ids, unsent)
	}
	for tenant, ids := range perTenant {
		if !slices.IsSorted(ids) {
			t.Errorf("tenant %s claimed out of id order: %v", tenant[:8], ids)
		}
	}
	var next int
	if err := e.super.QueryRow(ctx, `INSERT INTO outbox (tenant_id, topic, payload) VALUES ($1::uuid, 'files.node.created', '{}') RETURNING id`, tenantA).Scan(&next); err != nil {
		t.Fatal(err)
	}
	if next <= maxID {
		t.Errorf("new row id %d, want above %d (the largest before the sweep)", next, maxID)
	}
}

func sorted(ids []int64) []int64 { s := slices.Clone(ids); slices.Sort(s); return s }

// TestConcurrentSweepYields: while another sweep holds a table, a call returns at once having
// deleted nothing, and the rows go at the next sweep.
func TestConcurrentSweepYields(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.exec(t, insLedger, tenantA, "old", "20 days")
	other, err := e.super.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx)
	if _, err := other.Exec(ctx, "SELECT pg_advisory_xact_lock(1651900432, 2)"); err != nil {
		t.Fatal(err)
	}
	s, err := New(e.app, Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if res, err := s.Sweep(sctx); err != nil || res.Ledger != 0 {
		t.Fatalf("sweep while the ledger is held = %+v, %v; want 0 deleted at once", res, err)
	}
	if err := other.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if res, err := s.Sweep(ctx); err != nil || res.Ledger != 1 {
		t.Fatalf("sweep after = %+v, %v; want 1 deleted", res, err)
	}
}

// TestAppRoleAlone: what the sweep does across tenants, bitvault_app cannot do by itself. It
// cannot delete outbox rows at all; its deletes on the ledger and deliveries stay inside the
// tenant set for its transaction (none without); it cannot become bitvault_retention; the
// purge functions refuse a retention below their floor or an oversized batch, return a count
// only, and take no tenant to aim at.
func TestAppRoleAlone(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, tenant := range tenants {
		e.exec(t, insOutbox, tenant, key(0, tenant), "9 days", ago("8 days"))
		e.exec(t, insLedger, tenant, "old", "20 days")
		e.exec(t, insDelivery, tenant, "old", "40 days", "delivered")
	}
	tests := []struct {
		name   string
		tenant string // set for the transaction ("" none)
		sql    string
		// rows is the expected RowsAffected when code is "".
		rows int64
		code string // expected SQLSTATE
	}{
		{name: "delete outbox rows", tenant: tenantA, sql: "DELETE FROM outbox WHERE published_at < now() - interval '7 days'", code: "42501"},
		{name: "delete ledger rows without a tenant", sql: "DELETE FROM processed_events WHERE processed_at < now() - interval '14 days'", rows: 0},
		{name: "delete ledger rows as A: A's only", tenant: tenantA, sql: "DELETE FROM processed_events WHERE processed_at < now() - interval '14 days'", rows: 1},
		{name: "delete B's ledger rows as A", tenant: tenantA, sql: "DELETE FROM processed_events WHERE tenant_id = $1", rows: 0},
		{name: "delete B's deliveries as A", tenant: tenantA, sql: "DELETE FROM webhook_deliveries WHERE tenant_id = $1", rows: 0},
		{name: "become the retention role", sql: "SET LOCAL ROLE bitvault_retention", code: "42501"},
		{name: "outbox retention below the floor", sql: "SELECT retention_purge_outbox(interval '9 minutes', 1000)", code: "22023"},
		{name: "ledger retention below the floor", tenant: tenantA, sql: "SELECT retention_purge_ledger(interval '6 days', 1000)", code: "22023"},
		{name: "delivery retention below the floor", sql: "SELECT retention_purge_webhook_deliveries(interval '1 hour', 1000)", code: "22023"},
		{name: "no retention", sql: "SELECT retention_purge_ledger(NULL, 1000)", code: "22023"},
		{name: "oversized batch", sql: "SELECT retention_purge_outbox(interval '7 days', 10001)", code: "22023"},
		{name: "a tenant argument does not exist", sql: "SELECT retention_purge_ledger(interval '14 days', 1000, $1)", code: "42883"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag, err := inTx(ctx, e.app, "", tt.tenant, tt.sql, tenantB)
			if tt.code != "" {
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != tt.code {
					t.Fatalf("err = %v, want SQLSTATE %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tag.RowsAffected() != tt.rows {
				t.Errorf("affected %d rows, want %d", tag.RowsAffected(), tt.rows)
			}
		})
	}
	// Nothing changed (every attempt was rolled back or refused).
	for _, table := range []string{"outbox", "processed_events", "webhook_deliveries"} {
		if n := e.count(t, "SELECT count(*) FROM "+table); n != 2 {
			t.Errorf("%s: %d rows, want 2", table, n)
		}
	}
	// The functions hand out a count, never rows.
	sigs := collect[string](t, e.super, `SELECT proname || ' ' || prorettype::regtype::text || ' ' || proretset::text FROM pg_proc WHERE proname LIKE 'retention\_purge\_%' ORDER BY 1`)
	want := []string{"retention_purge_ledger integer false", "retention_purge_outbox integer false", "retention_purge_webhook_deliveries integer false"}
	if !slices.Equal(sigs, want) {
		t.Errorf("functions = %v, want %v", sigs, want)
	}
}

// TestRetentionRolePolicies: bitvault_retention itself (as the functions run) can delete
// neither unsent outbox rows nor pending deliveries, even asked to directly, and cannot read
// payloads.
func TestRetentionRolePolicies(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, tenant := range tenants {
		e.exec(t, insOutbox, tenant, key(0, tenant), "30 days", nil)
		e.exec(t, insOutbox, tenant, key(1, tenant), "30 days", ago("30 days"))
		e.exec(t, insDelivery, tenant, "pending", "40 days", "pending")
		e.exec(t, insDelivery, tenant, "dead", "40 days", "dead")
	}
	tests := []struct {
		name string
		sql  string
		rows int64
		code string
	}{
		{name: "unsent outbox rows", sql: "DELETE FROM outbox WHERE published_at IS NULL", rows: 0},
		{name: "all outbox rows: the sent ones only", sql: "DELETE FROM outbox", rows: 2},
		{name: "pending deliveries", sql: "DELETE FROM webhook_deliveries WHERE status = 'pending'", rows: 0},
		{name: "all deliveries: the settled ones only", sql: "DELETE FROM webhook_deliveries", rows: 2},
		{name: "read payloads", sql: "SELECT count(payload) FROM outbox", code: "42501"},
		{name: "write", sql: "UPDATE outbox SET published_at = now()", code: "42501"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The superuser switches to the role, which row-level security then binds.
			tag, err := inTx(ctx, e.super, "bitvault_retention", "", tt.sql)
			if tt.code != "" {
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != tt.code {
					t.Fatalf("err = %v, want SQLSTATE %s", err, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tag.RowsAffected() != tt.rows {
				t.Errorf("affected %d rows, want %d", tag.RowsAffected(), tt.rows)
			}
		})
	}
}

// inTx runs sql (with args if it has parameters) in a transaction of pool, as role if not
// "" and with tenant set if not "", then rolls it back.
func inTx(ctx context.Context, pool *pgxpool.Pool, role, tenant, sql string, args ...any) (pgconn.CommandTag, error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer tx.Rollback(ctx)
	if role != "" {
		if _, err := tx.Exec(ctx, "SET LOCAL ROLE "+pgx.Identifier{role}.Sanitize()); err != nil {
			return pgconn.CommandTag{}, err
		}
	}
	if tenant != "" {
		if err := db.SetTenant(ctx, tx, tenant); err != nil {
			return pgconn.CommandTag{}, err
		}
	}
	if !strings.Contains(sql, "$1") {
		args = nil
	}
	return tx.Exec(ctx, sql, args...)
}

// collect runs a query and collects its single column.
func collect[T any](t *testing.T, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, sql string, args ...any) []T {
	t.Helper()
	rows, err := q.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[T])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// TestPurgePlans: as bitvault_retention (the functions' owner, bound by row-level security),
// a batch finds its rows through the partial indexes of 0010, oldest first, rather than by
// scanning the table, with few expired rows among many. The queries are the functions'
// inner SELECTs (EXPLAIN cannot see into PL/pgSQL), with the parameters as literals.
func TestPurgePlans(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, tenant := range tenants {
		e.exec(t, `INSERT INTO outbox (tenant_id, topic, payload, created_at, published_at)
SELECT $1::uuid, 'files.node.created', '{}', now(), CASE WHEN g % 2 = 0 THEN now() END FROM generate_series(1, 10000) g`, tenant)
		e.exec(t, `INSERT INTO processed_events (tenant_id, consumer, event_id, processed_at)
SELECT $1::uuid, 'meter', g::text, now() - CASE WHEN g <= 10 THEN interval '20 days' ELSE interval '0' END FROM generate_series(1, 10000) g`, tenant)
		e.exec(t, `INSERT INTO webhook_deliveries (tenant_id, endpoint_id, event_id, event_type, payload, status, next_attempt_at, last_attempt_at, created_at)
SELECT $1::uuid, $1::uuid, g::text, 'files.node.created', '{}', 'delivered', NULL, now(), now() FROM generate_series(1, 10000) g`, tenant)
	}
	e.exec(t, "ANALYZE outbox, processed_events, webhook_deliveries")
	tests := []struct {
		table, index, sql string
	}{
		{"outbox", "outbox_published", `SELECT s.tenant_id, s.id FROM outbox s
WHERE s.published_at IS NOT NULL AND s.published_at < now() - interval '7 days' ORDER BY s.published_at LIMIT 1000`},
		{"processed_events", "processed_events_processed_at", `SELECT s.tenant_id, s.consumer, s.event_id FROM processed_events s
WHERE s.processed_at < now() - interval '14 days' ORDER BY s.processed_at LIMIT 1000`},
		{"webhook_deliveries", "webhook_deliveries_settled", `SELECT s.tenant_id, s.id FROM webhook_deliveries s
WHERE s.status <> 'pending' AND s.created_at < now() - interval '30 days' ORDER BY s.created_at LIMIT 1000`},
	}
	for _, tt := range tests {
		t.Run(tt.table, func(t *testing.T) {
			tx, err := e.super.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, "SET LOCAL ROLE bitvault_retention"); err != nil {
				t.Fatal(err)
			}
			scans, plan, err := pgtest.Scans(ctx, tx, tt.table, tt.sql)
			if err != nil {
				t.Fatal(err)
			}
			if len(scans) != 1 || scans[0].Index != tt.index {
				t.Errorf("scans %+v, want one on index %s; plan:\n%s", scans, tt.index, plan)
			}
		})
	}
}
