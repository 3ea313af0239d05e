// Package events wires the outbox relay, the event bus and the consumers into the binaries
// according to the deployment profile (BITVAULT_PROFILE). The same events reach the same
// consumers, with the same results, in both profiles; only the processes differ:
//
//   - lite (default): bitvaultd runs everything: the relay, an in-process bus (bus.Mem) and
//     the consumers (meter, sync signal, GC and its sweep, indexer, webhook fan-out and
//     dispatcher); bitvault-worker has nothing to consume.
//   - standard: bitvaultd runs the relay to NATS JetStream (BITVAULT_NATS_URL) and, per
//     replica, the sync signal on a non-durable watch of the files subjects (every replica
//     must wake its own long polls); bitvault-worker runs the consumers (meter, GC and its
//     sweep, indexer, webhook fan-out and dispatcher) on JetStream durable consumers, shared
//     by the worker replicas.
//
// The consumers that need the object store (GC, indexer: Config.Files) and the webhooks
// (Config.Webhooks) run only when the binary sets them (internal/backend builds them from
// the same environment in both binaries). The GC sweep runs every BITVAULT_GC_INTERVAL
// (default 1m).
//
// bitvaultd also runs the retention sweep (package retention) in both profiles, which
// deletes published outbox rows, ledger rows and settled webhook deliveries once they are
// old enough (BITVAULT_*_RETENTION).
//
// bitvaultd's /readyz gets an "outbox" check failing when the oldest unpublished event is
// older than BITVAULT_OUTBOX_MAX_LAG (default 5m) and, in standard, a "nats" check, as does
// bitvault-worker's.
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
	"github.com/bitvault/bitvault/service/internal/retention"
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
	// Files, set by the binary running the consumers (not read from the environment),
	// enables the consumers that need the files service and its object store.
	Files *files.Service
	// Webhooks, set likewise, enables the webhook fan-out and dispatcher.
	Webhooks *webhooks.Service
	// Retention bounds the outbox, the consumers' ledger and the webhook deliveries
	// (BITVAULT_{OUTBOX,LEDGER,WEBHOOK}_RETENTION, BITVAULT_RETENTION_{INTERVAL,BATCH}); the
	// sweep runs in bitvaultd, beside the relay, in both profiles.
	Retention retention.Config
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
	r, err := retention.LoadConfig(lookup)
	if err != nil {
		return Config{}, err
	}
	c.Retention = r
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

// StartServer starts bitvaultd's part: the relay, the sync signal and, in lite, the bus and
// the consumers. The returned function stops them; signal wakes the sync long polls of this
// process in both profiles.
func StartServer(ctx context.Context, cfg Config, pool *pgxpool.Pool, checks *health.Checker, logger *slog.Logger) (stop func(), signal *consumers.Signal, err error) {
	// Several replicas sweeping at once is harmless: each table's sweep takes an advisory
	// lock, and the others skip it. Built first: a configuration error starts nothing.
	sweeper, err := retention.New(pool, cfg.Retention, logger)
	if err != nil {
		return nil, nil, err
	}
	signal = consumers.NewSignal()
	var b bus.Bus
	unwatch := func() {}
	switch cfg.Profile {
	case ProfileStd:
		js, err := connect(ctx, cfg)
		if err != nil {
			return nil, nil, err
		}
		if unwatch, err = watchSignal(js, signal); err != nil {
			js.Close()
			return nil, nil, err
		}
		checks.Add("nats", js.Ping)
		b = js
	default:
		b = bus.NewMem(bus.Options{})
	}
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g := &group{cancel: cancel}
	if cfg.Profile != ProfileStd {
		o := consumers.Options{Meter: true, Signal: signal, Files: cfg.Files, GCInterval: cfg.GCInterval, Webhooks: cfg.Webhooks, Logger: logger}
		g.wg.Go(func() { runConsumers(gctx, b, pool, o) })
	}
	checks.Add("outbox", outbox.LagCheck(pool, cfg.MaxLag))
	relay := &outbox.Relay{Pool: pool, Bus: b, Logger: logger}
	g.wg.Go(func() { _ = relay.Run(gctx) })
	g.wg.Go(func() { _ = sweeper.Run(gctx) })
	logger.Info("events", slog.String("profile", cfg.Profile))
	return func() { g.stop(); unwatch(); b.Close() }, signal, nil
}

// watchSignal feeds signal from a per-process watch of the files subjects: a durable
// consumer, shared by the replicas, would wake the long polls of one replica only.
func watchSignal(js *bus.JetStream, signal *consumers.Signal) (func(), error) {
	return js.Watch(consumers.SignalFilter, func(e bus.Event) { signal.Notify(e.Tenant) })
}

func runConsumers(ctx context.Context, b bus.Bus, pool *pgxpool.Pool, o consumers.Options) {
	if err := consumers.RunWith(ctx, b, pool, o); err != nil {
		o.Logger.Error("consumers stopped", slog.String("error", err.Error()))
	}
}

// RunWorker prepares bitvault-worker's part (standard profile only): the consumers (meter
// and, as cfg sets them, GC and its sweep, indexer, webhooks) on JetStream durable
// consumers. It returns the function running them until its context ends, and the one
// closing the connection.
func RunWorker(ctx context.Context, cfg Config, pool *pgxpool.Pool, checks *health.Checker, logger *slog.Logger) (func(context.Context) error, func(), error) {
	if cfg.Profile != ProfileStd {
		return nil, nil, errors.New("events: the worker consumes only in the standard profile")
	}
	js, err := connect(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	checks.Add("nats", js.Ping)
	o := consumers.Options{Meter: true, Files: cfg.Files, GCInterval: cfg.GCInterval, Webhooks: cfg.Webhooks, Logger: logger}
	run := func(ctx context.Context) error { return consumers.RunWith(ctx, js, pool, o) }
	logger.Info("events", slog.String("profile", cfg.Profile), slog.Bool("object_store_consumers", cfg.Files != nil), slog.Bool("webhooks", cfg.Webhooks != nil))
	return run, js.Close, nil
}
