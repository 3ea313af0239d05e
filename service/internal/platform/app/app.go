// Package app runs a BitVault process: configuration, JSON logging, the writable-dir check, probes, an optional main loop and graceful HTTP serving.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"

	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/config"
	"github.com/bitvault/bitvault/service/internal/platform/health"
	bvlog "github.com/bitvault/bitvault/service/internal/platform/log"
	"github.com/bitvault/bitvault/service/internal/platform/server"
	"github.com/bitvault/bitvault/service/internal/platform/writable"
)

// Exit codes returned by Main.
const (
	ExitOK     = 0
	ExitError  = 1
	ExitConfig = 2
)

// Spec describes one binary.
type Spec struct {
	// Name, Version and Commit identify the binary in every log line.
	Name, Version, Commit string
	// Defaults are this binary's configuration defaults.
	Defaults config.Defaults
	// Routes, if set, adds the binary's own routes to the mux (which already has the probes
	// and a JSON 404 for everything else).
	Routes func(mux *http.ServeMux, logger *slog.Logger)
	// Init, if set, runs after the configuration and writable-dir checks and before the
	// server listens: it reads the binary's own settings, opens its dependencies (ctx ends on
	// SIGTERM), adds readiness checks and returns its routes and a function closing what it
	// opened, called once the server has stopped. An error wrapping ErrConfig exits with
	// ExitConfig, any other with ExitError.
	Init func(ctx context.Context, env Env) (Module, error)
	// Run, if set, is the binary's main loop. It must return nil when ctx ends (SIGTERM);
	// returning earlier, with or without an error, stops the process with exit code 1.
	Run func(ctx context.Context, logger *slog.Logger) error
}

// Env is what Spec.Init gets.
type Env struct {
	Config config.Config
	// Lookup reads environment variables (os.LookupEnv in production).
	Lookup func(string) (string, bool)
	Logger *slog.Logger
	// Checks takes the binary's readiness checks.
	Checks *health.Checker
	// ShuttingDown is closed when the server's shutdown begins: after the drain delay (while
	// it lasts, the server still serves normally), right before in-flight requests are
	// waited for. Long-running requests (long polls) should end then.
	ShuttingDown <-chan struct{}
}

// Module is what Spec.Init returns; both fields may be nil.
type Module struct {
	// Routes adds routes to the mux after Spec.Routes.
	Routes func(mux *http.ServeMux)
	// Close releases what Init opened.
	Close func()
}

// ErrConfig marks Init errors that are configuration mistakes (exit code ExitConfig); wrap
// them with ConfigError.
var ErrConfig = errors.New("invalid configuration")

// ConfigError marks err as a configuration mistake (errors.Is(err, ErrConfig)) without
// changing its message.
func ConfigError(err error) error { return configError{err} }

type configError struct{ error }

func (e configError) Is(target error) bool { return target == ErrConfig }

func (e configError) Unwrap() error { return e.error }

// Main runs the process described by spec until SIGTERM or SIGINT and returns its exit code.
// Everything it prints goes to stdout as JSON log lines.
func Main(spec Spec, stdout io.Writer, lookupEnv func(string) (string, bool)) int {
	ctx, stop := server.SignalContext(context.Background())
	defer stop()
	// After the first signal, restore the default behaviour: a second SIGINT/SIGTERM ends
	// the process at once instead of waiting for the drain.
	context.AfterFunc(ctx, stop)
	return Run(ctx, spec, stdout, lookupEnv)
}

// Run is Main without the signal handling: the process drains and stops when ctx ends.
func Run(ctx context.Context, spec Spec, stdout io.Writer, lookupEnv func(string) (string, bool)) int {
	level := new(slog.LevelVar)
	logger := bvlog.New(stdout, level).With(slog.String("service", spec.Name))

	cfg, err := config.Load(lookupEnv, spec.Defaults)
	if err != nil {
		logger.Error("invalid configuration", slog.String("error", err.Error()))
		return ExitConfig
	}
	level.Set(cfg.LogLevel)
	logger.Info("starting",
		slog.String("version", spec.Version),
		slog.String("commit", spec.Commit),
		slog.String("go", runtime.Version()),
		slog.String("http_addr", cfg.HTTPAddr),
		slog.String("data_dir", cfg.DataDir),
		slog.Duration("drain_delay", cfg.DrainDelay),
		slog.Duration("shutdown_timeout", cfg.ShutdownTimeout),
	)
	if err := writable.Check(cfg.DataDir); err != nil {
		logger.Error("writable dir check failed", slog.String("error", err.Error()))
		return ExitError
	}

	checks := health.New(0)
	checks.Add("writable_dir", writable.HealthCheck(cfg.DataDir))

	shuttingDown := make(chan struct{})
	var shutdownOnce sync.Once
	startShutdown := func() { shutdownOnce.Do(func() { close(shuttingDown) }) }
	defer startShutdown()
	var mod Module
	if spec.Init != nil {
		mod, err = spec.Init(ctx, Env{Config: cfg, Lookup: lookupEnv, Logger: logger, Checks: checks, ShuttingDown: shuttingDown})
		if err != nil {
			if errors.Is(err, ErrConfig) {
				logger.Error("invalid configuration", slog.String("error", err.Error()))
				return ExitConfig
			}
			logger.Error("start failed", slog.String("error", err.Error()))
			return ExitError
		}
		if mod.Close != nil {
			defer mod.Close()
		}
	}

	mux := http.NewServeMux()
	mux.Handle(health.PathLiveness, apierror.Methods(checks.Liveness(), http.MethodGet))
	mux.Handle(health.PathReadiness, apierror.Methods(checks.Readiness(), http.MethodGet))
	mux.HandleFunc("/", apierror.NotFound)
	if spec.Routes != nil {
		spec.Routes(mux, logger)
	}
	if mod.Routes != nil {
		mod.Routes(mux)
	}

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg     sync.WaitGroup
		runErr error
	)
	if spec.Run != nil {
		wg.Go(func() {
			runErr = spec.Run(runCtx, logger)
			if runErr == nil && runCtx.Err() == nil {
				runErr = errors.New("main loop returned before shutdown")
			}
			if runErr != nil {
				runErr = fmt.Errorf("main loop: %w", runErr)
				cancel(runErr)
			}
		})
	}

	serveErr := server.ListenAndServe(runCtx, cfg.HTTPAddr, server.Options{
		Handler:         server.Handler(logger, mux),
		Logger:          logger,
		Drainer:         checks,
		DrainDelay:      cfg.DrainDelay,
		ShutdownTimeout: cfg.ShutdownTimeout,
		OnShutdown:      startShutdown,
	})
	startShutdown() // also when serving failed
	cancel(nil)
	wg.Wait()

	if err := errors.Join(runErr, serveErr); err != nil {
		logger.Error("exiting with error", slog.String("error", err.Error()))
		return ExitError
	}
	logger.Info("exited cleanly")
	return ExitOK
}
