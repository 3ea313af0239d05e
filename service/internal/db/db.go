// Package db is bitvaultd's PostgreSQL layer: the pgx pool, tenant-scoped transactions under row-level security, and the embedded forward-only migrations.
//
// Two roles. The migrations run as the schema owner (BITVAULT_DATABASE_OWNER_URL); they create
// AppRole, the role bitvaultd serves with (BITVAULT_DATABASE_URL), which owns nothing, is no
// superuser and cannot bypass row-level security. Every tenant-owned table carries tenant_id
// and has ENABLE + FORCE ROW LEVEL SECURITY with the policy
//
//	USING (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
//
// so a query sees and writes only the rows of the tenant set for its transaction by
// WithTenant, and nothing at all when none is set. Application code still filters by tenant;
// the policy is the backstop that turns a forgotten filter into an empty result instead of a
// cross-tenant leak.
package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// AppRole is the role the migrations create for bitvaultd to connect as.
const AppRole = "bitvault_app"

// TenantSetting is the transaction-local setting the row-level security policies read.
const TenantSetting = "app.tenant_id"

// Open opens a pool on url (the app role's), waiting up to wait for the database to accept
// connections, and checks that the role is safe to serve with (see CheckAppRole) and that
// the schema has every embedded migration (see CheckSchema).
func Open(ctx context.Context, url string, wait time.Duration) (*pgxpool.Pool, error) {
	cfg, err := ParseConfig(url)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	where := fmt.Sprintf("%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	if err := ping(ctx, pool, wait); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database %s: %w", where, err)
	}
	if err := CheckAppRole(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database %s: %w", where, err)
	}
	if err := CheckSchema(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database %s: %w", where, err)
	}
	return pool, nil
}

// ParseConfig is the pool configuration of url with the session settings every connection of
// the service runs with (Open's; bvload and the tests use it to run queries as bitvaultd
// does).
func ParseConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "bitvaultd"
	}
	// No JIT compilation unless the URL asks for it: the service's queries are short, and
	// their cost estimates over a large tenant (a sync page joins paths for 500 rows) cross
	// jit_above_cost, so PostgreSQL spent 20-40 ms compiling each one that runs in 6 ms.
	if cfg.ConnConfig.RuntimeParams["jit"] == "" {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	return cfg, nil
}

// ping retries until the database answers or wait has passed.
func ping(ctx context.Context, pool *pgxpool.Pool, wait time.Duration) error {
	return retry(ctx, wait, func() error {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return pool.Ping(pctx)
	})
}

// retry calls fn until it succeeds, ctx ends or wait has passed, backing off from 100 ms to
// 2 s, and returns fn's last error.
func retry(ctx context.Context, wait time.Duration, fn func() error) error {
	deadline := time.Now().Add(wait)
	delay := 100 * time.Millisecond
	for {
		err := fn()
		if err == nil || ctx.Err() != nil || time.Now().Add(delay).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
		delay = min(2*delay, 2*time.Second)
	}
}

// CheckAppRole refuses a role that would not be subject to row-level security: a superuser
// or a BYPASSRLS role. (The owner is subject to it too, through FORCE, but may disable it.)
func CheckAppRole(ctx context.Context, q Querier) error {
	var name string
	var super, bypass, owns bool
	err := q.QueryRow(ctx, `SELECT r.rolname, r.rolsuper, r.rolbypassrls,
	EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	        WHERE n.nspname = 'public' AND c.relowner = r.oid)
FROM pg_roles r WHERE r.rolname = current_user`).Scan(&name, &super, &bypass, &owns)
	if err != nil {
		return fmt.Errorf("check role: %w", err)
	}
	switch {
	case super:
		return fmt.Errorf("role %s is a superuser, which bypasses row-level security: connect as %s (BITVAULT_DATABASE_URL)", name, AppRole)
	case bypass:
		return fmt.Errorf("role %s has BYPASSRLS: connect as %s (BITVAULT_DATABASE_URL)", name, AppRole)
	case owns:
		return fmt.Errorf("role %s owns tables and could disable row-level security: connect as %s (BITVAULT_DATABASE_URL), migrate as the owner (BITVAULT_DATABASE_OWNER_URL)", name, AppRole)
	}
	return nil
}

// CheckSchema fails unless every embedded migration is recorded as applied.
func CheckSchema(ctx context.Context, q Querier) error {
	ms, err := Migrations()
	if err != nil {
		return err
	}
	var have int
	err = q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&have)
	if err != nil {
		return fmt.Errorf("read schema version (run 'bitvaultd migrate' or set BITVAULT_DATABASE_OWNER_URL): %w", err)
	}
	if want := ms[len(ms)-1].Version; have < want {
		return fmt.Errorf("schema is at version %d, this binary needs %d: run 'bitvaultd migrate' or set BITVAULT_DATABASE_OWNER_URL", have, want)
	}
	return nil
}

// Beginner starts transactions (*pgxpool.Pool, *pgx.Conn).
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// ErrNoTenant is returned by WithTenant for an empty tenant id.
var ErrNoTenant = errors.New("db: no tenant id")

// WithTenant runs fn in a transaction scoped to tenantID: it sets app.tenant_id for this
// transaction only (set_config(..., true)), so the row-level security policies show fn only
// that tenant's rows and refuse writes of rows of any other. The transaction commits when
// fn returns nil and rolls back otherwise.
func WithTenant(ctx context.Context, db Beginner, tenantID string, fn func(pgx.Tx) error) error {
	if tenantID == "" {
		return ErrNoTenant
	}
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := SetTenant(ctx, tx, tenantID); err != nil {
			return err
		}
		return fn(tx)
	})
}

// SetTenant sets app.tenant_id for the rest of tx.
func SetTenant(ctx context.Context, tx pgx.Tx, tenantID string) error {
	if tenantID == "" {
		return ErrNoTenant
	}
	if _, err := tx.Exec(ctx, "SELECT set_config('"+TenantSetting+"', $1, true)", tenantID); err != nil {
		return fmt.Errorf("set tenant: %w", err)
	}
	return nil
}
