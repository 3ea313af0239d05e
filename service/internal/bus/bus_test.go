package bus_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/testsupport/natstest"
)

var opts = bus.Options{MaxDeliver: 3, Backoff: func(int) time.Duration { return 20 * time.Millisecond }, AckWait: 5 * time.Second}

// impls are the implementations the contract runs against.
func impls(t *testing.T) map[string]func(t *testing.T) bus.Bus {
	return map[string]func(t *testing.T) bus.Bus{
		"mem": func(t *testing.T) bus.Bus { return bus.NewMem(opts) },
		"jetstream": func(t *testing.T) bus.Bus {
			s := natstest.New(t)
			b, err := bus.ConnectJetStream(context.Background(), s.URL(), opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.Close)
			return b
		},
	}
}

const tenant = "aaaaaaaa-0000-4000-8000-000000000001"

func ev(id string) bus.Event {
	return bus.Event{ID: id, Tenant: tenant, Type: "files.version.created", Payload: []byte(`{"id":"` + id + `"}`)}
}

// recorder collects handled ids.
type recorder struct {
	mu   sync.Mutex
	seen []string
	by   map[string]int
}

func (r *recorder) add(m bus.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.by == nil {
		r.by = map[string]int{}
	}
	r.seen = append(r.seen, m.ID)
	r.by[m.ID]++
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timeout waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func subscribe(t *testing.T, b bus.Bus, name, filter string, h bus.Handler) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Subscribe(ctx, name, filter, h) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("subscribe %s: %v", name, err)
		}
	}
	t.Cleanup(func() {
		if ctx.Err() == nil {
			stop()
		}
	})
	return stop
}

