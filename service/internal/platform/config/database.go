package config

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Database environment variables.
const (
	// EnvDB selects the database: "postgres" (the default) or "none", which runs without one
	// (probes and /v1/version only; the API answers 503). "none" must be chosen explicitly:
	// without it a missing BITVAULT_DATABASE_URL is a configuration error.
	EnvDB = "BITVAULT_DB"
	// EnvDatabaseURL is the URL of the application role (bitvault_app): no owner, no
	// superuser, subject to row-level security.
	EnvDatabaseURL = "BITVAULT_DATABASE_URL"
	// EnvDatabaseOwnerURL is the URL of the schema owner, which runs the migrations. When set,
	// bitvaultd applies pending migrations at start (under an advisory lock); when not, it
	// only checks that the schema is migrated (run 'bitvaultd migrate' as a job instead).
	EnvDatabaseOwnerURL = "BITVAULT_DATABASE_OWNER_URL"
	// EnvDatabaseWait bounds how long start waits for the database to accept connections.
	EnvDatabaseWait = "BITVAULT_DATABASE_WAIT"
)

// Database modes (EnvDB).
const (
	DBPostgres = "postgres"
	DBNone     = "none"
)

// DefaultDatabaseWait is the default of EnvDatabaseWait.
const DefaultDatabaseWait = 30 * time.Second

// Database is the validated database configuration.
type Database struct {
	// Enabled is false with BITVAULT_DB=none.
	Enabled bool
	// URL connects as the application role.
	URL string
	// OwnerURL connects as the schema owner; "" disables migrations at start.
	OwnerURL string
	// Wait bounds the wait for the database at start.
	Wait time.Duration
}

// String describes the configuration without secrets.
func (d Database) String() string {
	if !d.Enabled {
		return DBNone
	}
	return fmt.Sprintf("app=%s owner=%s", describeURL(d.URL), describeURL(d.OwnerURL))
}

// DatabaseUse says what the database configuration is loaded for.
type DatabaseUse int

const (
	// ForServe needs the application role's URL (unless BITVAULT_DB=none).
	ForServe DatabaseUse = iota
	// ForMigrate needs only the owner's URL.
	ForMigrate
)

// LoadDatabase reads and validates the database settings through lookup. URLs are parsed
// (PostgreSQL URL or key=value form) but not connected to; errors never echo passwords.
func LoadDatabase(lookup func(string) (string, bool), use DatabaseUse) (Database, error) {
	get := func(key string) string {
		v, _ := lookup(key)
		return strings.TrimSpace(v)
	}
	d := Database{Enabled: true, URL: get(EnvDatabaseURL), OwnerURL: get(EnvDatabaseOwnerURL), Wait: DefaultDatabaseWait}
	var errs []error
	switch mode := strings.ToLower(get(EnvDB)); mode {
	case "", DBPostgres:
	case DBNone:
		d.Enabled = false
		if use == ForMigrate {
			errs = append(errs, fmt.Errorf("%s=none: there is no database to migrate", EnvDB))
		} else if d.URL != "" || d.OwnerURL != "" {
			errs = append(errs, fmt.Errorf("%s=none but %s or %s is set: unset them or %s", EnvDB, EnvDatabaseURL, EnvDatabaseOwnerURL, EnvDB))
		}
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want %s or %s", EnvDB, mode, DBPostgres, DBNone))
	}
	var err error
	if d.Wait, err = duration(get(EnvDatabaseWait), DefaultDatabaseWait, true); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvDatabaseWait, err))
	}
	if !d.Enabled {
		if err := errors.Join(errs...); err != nil {
			return Database{}, fmt.Errorf("invalid configuration: %w", err)
		}
		return Database{Wait: d.Wait}, nil
	}

	var appUser, ownerUser string
	switch {
	case d.URL != "":
		if appUser, err = dbUser(d.URL); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvDatabaseURL, err))
		}
	case use == ForServe:
		errs = append(errs, fmt.Errorf("%s is required: the URL of the application role, e.g. postgres://bitvault_app:PASSWORD@HOST:5432/bitvault (or set %s=none to run without a database)", EnvDatabaseURL, EnvDB))
	}
	switch {
	case d.OwnerURL != "":
		if ownerUser, err = dbUser(d.OwnerURL); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvDatabaseOwnerURL, err))
		}
	case use == ForMigrate:
		errs = append(errs, fmt.Errorf("%s is required: the URL of the role that owns the schema and runs the migrations", EnvDatabaseOwnerURL))
	}
	if appUser != "" && appUser == ownerUser {
		errs = append(errs, fmt.Errorf("%s and %s both use role %q: the application must not connect as the schema owner (use bitvault_app)", EnvDatabaseURL, EnvDatabaseOwnerURL, appUser))
	}
	if err := errors.Join(errs...); err != nil {
		return Database{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return d, nil
}

// dbUser parses a connection string and returns its user.
func dbUser(url string) (string, error) {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return "", fmt.Errorf("not a valid PostgreSQL connection string: %w", err)
	}
	return cfg.User, nil
}

// describeURL is user@host:port/database, or "-".
func describeURL(url string) string {
	if url == "" {
		return "-"
	}
	cfg, err := pgconn.ParseConfig(url)
	if err != nil {
		return "invalid"
	}
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}
