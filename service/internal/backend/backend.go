// Package backend builds, from the environment, the object store and the services on it
// that both binaries need: bitvaultd serves the files API on them, and the event consumers
// that need them (the GC and its sweep, the indexer, the webhook fan-out and dispatcher) run
// on them — in bitvaultd in the lite profile, in bitvault-worker in the standard one (see
// internal/events). One constructor keeps the two processes on the same object store with
// the same settings (a worker collecting garbage with another BITVAULT_BLOB_GRACE than the
// API, or reading another bucket, would be a silent bug).
package backend

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/app"
	"github.com/bitvault/bitvault/service/internal/platform/health"
	"github.com/bitvault/bitvault/service/internal/storage"
	"github.com/bitvault/bitvault/service/internal/webhooks"
)

// pingLimit bounds the object store's ping at start.
const pingLimit = 5 * time.Second

// Config is what Open needs.
type Config struct {
	Storage  storage.Config
	Files    files.Config
	Webhooks webhooks.Config
}

// LoadConfig reads the object store (BITVAULT_STORAGE, BITVAULT_S3_*, …) and files
// (quotas, TTLs, blob grace) settings through lookup; dataDir is BITVAULT_DATA_DIR. The
// filesystem backend's URL-signing key defaults to one derived from BITVAULT_TOKEN_KEY (read
// here when set), so that both binaries given the same environment derive the same key.
func LoadConfig(lookup func(string) (string, bool), dataDir string) (Config, error) {
	// The token key alone: the worker authenticates no one, so the other identity settings
	// (bootstrap token, login limits) are none of its business.
	key, err := identity.LoadTokenKey(lookup)
	if err != nil {
		return Config{}, err
	}
	st, err := storage.LoadConfig(lookup, dataDir, key)
	if err != nil {
		return Config{}, err
	}
	fc, err := files.LoadConfig(lookup)
	if err != nil {
		return Config{}, err
	}
	// The webhook destination policy and the key of the secrets at rest (by default derived
	// from BITVAULT_TOKEN_KEY): both binaries run the dispatcher, so both need them.
	wc, err := webhooks.LoadConfig(lookup, key)
	if err != nil {
		return Config{}, err
	}
	return Config{Storage: st, Files: fc, Webhooks: wc}, nil
}

// Backend is the object store and the services on it.
type Backend struct {
	// Store is nil with BITVAULT_STORAGE=none.
	Store storage.ObjectStore
	// Files is nil without an object store.
	Files    *files.Service
	Webhooks *webhooks.Service
}

// Open opens the object store and builds the services on pool. It adds the "storage"
// readiness check (not_configured without a store; a store not reachable yet at start is
// logged and reported by readiness until it is). An unusable storage configuration is an
// app.ConfigError.
func Open(ctx context.Context, cfg Config, pool *pgxpool.Pool, checks *health.Checker, logger *slog.Logger) (*Backend, error) {
	store, err := storage.Open(cfg.Storage)
	if err != nil {
		return nil, app.ConfigError(err)
	}
	logger.Info("object store", slog.String("storage", cfg.Storage.String()))
	b := &Backend{Store: store}
	if store == nil {
		logger.Warn("running without an object store (" + storage.EnvStorage + "=none): no files API, no GC, no indexing")
		checks.Add("storage", health.NotConfigured(storage.EnvStorage+"=none"))
	} else {
		if b.Files, err = files.New(pool, store, cfg.Files, logger); err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, pingLimit)
		if err := store.Ping(pctx); err != nil {
			logger.Warn("object store not reachable yet", slog.String("error", err.Error()))
		}
		cancel()
		checks.Add("storage", store.Ping)
	}
	if b.Webhooks, err = webhooks.New(pool, cfg.Webhooks, logger); err != nil {
		return nil, err
	}
	return b, nil
}