func TestContract(t *testing.T) {
	for name, mk := range impls(t) {
		t.Run(name, func(t *testing.T) {
			t.Run("DedupeAndOrder", func(t *testing.T) {
				b := mk(t)
				ctx := context.Background()
				for i := range 5 {
					for range 2 {
						if err := b.Publish(ctx, ev(fmt.Sprint("e", i))); err != nil {
							t.Fatal(err)
						}
					}
				}
				var r recorder
				subscribe(t, b, "c1", "bitvault.files.>", func(_ context.Context, m bus.Message) error { r.add(m); return nil })
				waitFor(t, "5 events", func() bool { return r.count() >= 5 })
				time.Sleep(100 * time.Millisecond)
				if got := fmt.Sprint(r.seen); got != "[e0 e1 e2 e3 e4]" {
					t.Fatalf("seen %s, want each once in order", got)
				}
			})
			t.Run("RetryThenSuccess", func(t *testing.T) {
				b := mk(t)
				ctx := context.Background()
				var mu sync.Mutex
				var attempts []int
				ok := make(chan struct{})
				subscribe(t, b, "c1", "bitvault.>", func(_ context.Context, m bus.Message) error {
					mu.Lock()
					defer mu.Unlock()
					attempts = append(attempts, m.Attempt)
					if m.Attempt < 3 {
						return errors.New("transient")
					}
					close(ok)
					return nil
				})
				if err := b.Publish(ctx, ev("x")); err != nil {
					t.Fatal(err)
				}
				select {
				case <-ok:
				case <-time.After(10 * time.Second):
					t.Fatal("not redelivered")
				}
				dl, _ := b.DeadLetters(ctx, "c1")
				if fmt.Sprint(attempts) != "[1 2 3]" || len(dl) != 0 {
					t.Fatalf("attempts %v dead %v", attempts, dl)
				}
			})
			t.Run("PoisonDeadLettered", func(t *testing.T) {
				b := mk(t)
				ctx := context.Background()
				var r recorder
				var mu sync.Mutex
				poisonTries := 0
				subscribe(t, b, "c1", "bitvault.>", func(_ context.Context, m bus.Message) error {
					if m.ID == "poison" {
						mu.Lock()
						poisonTries++
						mu.Unlock()
						return errors.New("cannot process")
					}
					if m.ID == "fatal" {
						return bus.Term(errors.New("malformed"))
					}
					r.add(m)
					return nil
				})
				for _, id := range []string{"a", "poison", "b", "fatal", "c"} {
					if err := b.Publish(ctx, ev(id)); err != nil {
						t.Fatal(err)
					}
				}
				waitFor(t, "dead letters", func() bool { dl, _ := b.DeadLetters(ctx, "c1"); return len(dl) == 2 })
				waitFor(t, "others", func() bool { return r.count() == 3 })
				dl, _ := b.DeadLetters(ctx, "c1")
				ids := map[string]bool{}
				for _, e := range dl {
					ids[e.ID] = true
					if e.Tenant != tenant || e.Type != "files.version.created" || len(e.Payload) == 0 {
						t.Errorf("dead letter %+v lost fields", e)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				if !ids["poison"] || !ids["fatal"] || poisonTries != opts.MaxDeliver {
					t.Fatalf("dead %v, poison tried %d times (want %d)", ids, poisonTries, opts.MaxDeliver)
				}
			})
			t.Run("DurableAndFiltered", func(t *testing.T) {
				b := mk(t)
				ctx := context.Background()
				var r recorder
				h := func(_ context.Context, m bus.Message) error { r.add(m); return nil }
				stop := subscribe(t, b, "c1", "bitvault.files.>", h)
				_ = b.Publish(ctx, ev("1"))
				_ = b.Publish(ctx, bus.Event{ID: "s1", Tenant: tenant, Type: "sharing.share.created", Payload: []byte("{}")})
				_ = b.Publish(ctx, ev("2"))
				waitFor(t, "2", func() bool { return r.count() == 2 })
				stop()
				_ = b.Publish(ctx, ev("3"))
				subscribe(t, b, "c1", "bitvault.files.>", h)
				waitFor(t, "3", func() bool { return r.count() == 3 })
				time.Sleep(100 * time.Millisecond)
				if fmt.Sprint(r.seen) != "[1 2 3]" {
					t.Fatalf("seen %v", r.seen)
				}
			})
			t.Run("CancelMidMessageRedelivers", func(t *testing.T) {
				b := mk(t)
				ctx := context.Background()
				var r recorder
				_ = b.Publish(ctx, ev("1"))
				started := make(chan struct{})
				stop := subscribe(t, b, "c1", "bitvault.>", func(ctx context.Context, m bus.Message) error {
					close(started)
					<-ctx.Done()
					return ctx.Err()
				})
				<-started
				stop()
				subscribe(t, b, "c1", "bitvault.>", func(_ context.Context, m bus.Message) error { r.add(m); return nil })
				waitFor(t, "redelivery", func() bool { return r.count() == 1 })
			})
		})
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		f, s string
		want bool
	}{{"bitvault.>", "bitvault.a.b", true}, {"bitvault.files.>", "bitvault.sharing.x.t", false}, {"bitvault.*.x", "bitvault.a.x", true}, {"bitvault.>", "bitvault", false}, {"a.b", "a.b.c", false}} {
		if got := bus.Match(c.f, c.s); got != c.want {
			t.Errorf("Match(%q, %q) = %v", c.f, c.s, got)
		}
	}
}

// TestMemBounded: the in-process stream drops what every consumer has taken.
func TestMemBounded(t *testing.T) {
	b := bus.NewMem(opts)
	var r recorder
	subscribe(t, b, "c1", "bitvault.>", func(_ context.Context, m bus.Message) error { r.add(m); return nil })
	ctx := context.Background()
	for i := range 5000 {
		if err := b.Publish(ctx, ev(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			waitFor(t, "consumed", func() bool { return r.count() == i+1 })
		}
	}
	waitFor(t, "all", func() bool { return r.count() == 5000 })
	if n := b.Len(); n > 2048 {
		t.Fatalf("%d events kept", n)
	}
	for i := range 5000 {
		if r.seen[i] != fmt.Sprint(i) {
			t.Fatalf("event %d is %s", i, r.seen[i])
		}
	}
}

// TestJetStreamWatch: every watcher — one per bitvaultd replica, each on its own connection
// — gets every event matching its filter, from the moment Watch returns, without taking it
// from a durable consumer; a stopped watcher gets nothing more.
func TestJetStreamWatch(t *testing.T) {
	s := natstest.New(t)
	connect := func() *bus.JetStream {
		b, err := bus.ConnectJetStream(context.Background(), s.URL(), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		return b
	}
	pub := connect()
	type watcher struct {
		stop func()
		r    recorder
	}
	watchers := make([]*watcher, 2)
	for i := range watchers {
		w := &watcher{}
		stop, err := connect().Watch("bitvault.files.>", func(e bus.Event) { w.r.add(bus.Message{Event: e}) })
		if err != nil {
			t.Fatal(err)
		}
		w.stop, watchers[i] = stop, w
	}
	var durable recorder
	subscribe(t, pub, "durable", "bitvault.files.>", func(_ context.Context, m bus.Message) error { durable.add(m); return nil })

	ctx := context.Background()
	other := bus.Event{ID: "o1", Tenant: tenant, Type: "sharing.share.created", Payload: []byte(`{}`)}
	for _, e := range []bus.Event{ev("w1"), other, ev("w2")} {
		if err := pub.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for i, w := range watchers {
		waitFor(t, fmt.Sprintf("watcher %d", i), func() bool { return w.r.count() >= 2 })
	}
	waitFor(t, "the durable consumer", func() bool { return durable.count() >= 2 })
	watchers[0].stop()
	if err := pub.Publish(ctx, ev("w3")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "watcher 1", func() bool { return watchers[1].r.count() >= 3 })
	waitFor(t, "the durable consumer", func() bool { return durable.count() >= 3 })
	tests := []struct {
		name string
		r    *recorder
		want string
	}{
		{"stopped watcher", &watchers[0].r, "[w1 w2]"},
		{"watcher", &watchers[1].r, "[w1 w2 w3]"},
		{"durable consumer", &durable, "[w1 w2 w3]"},
	}
	for _, tt := range tests {
		tt.r.mu.Lock()
		got := fmt.Sprint(tt.r.seen)
		tt.r.mu.Unlock()
		if got != tt.want {
			t.Errorf("%s saw %s, want %s", tt.name, got, tt.want)
		}
		for _, id := range tt.r.seen {
			if id == "" {
				t.Errorf("%s: an event without its headers", tt.name)
			}
		}
	}
}
