// Package consumers holds the event-bus consumers: the meter (per-tenant usage counters),
// the sync signal (a per-tenant in-memory fan-out waking long-polling sync clients), the GC
// (finalizer of unreferenced blobs and expired uploads, with a periodic sweep), the search
// indexer (text of small files) and the webhook fan-out (with the webhooks dispatcher).
//
// A consumer with a database effect is idempotent through the processed-event ledger
// (processed_events): it inserts (consumer, event id) in the transaction of its effect and
// does nothing when the row exists, so a redelivered event (at-least-once bus, relay re-send
// past the duplicate window) has one effect.
package consumers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/webhooks"
)

// Consumer names and filters.
const (
	MeterName    = "meter"
	MeterFilter  = "bitvault.files.>"
	SignalName   = "sync-signal"
	SignalFilter = "bitvault.files.>"
)

// Topics the meter counts (the files module's outbox topics).
const (
	topicVersionCreated = "files.version.created"
	topicNodePurged     = "files.node.purged"
)

// Meter keeps usage_counters from the files events.
type Meter struct{ Pool *pgxpool.Pool }

// Usage is a tenant's counters.
type Usage struct {
	VersionsCreated, BytesWritten, NodesPurged, BlobsReleased, Events int64
}

// Handle is the meter's bus.Handler. A payload it cannot read is a permanent failure
// (dead-lettered); a database error is retried.
func (m Meter) Handle(ctx context.Context, msg bus.Message) error {
	var d Usage
	switch msg.Type {
	case topicVersionCreated:
		var p struct {
			Size *int64 `json:"size"`
		}
		if err := json.Unmarshal(msg.Payload, &p); err != nil || p.Size == nil || *p.Size < 0 {
			return bus.Term(fmt.Errorf("meter: %s %s: bad payload", msg.Type, msg.ID))
		}
		d.VersionsCreated, d.BytesWritten = 1, *p.Size
	case topicNodePurged:
		var p struct {
			PurgedNodes   *int64   `json:"purged_nodes"`
			ReleasedBlobs []string `json:"released_blobs"`
		}
		if err := json.Unmarshal(msg.Payload, &p); err != nil || p.PurgedNodes == nil {
			return bus.Term(fmt.Errorf("meter: %s %s: bad payload", msg.Type, msg.ID))
		}
		d.NodesPurged, d.BlobsReleased = *p.PurgedNodes, int64(len(p.ReleasedBlobs))
	default:
		return nil
	}
	err := db.WithTenant(ctx, m.Pool, msg.Tenant, func(tx pgx.Tx) error {
		first, err := Record(ctx, tx, msg.Tenant, MeterName, msg.ID)
		if err != nil || !first {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO usage_counters AS u (tenant_id, versions_created, bytes_written, nodes_purged, blobs_released, events)
VALUES ($1, $2, $3, $4, $5, 1)
ON CONFLICT (tenant_id) DO UPDATE SET versions_created = u.versions_created + $2, bytes_written = u.bytes_written + $3,
	nodes_purged = u.nodes_purged + $4, blobs_released = u.blobs_released + $5, events = u.events + 1, updated_at = now()`,
			msg.Tenant, d.VersionsCreated, d.BytesWritten, d.NodesPurged, d.BlobsReleased)
		return err
	})
	if err != nil {
		return fmt.Errorf("meter: %w", err)
	}
	return nil
}

// Record inserts (consumer, eventID) into the ledger in tx and reports whether it was new.
func Record(ctx context.Context, tx pgx.Tx, tenant, consumer, eventID string) (bool, error) {
	tag, err := tx.Exec(ctx, "INSERT INTO processed_events (tenant_id, consumer, event_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", tenant, consumer, eventID)
	if err != nil {
		return false, fmt.Errorf("ledger: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReadUsage reads a tenant's counters (zero without any).
func ReadUsage(ctx context.Context, pool *pgxpool.Pool, tenant string) (Usage, error) {
	var u Usage
	err := db.WithTenant(ctx, pool, tenant, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, "SELECT versions_created, bytes_written, nodes_purged, blobs_released, events FROM usage_counters WHERE tenant_id = $1", tenant).
			Scan(&u.VersionsCreated, &u.BytesWritten, &u.NodesPurged, &u.BlobsReleased, &u.Events)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	return u, err
}

// Signal fans files events out to in-process waiters per tenant (sync long-polls). It has no
// durable effect, so it needs no ledger: a duplicate wakes a waiter once more. It is fed by
// a bus consumer (Handle: the lite profile's in-process bus) or by a per-process watch
// (Notify: in the standard profile every bitvaultd replica watches JetStream's subjects).
type Signal struct {
	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
}

// NewSignal returns an empty fan-out.
func NewSignal() *Signal { return &Signal{waiters: map[string]map[chan struct{}]struct{}{}} }

// Wait returns a channel closed on the tenant's next files event, and a function to cancel
// the wait (to be called in any case: it releases the waiter).
func (s *Signal) Wait(tenant string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waiters[tenant] == nil {
		s.waiters[tenant] = map[chan struct{}]struct{}{}
	}
	s.waiters[tenant][ch] = struct{}{}
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if w, ok := s.waiters[tenant]; ok {
			delete(w, ch)
			if len(w) == 0 {
				delete(s.waiters, tenant)
			}
		}
	}
}

// Notify wakes the tenant's waiters, and only them.
func (s *Signal) Notify(tenant string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.waiters[tenant] {
		close(ch)
	}
	delete(s.waiters, tenant)
}

// Waiting returns how many waits of tenant are pending (for tests and metrics).
func (s *Signal) Waiting(tenant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters[tenant])
}

// Handle is the signal's bus.Handler.
func (s *Signal) Handle(_ context.Context, msg bus.Message) error {
	s.Notify(msg.Tenant)
	return nil
}

// Options select the consumers RunWith runs.
type Options struct {
	// Meter runs the meter.
	Meter bool
	// Signal, if set, runs the sync signal.
	Signal *Signal
	// Files, if set, runs the consumers that need the object store: the GC (consumer and
	// periodic sweep, every GCInterval) and the indexer.
	Files      *files.Service
	GCInterval time.Duration
	// Webhooks, if set, runs the webhook fan-out consumer and the delivery dispatcher.
	Webhooks *webhooks.Service
	Logger   *slog.Logger
}

// Run subscribes the meter and the signal (if not nil) to b until ctx ends.
func Run(ctx context.Context, b bus.Bus, pool *pgxpool.Pool, signal *Signal, logger *slog.Logger) error {
	return RunWith(ctx, b, pool, Options{Meter: true, Signal: signal, Logger: logger})
}

// RunWith runs the consumers of o on b until ctx ends.
func RunWith(ctx context.Context, b bus.Bus, pool *pgxpool.Pool, o Options) error {
	logger := o.Logger
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 8)
	n := 0
	goRun := func(name string, fn func() error) {
		n++
		go func() {
			err := fn()
			if err != nil && logger != nil {
				logger.Error("consumer stopped", slog.String("consumer", name), slog.String("error", err.Error()))
			}
			errs <- err
		}()
	}
	start := func(name, filter string, h bus.Handler) {
		goRun(name, func() error { return b.Subscribe(ctx, name, filter, h) })
	}
	if o.Meter {
		start(MeterName, MeterFilter, Meter{Pool: pool}.Handle)
	}
	if o.Signal != nil {
		start(SignalName, SignalFilter, o.Signal.Handle)
	}
	if o.Files != nil {
		gc := GC{Pool: pool, Files: o.Files, Logger: logger}
		start(GCName, GCFilter, gc.Handle)
		goRun("gc-sweep", func() error { return gc.RunSweeper(ctx, o.GCInterval) })
		start(IndexerName, IndexerFilter, Indexer{Pool: pool, Store: o.Files.Store()}.Handle)
	}
	if o.Webhooks != nil {
		start(WebhooksName, WebhooksFilter, WebhookFanout{Pool: pool, Webhooks: o.Webhooks}.Handle)
		goRun("webhooks-dispatch", func() error { return o.Webhooks.RunDispatcher(ctx) })
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}
