// Package events wires the outbox relay, the event bus and the consumers into the binaries
// according to the deployment profile (BITVAULT_PROFILE):
//
//   - lite (default): bitvaultd runs the relay, an in-process bus (bus.Mem) and the consumers
//     (meter, sync signal); bitvault-worker has nothing to consume.
//   - standard: bitvaultd runs the relay to NATS JetStream (BITVAULT_NATS_URL);
//     bitvault-worker runs the consumers on JetStream durable consumers.
//
// The consumers that need the object store (GC and its sweep, indexer: Config.Files) and the
// webhooks (fan-out and dispatcher: Config.Webhooks), both set by bitvaultd, run in bitvaultd in both profiles: on the in-process bus in lite, on
// JetStream durable consumers (shared by the bitvaultd replicas) in standard. The GC sweep
// runs every BITVAULT_GC_INTERVAL (default 1m).
//
// bitvaultd's /readyz gets an "outbox" check failing when the oldest unpublished event is
// older than BITVAULT_OUTBOX_MAX_LAG (default 5m), and, in standard, a "nats" check.
package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/consumers"
	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/outbox"
	"github.com/bitvault/bitvault/service/internal/platform/health"
	"github.com/bitvault/bitvault/service/internal/webhooks"
)

// Environment variables.
const (
	EnvProfile    = "BITVAULT_PROFILE"
	EnvNATSURL    = "BITVAULT_NATS_URL"
	EnvMaxLag     = "BITVAULT_OUTBOX_MAX_LAG"
	EnvGCInterval = "BITVAULT_GC_INTERVAL"
	ProfileLite   = "lite"
	ProfileStd    = "standard"
	defaultLag    = 5 * time.Minute
	connectLimit  = 30 * time.Second
)

// Config is the events configuration.
type Config struct {
	Profile string
	NATSURL string
	MaxLag  time.Duration
	// GCInterval is the period of the GC sweep (0: consumers.DefaultGCInterval).
	GCInterval time.Duration
	// Files, set by bitvaultd (not read from the environment), enables the consumers that
	// need the files service and its object store.
	Files *files.Service
	// Webhooks, set by bitvaultd, enables the webhook fan-out and dispatcher.
	Webhooks *webhooks.Service
}

// LoadConfig reads the configuration.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	get := func(k string) string { v, _ := lookup(k); return strings.TrimSpace(v) }
	c := Config{Profile: get(EnvProfile), NATSURL: get(EnvNATSURL), MaxLag: defaultLag}
	switch c.Profile {
	case "":
		c.Profile = ProfileLite
	case ProfileLite, ProfileStd:
	default:
		return Config{}, fmt.Errorf("%s=%q: want %s or %s", EnvProfile, c.Profile, ProfileLite, ProfileStd)
	}
	if c.Profile == ProfileStd && c.NATSURL == "" {
		return Config{}, fmt.Errorf("%s=%s needs %s", EnvProfile, ProfileStd, EnvNATSURL)
	}
	if v := get(EnvMaxLag); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return Config{}, fmt.Errorf("%s=%q: want a positive duration", EnvMaxLag, v)
		}
		c.MaxLag = d
	}
	if v := get(EnvGCInterval); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			return Config{}, fmt.Errorf("%s=%q: want a duration of at least 1s", EnvGCInterval, v)
		}
		c.GCInterval = d
	}
	return c, nil
}

func connect(ctx context.Context, cfg Config) (*bus.JetStream, error) {
	cctx, cancel := context.WithTimeout(ctx, connectLimit)
	defer cancel()
	var err error
	for {
		var b *bus.JetStream
		if b, err = bus.ConnectJetStream(cctx, cfg.NATSURL, bus.Options{}); err == nil {
			return b, nil
		}
		select {
		case <-cctx.Done():
			return nil, err
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// group runs goroutines until stopped.
type group struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (g *group) stop() {
	g.cancel()
	g.wg.Wait()
}

// StartServer starts bitvaultd's part: the relay (and, in lite, the bus and consumers). The
// returned function stops them; signal is the sync fan-out (lite only, else nil).
func StartServer(ctx context.Context, cfg Config, pool *pgxpool.Pool, checks *health.Checker, logger *slog.Logger) (stop func(), signal *consumers.Signal, err error) {
	var b bus.Bus
	switch cfg.Profile {
	case ProfileStd:
		js, err := connect(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		checks.Add("nats", js.Ping)
		b = js
	default:
		b = bus.NewMem(bus.Options{})
		signal = consumers.NewSignal()
	}
	checks.Add("outbox", outbox.LagCheck(pool, cfg.MaxLag))
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g := &group{cancel: cancel}
	relay := &outbox.Relay{Pool: pool, Bus: b, Logger: logger}
	g.wg.Go(func() { _ = relay.Run(gctx) })
	o := consumers.Options{Files: cfg.Files, GCInterval: cfg.GCInterval, Webhooks: cfg.Webhooks, Logger: logger}
	if cfg.Profile == ProfileLite {
		o.Meter, o.Signal = true, signal
	}
	if o.Meter || o.Files != nil || o.Webhooks != nil {
		g.wg.Go(func() {
			if err := consumers.RunWith(gctx, b, pool, o); err != nil {
				logger.Error("consumers stopped", slog.String("error", err.Error()))
			}
		})
	}
	logger.Info("events", slog.String("profile", cfg.Profile))
	return func() { g.stop(); b.Close() }, signal, nil
}

// RunWorker runs bitvault-worker's consumers on JetStream until ctx ends.
func RunWorker(ctx context.Context, cfg Config, pool *pgxpool.Pool, checks *health.Checker, logger *slog.Logger) (func(context.Context) error, func(), error) {
	if cfg.Profile != ProfileStd {
		return nil, nil, errors.New("events: the worker consumes only in the standard profile")
	}
	js, err := connect(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	checks.Add("nats", js.Ping)
	run := func(ctx context.Context) error { return consumers.Run(ctx, js, pool, nil, logger) }
	return run, js.Close, nil
}
