// Command bitvault-worker is BitVault's asynchronous worker process.
//
// In the standard profile (BITVAULT_PROFILE=standard, see internal/events) it runs the event
// consumers (meter, …) on NATS JetStream durable consumers (BITVAULT_NATS_URL), with the
// database of BITVAULT_DATABASE_URL; readiness checks the database and NATS. In the lite
// profile bitvaultd runs the consumers itself and the worker only idles (logging "idle" at
// debug level). Also: configuration, JSON logs on stdout, the probes (/healthz, /readyz on
// BITVAULT_HTTP_ADDR, default :8081), the writable-dir check and the graceful drain on
// SIGTERM. The indexer, GC/finalizer and webhook consumers are still to come.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/events"
	"github.com/bitvault/bitvault/service/internal/platform/app"
	"github.com/bitvault/bitvault/service/internal/platform/config"
)

// Set at build time with -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = "unknown"
)

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
	pool, err := db.Open(ctx, dbc.URL, dbc.Wait)
	if err != nil {
		return app.Module{}, err
	}
	env.Checks.Add("database", pool.Ping)
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
