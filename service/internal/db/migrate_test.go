package db

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, pgtest.Options{Template: func(ctx context.Context, ownerDSN string) error {
		_, err := MigrateURL(ctx, ownerDSN, 0, nil)
		return err
	}}))
}

func TestAppRoleName(t *testing.T) {
	if AppRole != pgtest.AppRole {
		t.Fatalf("db.AppRole = %q, pgtest.AppRole = %q: the harness's app DSN would not match the migrations", AppRole, pgtest.AppRole)
	}
}

func TestLoadMigrations(t *testing.T) {
	file := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s)} }
	tests := []struct {
		name    string
		fs      fstest.MapFS
		want    []string // names in order
		wantErr string
	}{
		{name: "ordered", fs: fstest.MapFS{"0002_b.sql": file("B"), "0001_a.sql": file("A")}, want: []string{"0001_a", "0002_b"}},
		{name: "empty", fs: fstest.MapFS{}},
		{name: "gap", fs: fstest.MapFS{"0001_a.sql": file("A"), "0003_c.sql": file("C")}, wantErr: "0003_c: want version 0002"},
		{name: "not starting at 1", fs: fstest.MapFS{"0002_b.sql": file("B")}, wantErr: "want version 0001"},
		{name: "duplicate version", fs: fstest.MapFS{"0001_a.sql": file("A"), "0001_b.sql": file("B")}, wantErr: "same version"},
		{name: "bad name", fs: fstest.MapFS{"0001-a.sql": file("A")}, wantErr: "0001-a.sql: name must be"},
		{name: "stray file", fs: fstest.MapFS{"0001_a.sql": file("A"), "README": file("x")}, wantErr: "README"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := LoadMigrations(tt.fs)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range ms {
				names = append(names, m.Name)
			}
			if strings.Join(names, ",") != strings.Join(tt.want, ",") {
				t.Errorf("names = %v, want %v", names, tt.want)
			}
		})
	}
}

// TestEmbeddedMigrations checks the binary's own migrations load.
func TestEmbeddedMigrations(t *testing.T) {
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].Name != "0001_identity" {
		t.Fatalf("migrations = %v, want 0001_identity first", ms)
	}
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// TestMigrateTwiceIsNoop applies the embedded migrations to an empty database, then again:
// the second run applies nothing and changes nothing.
func TestMigrateTwiceIsNoop(t *testing.T) {
	ctx := context.Background()
	d := pgtest.NewEmpty(t)
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	conn := connect(t, d.OwnerDSN)
	first, err := Migrate(ctx, conn, ms, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != len(ms) {
		t.Fatalf("first run applied %d, want %d", len(first), len(ms))
	}
	before, err := AppliedMigrations(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Migrate(ctx, conn, ms, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(second) != 0 {
		t.Errorf("second run applied %v, want nothing", second)
	}
	after, err := AppliedMigrations(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(ms) || len(before) != len(after) {
		t.Fatalf("schema_migrations: %d rows before, %d after, want %d", len(before), len(after), len(ms))
	}
	for i := range after {
		if after[i] != before[i] {
			t.Errorf("row %d changed: %+v -> %+v", i, before[i], after[i])
		}
		if after[i].Checksum != ms[i].Checksum || after[i].Name != ms[i].Name {
			t.Errorf("row %d = %+v, want %s with checksum %s", i, after[i], ms[i].Name, ms[i].Checksum)
		}
	}
	// The owner's schema is usable by the app role afterwards.
	app := connect(t, d.AppDSN)
	if err := CheckAppRole(ctx, app); err != nil {
		t.Error(err)
	}
	if err := CheckSchema(ctx, app); err != nil {
		t.Error(err)
	}
}

// TestConcurrentMigrators starts several migrators on one empty database at once (replicas
// starting together): all succeed, each migration is applied exactly once.
func TestConcurrentMigrators(t *testing.T) {
	ctx := context.Background()
	d := pgtest.NewEmpty(t)
	ms, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	const n = 4
	conns := make([]*pgx.Conn, n)
	for i := range conns {
		conns[i] = connect(t, d.OwnerDSN)
	}
	applied := make([][]Migration, n)
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Go(func() {
			start.Wait()
			applied[i], errs[i] = Migrate(ctx, conns[i], ms, nil)
		})
	}
	start.Done()
	wg.Wait()
	total := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("migrator %d: %v", i, errs[i])
		}
		total += len(applied[i])
	}
	if total != len(ms) {
		t.Errorf("migrations applied %d times in total, want %d (once each)", total, len(ms))
	}
	rows, err := AppliedMigrations(ctx, conns[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(ms) {
		t.Errorf("schema_migrations has %d rows, want %d", len(rows), len(ms))
	}
}

// TestMigrateErrors covers a changed applied migration, an unknown applied one, and a failing
// migration, which is rolled back entirely.
func TestMigrateErrors(t *testing.T) {
	ctx := context.Background()
	base := []Migration{
		{Version: 1, Name: "0001_one", SQL: "CREATE TABLE one (id int)", Checksum: "c1"},
		{Version: 2, Name: "0002_two", SQL: "CREATE TABLE two (id int)", Checksum: "c2"},
	}
	tests := []struct {
		name    string
		second  []Migration // applied after base
		wantErr string
	}{
		{
			name: "changed applied migration",
			second: []Migration{
				{Version: 1, Name: "0001_one", SQL: "CREATE TABLE one (id bigint)", Checksum: "c1-edited"},
				base[1],
			},
			wantErr: "applied migration 0001_one was changed after it was applied",
		},
		{
			name:    "applied migration missing from the binary",
			second:  []Migration{{Version: 1, Name: "0001_one", SQL: base[0].SQL, Checksum: "c1"}, {Version: 3, Name: "0003_three", SQL: "SELECT 1", Checksum: "c3"}},
			wantErr: "applied migration 0002_two (version 2) is not in this binary",
		},
		{
			name: "failing migration rolls back",
			second: append(base[:2:2],
				Migration{Version: 3, Name: "0003_broken", SQL: "CREATE TABLE three (id int); SELECT no_such_column FROM three", Checksum: "c3"}),
			wantErr: "apply 0003_broken",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := pgtest.NewEmpty(t)
			conn := connect(t, d.OwnerDSN)
			if _, err := Migrate(ctx, conn, base, nil); err != nil {
				t.Fatal(err)
			}
			_, err := Migrate(ctx, conn, tt.second, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			rows, err := AppliedMigrations(ctx, conn)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 2 {
				t.Errorf("schema_migrations has %d rows after the error, want 2", len(rows))
			}
			var three bool
			if err := conn.QueryRow(ctx, "SELECT to_regclass('three') IS NOT NULL").Scan(&three); err != nil {
				t.Fatal(err)
			}
			if three {
				t.Error("table three exists: the failed migration was not rolled back")
			}
		})
	}
}

// TestNewerSchemaAccepted: a database migrated by a newer binary (versions beyond ours) is
// accepted, so an old replica can still start during a rolling update.
func TestNewerSchemaAccepted(t *testing.T) {
	ctx := context.Background()
	d := pgtest.NewEmpty(t)
	conn := connect(t, d.OwnerDSN)
	newer := []Migration{{Version: 1, Name: "0001_one", SQL: "SELECT 1", Checksum: "c1"}, {Version: 2, Name: "0002_two", SQL: "SELECT 2", Checksum: "c2"}}
	if _, err := Migrate(ctx, conn, newer, nil); err != nil {
		t.Fatal(err)
	}
	got, err := Migrate(ctx, conn, newer[:1], nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("older binary: applied %v, err %v; want nothing and no error", got, err)
	}
}
