// Command bitvault-worker is BitVault's asynchronous worker process.
//
// It is a placeholder: its main loop only logs "idle" at debug level on a ticker. The NATS
// JetStream consumers (indexer, GC/finalizer, outbox relay, notification dispatch) are added
// by later work. What is real already: configuration, JSON logs on stdout, the probes
// (/healthz, /readyz on BITVAULT_HTTP_ADDR, default :8081), the writable-dir check and the
// graceful drain on SIGTERM.
package main

import (
	"context"
	"log/slog"
	"os"
	"time"

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
	return app.Spec{
		Name:     "bitvault-worker",
		Version:  version,
		Commit:   commit,
		Defaults: config.Defaults{HTTPAddr: ":8081"},
		Run:      func(ctx context.Context, logger *slog.Logger) error { return idleLoop(ctx, logger, idleInterval) },
	}
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
