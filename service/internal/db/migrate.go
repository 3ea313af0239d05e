package db

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed migrations/*.sql
var embedded embed.FS

// migrationLockKey is the pg_advisory_lock key that serializes migrators of one database
// ("bitvault" in ASCII).
const migrationLockKey int64 = 0x6269747661756c74

// Migration is one forward-only SQL file, migrations/NNNN_name.sql.
type Migration struct {
	Version int
	Name    string // file name without .sql, e.g. "0001_identity"
	SQL     string
	// Checksum is the hex SHA-256 of the file; an applied migration whose file changed is an
	// error.
	Checksum string
}

// Applied is a migration recorded in schema_migrations.
type Applied struct {
	Version   int
	Name      string
	Checksum  string
	AppliedAt time.Time
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

// Migrations returns the migrations embedded in the binary, in order.
func Migrations() ([]Migration, error) {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		return nil, err
	}
	return LoadMigrations(sub)
}

// LoadMigrations reads NNNN_name.sql files from the top of fsys. Versions must start at 1 and
// have no gaps or duplicates; any other file is an error.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		m := migrationName.FindStringSubmatch(e.Name())
		if e.IsDir() || m == nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_lower_snake_name.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		v, _ := strconv.Atoi(m[1])
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: v, Name: e.Name()[:len(e.Name())-len(path.Ext(e.Name()))], SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			if i > 0 && m.Version == ms[i-1].Version {
				return nil, fmt.Errorf("migrations %s and %s have the same version", ms[i-1].Name, m.Name)
			}
			return nil, fmt.Errorf("migration %s: want version %04d (versions start at 1 without gaps)", m.Name, i+1)
		}
	}
	return ms, nil
}

// Migrate applies the migrations not yet recorded in schema_migrations, in order, each in its
// own transaction together with its schema_migrations row, and returns those it applied.
//
// The whole run holds a session-level advisory lock on conn, so concurrent migrators (two
// replicas starting together) take turns: the second finds everything applied and does
// nothing. Before applying anything it checks the recorded ones: a recorded migration whose
// checksum differs from ms is an error naming it (migrations are forward-only: never edit an
// applied file, add a new one). Recorded versions beyond the last of ms (a newer binary
// migrated this database) are accepted, as migrations must stay compatible with the previous
// release; a recorded version missing from ms below that is an error.
//
// conn must be the schema owner; logger may be nil.
func Migrate(ctx context.Context, conn *pgx.Conn, ms []Migration, logger *slog.Logger) ([]Migration, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", migrationLockKey).Scan(&locked); err != nil {
		return nil, fmt.Errorf("migrate: lock: %w", err)
	}
	if !locked {
		logger.InfoContext(ctx, "waiting for the migration lock (another migrator is running)")
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockKey); err != nil {
			return nil, fmt.Errorf("migrate: wait for lock: %w", err)
		}
	}
	defer func() {
		// On a broken connection the server has released the lock already.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_, _ = conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrationLockKey)
	}()

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    integer PRIMARY KEY,
	name       text NOT NULL,
	checksum   text NOT NULL,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	applied, err := AppliedMigrations(ctx, conn)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	pending, err := pendingMigrations(ms, applied)
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}

	var done []Migration
	for _, m := range pending {
		start := time.Now()
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", m.Version, m.Name, m.Checksum)
			return err
		})
		if err != nil {
			return done, fmt.Errorf("migrate: apply %s: %w", m.Name, err)
		}
		done = append(done, m)
		logger.InfoContext(ctx, "migration applied", slog.String("migration", m.Name), slog.Duration("duration", time.Since(start)))
	}
	return done, nil
}

// pendingMigrations checks the applied ones against ms and returns those still to apply.
func pendingMigrations(ms []Migration, applied []Applied) ([]Migration, error) {
	byVersion := make(map[int]Migration, len(ms))
	last := 0
	for _, m := range ms {
		byVersion[m.Version] = m
		last = max(last, m.Version)
	}
	done := make(map[int]bool, len(applied))
	var errs []error
	for _, a := range applied {
		done[a.Version] = true
		m, ok := byVersion[a.Version]
		switch {
		case !ok && a.Version > last:
			// A newer binary migrated further: fine (see Migrate).
		case !ok:
			errs = append(errs, fmt.Errorf("applied migration %s (version %d) is not in this binary", a.Name, a.Version))
		case m.Checksum != a.Checksum:
			errs = append(errs, fmt.Errorf("applied migration %s was changed after it was applied (checksum %s, file has %s): migrations are forward-only, add a new one instead", a.Name, short(a.Checksum), short(m.Checksum)))
		case m.Name != a.Name:
			errs = append(errs, fmt.Errorf("applied migration %s was renamed to %s", a.Name, m.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var pending []Migration
	for _, m := range ms {
		if !done[m.Version] {
			pending = append(pending, m)
		}
	}
	return pending, nil
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// Querier is what AppliedMigrations and SchemaVersion read through (*pgx.Conn, *pgxpool.Pool,
// pgx.Tx).
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// AppliedMigrations lists schema_migrations in version order.
func AppliedMigrations(ctx context.Context, q Querier) ([]Applied, error) {
	rows, err := q.Query(ctx, "SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Applied, error) {
		var a Applied
		err := r.Scan(&a.Version, &a.Name, &a.Checksum, &a.AppliedAt)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return out, nil
}

// MigrateURL connects to ownerURL, waiting up to wait for the database to accept
// connections, and applies the embedded migrations.
func MigrateURL(ctx context.Context, ownerURL string, wait time.Duration, logger *slog.Logger) ([]Migration, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(ownerURL)
	if err != nil {
		return nil, fmt.Errorf("migrate: owner database URL: %w", err)
	}
	cfg.RuntimeParams["application_name"] = "bitvaultd-migrate"
	var conn *pgx.Conn
	err = retry(ctx, wait, func() error {
		var err error
		conn, err = pgx.ConnectConfig(ctx, cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("migrate: connect as %s to %s:%d/%s: %w", cfg.User, cfg.Host, cfg.Port, cfg.Database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return Migrate(ctx, conn, ms, logger)
}
