// Package server runs an HTTP server until its context ends, then drains and shuts it down gracefully.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/health"
	bvlog "github.com/bitvault/bitvault/service/internal/platform/log"
)

// Timeouts of the http.Server; generous for an API whose bytes go to the object store directly.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 120 * time.Second
	MaxHeaderBytes    = 1 << 20
)

// Drainer is told when draining starts; *health.Checker implements it.
type Drainer interface{ StartDraining() }

// Options configure Serve.
type Options struct {
	// Handler serves every request.
	Handler http.Handler
	// Logger receives lifecycle events and the http.Server's own errors.
	Logger *slog.Logger
	// Drainer, if set, is told to start draining as soon as the context ends.
	Drainer Drainer
	// DrainDelay is how long the server keeps serving after the context ends (readiness is
	// already 503) so that endpoints and load balancers stop sending traffic.
	DrainDelay time.Duration
	// ShutdownTimeout bounds http.Server.Shutdown (waiting for in-flight requests).
	ShutdownTimeout time.Duration
	// OnShutdown, if set, is called once the drain delay is over, right before
	// http.Server.Shutdown: long-running requests (long polls) end then, not while load
	// balancers may still route traffic here.
	OnShutdown func()
}

// SignalContext returns a context that ends on the first SIGTERM or SIGINT. After that the
// signals' default behaviour is restored by stop, so a second Ctrl-C ends the process at once.
func SignalContext(parent context.Context) (ctx context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(parent, syscall.SIGTERM, os.Interrupt)
}

// ListenAndServe listens on addr and calls Serve.
func ListenAndServe(ctx context.Context, addr string, opts Options) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return Serve(ctx, ln, opts)
}

// Serve serves on ln until ctx ends, then: tells the Drainer, keeps serving for DrainDelay,
// calls OnShutdown and shuts the server down within ShutdownTimeout. It returns nil after a clean shutdown,
// and an error if serving failed or in-flight requests outlived the timeout (those
// connections are then closed).
func Serve(ctx context.Context, ln net.Listener, opts Options) error {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           opts.Handler,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		// Requests must outlive ctx: it ends when draining starts, not when serving stops.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	logger.InfoContext(ctx, "listening", slog.String("addr", ln.Addr().String()))

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	if opts.Drainer != nil {
		opts.Drainer.StartDraining()
	}
	logger.Info("draining", slog.Duration("drain_delay", opts.DrainDelay), slog.String("cause", context.Cause(ctx).Error()))
	if opts.DrainDelay > 0 {
		t := time.NewTimer(opts.DrainDelay)
		select {
		case <-t.C:
		case err := <-serveErr:
			t.Stop()
			return fmt.Errorf("serve %s while draining: %w", ln.Addr(), err)
		}
	}

	logger.Info("shutting down", slog.Duration("timeout", opts.ShutdownTimeout))
	if opts.OnShutdown != nil {
		opts.OnShutdown()
	}
	sctx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown %s: in-flight requests outlived %s: %w", ln.Addr(), opts.ShutdownTimeout, err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	logger.Info("stopped")
	return nil
}

// Handler wraps mux with the standard middleware, outermost first: request and trace ids plus
// the access log (bvlog.Middleware; probe paths logged at debug), then Recover.
func Handler(logger *slog.Logger, mux http.Handler) http.Handler {
	return bvlog.Middleware(logger, isProbe, Recover(logger, mux))
}

func isProbe(r *http.Request) bool {
	return r.URL.Path == health.PathLiveness || r.URL.Path == health.PathReadiness
}

// Recover turns a panicking handler into a logged 500 JSON error instead of a dropped
// connection. http.ErrAbortHandler is re-panicked, as net/http expects.
func Recover(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			logger.ErrorContext(r.Context(), "handler panic",
				slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			apierror.Write(w, r, http.StatusInternalServerError, "internal", "internal error")
		}()
		next.ServeHTTP(w, r)
	})
}
