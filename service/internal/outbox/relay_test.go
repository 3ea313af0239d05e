package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/consumers"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/outbox"
	"github.com/bitvault/bitvault/service/internal/platform/health"
	"github.com/bitvault/bitvault/service/internal/testsupport/natstest"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m, pgtest.Options{Template: func(ctx context.Context, ownerDSN string) error {
		_, err := db.MigrateURL(ctx, ownerDSN, 10*time.Second, nil)
		return err
	}}))
}

type env struct {
	app, super *pgxpool.Pool
	tenants    []string
}

func setup(t testing.TB, tenants int) *env {
	t.Helper()
	d := pgtest.New(t)
	e := &env{app: pgtest.Pool(t, d.AppDSN), super: pgtest.Pool(t, d.SuperDSN)}
	for i := range tenants {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i+1, i+1)
		if _, err := e.super.Exec(context.Background(), "INSERT INTO tenants (id, slug, name) VALUES ($1, $2, 'T')", id, fmt.Sprintf("t%d", i+1)); err != nil {
			t.Fatal(err)
		}
		e.tenants = append(e.tenants, id)
	}
	return e
}

// commit writes n files.version.created events for tenant as the files module does (in a
// tenant transaction as the app role), sizes seq*10, payload seq numbering from first.
func (e *env) commit(t testing.TB, tenant string, first, n int) {
	t.Helper()
	err := db.WithTenant(context.Background(), e.app, tenant, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for i := first; i < first+n; i++ {
			p, _ := json.Marshal(map[string]any{"tenant_id": tenant, "seq": i, "size": i * 10})
			b.Queue("INSERT INTO outbox (tenant_id, topic, payload) VALUES ($1, 'files.version.created', $2)", tenant, p)
		}
		return tx.SendBatch(context.Background(), b).Close()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// want is the meter's expected usage after seqs [0, n).
func want(n int) consumers.Usage {
	return consumers.Usage{VersionsCreated: int64(n), BytesWritten: int64(10 * n * (n - 1) / 2), Events: int64(n)}
}

func waitFor(t testing.TB, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s: %s", what, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *env) waitUsage(t testing.TB, n int) {
	t.Helper()
	waitFor(t, "usage", 30*time.Second, func() (bool, string) {
		for _, tn := range e.tenants {
			u, err := consumers.ReadUsage(context.Background(), e.app, tn)
			if err != nil {
				return false, err.Error()
			}
			if u != want(n) {
				return false, fmt.Sprintf("%s: %+v, want %+v", tn, u, want(n))
			}
		}
		return true, ""
	})
}

func (e *env) waitDrained(t testing.TB) {
	t.Helper()
	waitFor(t, "outbox drained", 30*time.Second, func() (bool, string) {
		l, err := outbox.ReadLag(context.Background(), e.app)
		return err == nil && l.Unpublished == 0, fmt.Sprintf("%+v %v", l, err)
	})
}

func run(t testing.TB, fn func(ctx context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("stopped with %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

var fast = bus.Options{MaxDeliver: 3, Backoff: func(int) time.Duration { return 20 * time.Millisecond }, AckWait: 2 * time.Second}

func jetstreamBus(t testing.TB, s *natstest.Server) *bus.JetStream {
	b, err := bus.ConnectJetStream(context.Background(), s.URL(), fast)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// TestRelayRLS: the app role sees no outbox row without a tenant, cannot become
// bitvault_relay, yet the relay functions see every tenant's rows.
func TestRelayRLS(t *testing.T) {
	e := setup(t, 2)
	ctx := context.Background()
	e.commit(t, e.tenants[0], 0, 3)
	e.commit(t, e.tenants[1], 0, 2)
	var n int
	if err := e.app.QueryRow(ctx, "SELECT count(*) FROM outbox").Scan(&n); err != nil || n != 0 {
		t.Fatalf("app role without tenant sees %d outbox rows (%v)", n, err)
	}
	if _, err := e.app.Exec(ctx, "SET ROLE bitvault_relay"); err == nil {
		t.Fatal("app role could SET ROLE bitvault_relay")
	}
	var login, bypass, member bool
	if err := e.super.QueryRow(ctx, `SELECT rolcanlogin, rolbypassrls, pg_has_role('bitvault_owner', 'bitvault_relay', 'MEMBER') FROM pg_roles WHERE rolname = 'bitvault_relay'`).Scan(&login, &bypass, &member); err != nil {
		t.Fatal(err)
	}
	if login || bypass || member {
		t.Fatalf("bitvault_relay login=%v bypassrls=%v owner member=%v, want none", login, bypass, member)
	}
	l, err := outbox.ReadLag(ctx, e.app)
	if err != nil || l.Unpublished != 5 {
		t.Fatalf("lag %+v %v, want 5 unpublished", l, err)
	}
	checks := health.New(0)
	checks.Add("outbox", outbox.LagCheck(e.app, time.Hour))
	if rep, ok := checks.Ready(ctx); !ok || !strings.HasPrefix(rep.Checks["outbox"].Detail, "5 unpublished, oldest ") {
		t.Fatalf("ready %v %+v, want ok with the backlog as detail", ok, rep)
	}
	time.Sleep(20 * time.Millisecond)
	if err := outbox.LagCheck(e.app, time.Millisecond)(ctx); err == nil {
		t.Fatal("lag check passed with an old backlog")
	}
	r := &outbox.Relay{Pool: e.app, Bus: bus.NewMem(fast)}
	if n, err := r.RunOnce(ctx); err != nil || n != 5 {
		t.Fatalf("relayed %d (%v), want 5", n, err)
	}
	if l, _ := outbox.ReadLag(ctx, e.app); l.Unpublished != 0 {
		t.Fatalf("lag after relay %+v", l)
	}
}

// recordingBus records every Publish call (no de-duplication), per tenant.
type recordingBus struct {
	bus.Bus
	mu    sync.Mutex
	calls map[string][]int // tenant → seqs in publish order
	total atomic.Int64
	fail  atomic.Int64 // fail this many more publishes
}

func (b *recordingBus) Publish(_ context.Context, e bus.Event) error {
	if b.fail.Load() > 0 && b.fail.Add(-1) >= 0 {
		return errors.New("injected publish failure")
	}
	var p struct{ Seq int }
	_ = json.Unmarshal(e.Payload, &p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls[e.Tenant] = append(b.calls[e.Tenant], p.Seq)
	b.total.Add(1)
	return nil
}

// TestConcurrentRelays: three relays on a backlog that keeps growing (with injected publish
// failures) send every event exactly once and each tenant's in order.
func TestConcurrentRelays(t *testing.T) {
	e := setup(t, 5)
	rb := &recordingBus{calls: map[string][]int{}}
	rb.fail.Store(7)
	const perTenant, chunk = 400, 20
	for i := range 3 {
		r := &outbox.Relay{Pool: e.app, Bus: rb, Batch: 37 + i*11, Interval: 5 * time.Millisecond}
		run(t, r.Run)
	}
	var wg sync.WaitGroup
	for _, tn := range e.tenants {
		wg.Go(func() {
			for first := 0; first < perTenant; first += chunk {
				e.commit(t, tn, first, chunk)
			}
		})
	}
	wg.Wait()
	e.waitDrained(t)
	rb.mu.Lock()
	defer rb.mu.Unlock()
	for _, tn := range e.tenants {
		seqs := rb.calls[tn]
		if len(seqs) != perTenant {
			t.Errorf("%s: %d publishes, want %d", tn, len(seqs), perTenant)
		}
		for i, s := range seqs {
			if s != i {
				t.Fatalf("%s: publish %d is seq %d: duplicated or reordered", tn, i, s)
			}
		}
	}
}

// profiles builds the bus of each profile.
func profiles() map[string]func(t testing.TB) bus.Bus {
	return map[string]func(t testing.TB) bus.Bus{
		"lite":     func(t testing.TB) bus.Bus { return bus.NewMem(fast) },
		"standard": func(t testing.TB) bus.Bus { return jetstreamBus(t, natstest.New(t)) },
	}
}

// TestEndToEnd: commits → relay → bus → meter, exactly once, in both profiles; a re-send of
// the whole outbox (a relay that lost its marks) changes nothing.
func TestEndToEnd(t *testing.T) {
	for name, mk := range profiles() {
		t.Run(name, func(t *testing.T) {
			e := setup(t, 3)
			b := mk(t)
			relay := &outbox.Relay{Pool: e.app, Bus: b, Interval: 10 * time.Millisecond}
			run(t, relay.Run)
			sig := consumers.NewSignal()
			woke, _ := sig.Wait(e.tenants[0])
			run(t, func(ctx context.Context) error { return consumers.Run(ctx, b, e.app, sig, nil) })
			for _, tn := range e.tenants {
				e.commit(t, tn, 0, 60)
				e.commit(t, tn, 60, 40)
			}
			e.waitDrained(t)
			e.waitUsage(t, 100)
			select {
			case <-woke:
			case <-time.After(5 * time.Second):
				t.Fatal("sync signal not fired")
			}
			// Every row sent again: the bus (lite: always; JetStream: within the window)
			// and the ledger keep the effect single.
			if _, err := e.super.Exec(context.Background(), "UPDATE outbox SET published_at = NULL"); err != nil {
				t.Fatal(err)
			}
			e.waitDrained(t)
			time.Sleep(300 * time.Millisecond)
			e.waitUsage(t, 100)
		})
	}
}

// TestDuplicateDeliveryOneEffect: the same event handled twice (as after a crash between
// the effect and the ack) counts once.
func TestDuplicateDeliveryOneEffect(t *testing.T) {
	e := setup(t, 1)
	m := consumers.Meter{Pool: e.app}
	msg := bus.Message{Event: bus.Event{ID: "11111111-1111-4111-8111-111111111111", Tenant: e.tenants[0], Type: "files.version.created", Payload: []byte(`{"size":5}`)}, Attempt: 1}
	for range 2 {
		if err := m.Handle(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
		msg.Attempt++
	}
	u, _ := consumers.ReadUsage(context.Background(), e.app, e.tenants[0])
	if u.VersionsCreated != 1 || u.BytesWritten != 5 {
		t.Fatalf("usage %+v, want one version of 5 bytes", u)
	}
}

// TestWorkerKilledMidBatch (JetStream): the meter is stopped after its effect on the 37th
// message but before the ack, twice; the restarted worker finishes with exact counters.
func TestWorkerKilledMidBatch(t *testing.T) {
	e := setup(t, 2)
	s := natstest.New(t)
	b := jetstreamBus(t, s)
	for _, tn := range e.tenants {
		e.commit(t, tn, 0, 100)
	}
	if _, err := (&outbox.Relay{Pool: e.app, Bus: b, Batch: 1000}).RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	meter := consumers.Meter{Pool: e.app}
	for range 2 {
		ctx, cancel := context.WithCancel(context.Background())
		var n atomic.Int64
		done := make(chan error, 1)
		go func() {
			done <- b.Subscribe(ctx, consumers.MeterName, consumers.MeterFilter, func(ctx context.Context, m bus.Message) error {
				if err := meter.Handle(ctx, m); err != nil {
					return err
				}
				if n.Add(1) == 37 {
					cancel() // killed after the effect, before the ack
					return ctx.Err()
				}
				return nil
			})
		}()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if got := n.Load(); got != 37 {
			t.Fatalf("worker handled %d before the kill", got)
		}
	}
	// A hard kill: the worker's connection drops after the effect of its 37th message, no
	// ack and no nak reach the server; the message comes back after AckWait.
	hard, err := bus.ConnectJetStream(context.Background(), s.URL(), fast)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	if err := hard.Subscribe(ctx, consumers.MeterName, consumers.MeterFilter, func(ctx context.Context, m bus.Message) error {
		if err := meter.Handle(ctx, m); err != nil {
			return err
		}
		if n.Add(1) == 37 {
			hard.Close()
			cancel()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A separate connection, as a new worker process.
	b2 := jetstreamBus(t, s)
	run(t, func(ctx context.Context) error { return consumers.Run(ctx, b2, e.app, nil, nil) })
	e.waitUsage(t, 100)
}

// TestNATSRestartWhileRelaying: NATS goes down and comes back (same store, same port) while
// events are committed and relayed; nothing is lost, nothing counted twice.
func TestNATSRestartWhileRelaying(t *testing.T) {
	e := setup(t, 3)
	s := natstest.New(t)
	b := jetstreamBus(t, s)
	relay := &outbox.Relay{Pool: e.app, Bus: b, Batch: 16, Interval: 5 * time.Millisecond}
	run(t, relay.Run)
	run(t, func(ctx context.Context) error { return consumers.Run(ctx, b, e.app, nil, nil) })
	for first := 0; first < 200; first += 10 {
		for _, tn := range e.tenants {
			e.commit(t, tn, first, 10)
		}
		if first == 50 {
			s.Restart()
		}
		if first == 120 {
			s.Shutdown()
			time.Sleep(300 * time.Millisecond)
			s.Restart()
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.waitDrained(t)
	e.waitUsage(t, 200)
}

// TestPoisonDeadLettered (JetStream): an event the meter cannot read is dead-lettered; the
// events around it are counted.
func TestPoisonDeadLettered(t *testing.T) {
	e := setup(t, 1)
	b := jetstreamBus(t, natstest.New(t))
	tn := e.tenants[0]
	e.commit(t, tn, 0, 10)
	err := db.WithTenant(context.Background(), e.app, tn, func(tx pgx.Tx) error {
		_, err := tx.Exec(context.Background(), `INSERT INTO outbox (tenant_id, topic, payload) VALUES ($1, 'files.version.created', '{"size":"big"}')`, tn)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.commit(t, tn, 10, 10)
	run(t, (&outbox.Relay{Pool: e.app, Bus: b, Interval: 10 * time.Millisecond}).Run)
	run(t, func(ctx context.Context) error { return consumers.Run(ctx, b, e.app, nil, nil) })
	e.waitUsage(t, 20)
	waitFor(t, "dead letter", 10*time.Second, func() (bool, string) {
		dl, err := b.DeadLetters(context.Background(), consumers.MeterName)
		return err == nil && len(dl) == 1 && string(dl[0].Payload) == `{"size": "big"}`, fmt.Sprint(dl, err)
	})
}
