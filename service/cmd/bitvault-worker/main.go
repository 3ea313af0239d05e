// Command bitvault-worker is BitVault's asynchronous worker process.
//
// In the standard profile (BITVAULT_PROFILE=standard, see internal/events) it runs the event
// consumers on NATS JetStream durable consumers (BITVAULT_NATS_URL), shared by the worker
// replicas: the meter, the GC/finalizer (on purge events, and its sweep every
// BITVAULT_GC_INTERVAL), the search indexer and the webhook fan-out and dispatcher. It reads
// the database of BITVAULT_DATABASE_URL, and the object store and webhook settings as
// bitvaultd does (BITVAULT_STORAGE, BITVAULT_S3_*, BITVAULT_BLOB_GRACE, BITVAULT_WEBHOOK_*,
// the secrets' key BITVAULT_SECRET_KEY or BITVAULT_TOKEN_KEY, …: internal/backend, the same
// constructor; give both binaries the same environment); with BITVAULT_STORAGE=none the GC
// and the indexer do not run. BITVAULT_STORAGE=fs is refused (a configuration error): the
// filesystem store lives in a directory of its own process (by default under its own
// BITVAULT_DATA_DIR), so the worker's GC and indexer would act on another, empty store than
// bitvaultd's; set BITVAULT_STORAGE_SHARED=true to declare that BITVAULT_STORAGE_DIR is the
// very directory bitvaultd serves (a shared volume) and accept it. Readiness checks the database, NATS and the object store. In
// the lite profile
// bitvaultd runs the consumers itself and the worker only idles (logging "idle" at debug
// level). Also: configuration, JSON logs on stdout, the probes (/healthz, /readyz on
// BITVAULT_HTTP_ADDR, default :8081), the writable-dir check and the graceful drain on
// SIGTERM.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bitvault/bitvault/service/internal/backend"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/events"
	"github.com/bitvault/bitvault/service/internal/platform/app"
	"github.com/bitvault/bitvault/service/internal/platform/config"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

// EnvStorageShared (true or false, default false) declares that the filesystem object
// store's directory (BITVAULT_STORAGE_DIR) is shared with bitvaultd: without it, the worker
// refuses BITVAULT_STORAGE=fs.
const EnvStorageShared = "BITVAULT_STORAGE_SHARED"

// idleInterval is how often the placeholder loop logs.
const idleInterval = 30 * time.Second

func main() {
	os.Exit(app.Main(spec(), os.Stdout, os.LookupEnv))
}

func spec() app.Spec {
	var run func(context.Context) error
	return app.Spec{
		Name:     "bitvault-worker",
		Version:  version,
		Commit:   commit,
		Defaults: config.Defaults{HTTPAddr: ":8081"},
		Init:     func(ctx context.Context, env app.Env) (app.Module, error) { return initConsumers(ctx, env, &run) },
		Run: func(ctx context.Context, logger *slog.Logger) error {
			if run != nil {
				return run(ctx)
			}
			return idleLoop(ctx, logger, idleInterval)
		},
	}
}

// initConsumers prepares the standard profile's consumers into *run (lite: nothing).
func initConsumers(ctx context.Context, env app.Env, run *func(context.Context) error) (app.Module, error) {
	cfg, err := events.LoadConfig(env.Lookup)
	if err != nil {
		return app.Module{}, app.ConfigError(err)
	}
	if cfg.Profile != events.ProfileStd {
		env.Logger.Info("lite profile: bitvaultd runs the consumers, the worker idles")
		return app.Module{}, nil
	}
	dbc, err := config.LoadDatabase(env.Lookup, config.ForServe)
	if err != nil {
		return app.Module{}, app.ConfigError(err)
	}
	if !dbc.Enabled {
		return app.Module{}, app.ConfigError(errors.New("the standard profile's consumers need a database"))
	}
	bcfg, err := backend.LoadConfig(env.Lookup, env.Config.DataDir)
	if err != nil {
		return app.Module{}, app.ConfigError(err)
	}
	if err := checkSharedStore(env.Lookup, bcfg); err != nil {
		return app.Module{}, app.ConfigError(err)
	}
	pool, err := db.Open(ctx, dbc.URL, dbc.Wait)
	if err != nil {
		return app.Module{}, err
	}
	env.Checks.Add("database", pool.Ping)
	be, err := backend.Open(ctx, bcfg, pool, env.Checks, env.Logger)
	if err != nil {
		pool.Close()
		return app.Module{}, err
	}
	cfg.Files, cfg.Webhooks = be.Files, be.Webhooks
	r, closeBus, err := events.RunWorker(ctx, cfg, pool, env.Checks, env.Logger)
	if err != nil {
		pool.Close()
		return app.Module{}, err
	}
	*run = r
	return app.Module{Close: func() {
		closeBus()
		pool.Close()
	}}, nil
}

// checkSharedStore refuses the filesystem object store unless EnvStorageShared declares its
// directory shared with bitvaultd: a store of the worker's own would be another, empty one.
func checkSharedStore(lookup func(string) (string, bool), cfg backend.Config) error {
	if cfg.Storage.Backend != storage.BackendFS {
		return nil
	}
	shared := false
	if v, _ := lookup(EnvStorageShared); strings.TrimSpace(v) != "" {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%s=%q: want true or false", EnvStorageShared, v)
		}
		shared = b
	}
	if !shared {
		return fmt.Errorf("%s=%s: the worker's filesystem store (%s) would not be bitvaultd's, and the GC and the indexer would act on an empty store; use %s=s3, or set %s=true if %s is a directory shared with bitvaultd",
			storage.EnvStorage, storage.BackendFS, cfg.Storage.FSDir, storage.EnvStorage, EnvStorageShared, storage.EnvStorageDir)
	}
	return nil
}

// idleLoop is the placeholder main loop: it does no work, it logs "idle" at debug level
// every interval until ctx ends.
func idleLoop(ctx context.Context, logger *slog.Logger, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			logger.Debug("main loop stopped")
			return nil
		case <-t.C:
			logger.DebugContext(ctx, "idle")
		}
	}
}
