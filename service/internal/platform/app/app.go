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
	// Run, if set, is the binary's main loop. It must return nil when ctx ends (SIGTERM);
	// returning earlier, with or without an error, stops the process with exit code 1.
	Run func(ctx context.Context, logger *slog.Logger) error
}

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

	mux := http.NewServeMux()
	mux.Handle(health.PathLiveness, apierror.Methods(checks.Liveness(), http.MethodGet))
	mux.Handle(health.PathReadiness, apierror.Methods(checks.Readiness(), http.MethodGet))
	mux.HandleFunc("/", apierror.NotFound)
	if spec.Routes != nil {
		spec.Routes(mux, logger)
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
	})
	cancel(nil)
	wg.Wait()

	if err := errors.Join(runErr, serveErr); err != nil {
		logger.Error("exiting with error", slog.String("error", err.Error()))
		return ExitError
	}
	logger.Info("exited cleanly")
	return ExitOK
}
