package sync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	gosync "sync"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/consumers"
	"github.com/bitvault/bitvault/service/internal/events"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/health"
	"github.com/bitvault/bitvault/service/internal/platform/server"
	bvsync "github.com/bitvault/bitvault/service/internal/sync"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
)

// noRecheck keeps the journal re-reads out of a test: only a wake-up or the end of the wait
// ends a long poll.
const noRecheck = time.Hour

// pollEnv is the files API with the lite profile's events (relay, in-process bus, sync
// signal: the production wiring) and a sync service woken by its signal, through a spy
// counting the wake-ups.
type pollEnv struct {
	*apitest.Env
	signal *consumers.Signal
	spy    *spyNotifier
	parked *parkLog
	url    string // the server of the sync service woken by signal
}

func newPollEnv(t *testing.T) *pollEnv {
	t.Helper()
	e := apitest.New(t)
	stop, signal, err := events.StartServer(context.Background(), events.Config{Profile: events.ProfileLite, MaxLag: time.Minute}, e.Pool, health.New(0), e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	p := &pollEnv{Env: e, signal: signal, spy: &spyNotifier{n: signal, woken: map[string]int{}}, parked: &parkLog{n: map[string]int{}}}
	svc, err := bvsync.New(e.Pool, bvsync.Config{Notifier: p.spy, Recheck: noRecheck}, slog.New(p.parked))
	if err != nil {
		t.Fatal(err)
	}
	svc.Routes(e.Mux, e.Auth)
	p.url = e.URL
	return p
}

// spyNotifier passes the waits on to n and counts, per tenant, those that were woken (their
// channel closed by the time the long poll releases them).
type spyNotifier struct {
	n     bvsync.Notifier
	mu    gosync.Mutex
	woken map[string]int
}

func (s *spyNotifier) Wait(tenant string) (<-chan struct{}, func()) {
	ch, release := s.n.Wait(tenant)
	return ch, func() {
		select {
		case <-ch:
			s.mu.Lock()
			s.woken[tenant]++
			s.mu.Unlock()
		default:
		}
		release()
	}
}

func (s *spyNotifier) wakeups(tenant string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.woken[tenant]
}

// parkLog is a slog.Handler counting, per tenant, the "long poll waiting" records: long
// polls whose first read found nothing, now waiting.
type parkLog struct {
	mu gosync.Mutex
	n  map[string]int
}

func (h *parkLog) Enabled(context.Context, slog.Level) bool { return true }
func (h *parkLog) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *parkLog) WithGroup(string) slog.Handler            { return h }
func (h *parkLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "long poll waiting" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "tenant_id" {
			h.mu.Lock()
			h.n[a.Value.String()]++
			h.mu.Unlock()
		}
		return true
	})
	return nil
}

func (h *parkLog) count(tenant string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[tenant]
}

// waitParked waits until n long polls of tenant have done their first read and wait: a
// commit from then on can only reach them through a wake-up or a re-check.
func (h *parkLog) waitParked(t *testing.T, tenant string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.count(tenant) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d long polls waiting after their first read, want %d", h.count(tenant), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// serve starts a sync service with cfg on its own server and returns the server's URL; its
// long polls are counted in parked.
func (p *pollEnv) serve(t *testing.T, cfg bvsync.Config, parked *parkLog) string {
	t.Helper()
	svc, err := bvsync.New(p.Pool, cfg, slog.New(parked))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	svc.Routes(mux, p.Auth)
	srv := httptest.NewServer(server.Handler(p.Logger, mux))
	t.Cleanup(srv.Close)
	return srv.URL
}

// polled is a long poll's answer.
type polled struct {
	status  int
	changes bvsync.Changes
	code    string // the error code, if any
	header  http.Header
	closed  bool // the server closes the connection
	elapsed time.Duration
	err     error
}

// poll sends GET /v1/sync/changes?cursor=&wait= to base in the background.
func poll(ctx context.Context, base string, u apitest.User, cursor int64, wait string) <-chan polled {
	out := make(chan polled, 1)
	go func() {
		var res polled
		start := time.Now()
		defer func() { res.elapsed = time.Since(start); out <- res }()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/sync/changes?cursor=%d&wait=%s", base, cursor, wait), nil)
		if err != nil {
			res.err = err
			return
		}
		req.Header.Set("Authorization", "Bearer "+u.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res.err = err
			return
		}
		defer resp.Body.Close()
		res.status, res.header, res.closed = resp.StatusCode, resp.Header, resp.Close
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			var e apierror.Error
			_ = json.Unmarshal(b, &e)
			res.code = e.Code
			return
		}
		res.err = json.Unmarshal(b, &res.changes)
	}()
	return out
}

// waiting waits until n long polls of tenant wait on the signal.
func (p *pollEnv) waiting(t *testing.T, tenant string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for p.signal.Waiting(tenant) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d long polls waiting, want %d", p.signal.Waiting(tenant), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *pollEnv) latest(t *testing.T, u apitest.User) int64 {
	t.Helper()
	var pos bvsync.Position
	p.Want(p.Do("GET", "/v1/sync/cursor", u.Token, nil), 200, "").Decode(t, &pos)
	return pos.Cursor
}

// TestLongPoll: a long poll with nothing after its cursor waits; the signal of a commit in
// its tenant (relay → in-process bus → signal) ends it with the change, long before the
// wait (there is no re-check); another tenant's commit does not wake it, and the wait ends
// with the empty page; a client that goes away ends it.
func TestLongPoll(t *testing.T) {
	e := newPollEnv(t)
	owner, member, _ := e.Tenant("acme")
	globex, _, _ := e.Tenant("globex")
	e.Folder(owner, "/docs")
	tenant := owner.P.TenantID

	t.Run("woken by its tenant's commit", func(t *testing.T) {
		cursor := e.latest(t, owner)
		parked, woken := e.parked.count(tenant), e.spy.wakeups(tenant)
		done := poll(context.Background(), e.url, owner, cursor, "30s")
		// Its first read is done: the commit cannot be in it.
		e.parked.waitParked(t, tenant, parked+1)
		e.Upload(member, "/docs/a.txt", []byte("alpha"))
		res := <-done
		if res.err != nil || res.status != http.StatusOK || len(res.changes.Changes) != 1 || res.changes.Changes[0].Name != "a.txt" || res.changes.NextCursor != cursor+1 {
			t.Fatalf("long poll = %d %v %+v, want the commit", res.status, res.err, res.changes)
		}
		if res.elapsed >= 20*time.Second {
			t.Errorf("answered after %s: the signal did not wake it", res.elapsed)
		}
		if n := e.spy.wakeups(tenant) - woken; n != 1 {
			t.Errorf("%d wake-ups, want 1: the answer came from something else than the signal", n)
		}
	})

	t.Run("not woken by another tenant's commit", func(t *testing.T) {
		cursor := e.latest(t, owner)
		parked, woken := e.parked.count(tenant), e.spy.wakeups(tenant)
		done := poll(context.Background(), e.url, owner, cursor, "1500ms")
		e.parked.waitParked(t, tenant, parked+1)
		// globex's own wait closes once its commit's event has gone through the signal.
		relayed, release := e.signal.Wait(globex.P.TenantID)
		defer release()
		e.Upload(globex, "/b.txt", []byte("bravo"))
		select {
		case <-relayed:
		case <-time.After(10 * time.Second):
			t.Fatal("globex's commit never reached the signal")
		}
		if n := e.spy.wakeups(tenant) - woken; n != 0 {
			t.Errorf("acme's long poll woken %d times by globex's commit", n)
		}
		res := <-done
		if res.err != nil || res.status != http.StatusOK || len(res.changes.Changes) != 0 || res.changes.NextCursor != cursor {
			t.Fatalf("long poll = %d %v %+v, want the empty page", res.status, res.err, res.changes)
		}
		if res.elapsed < 1500*time.Millisecond {
			t.Errorf("answered after %s, before its wait of 1.5s", res.elapsed)
		}
		if n := e.spy.wakeups(tenant) - woken; n != 0 {
			t.Errorf("acme's long poll woken %d times by globex's commit", n)
		}
	})

	t.Run("changes already there", func(t *testing.T) {
		res := <-poll(context.Background(), e.url, owner, 0, "60s")
		if res.status != http.StatusOK || len(res.changes.Changes) == 0 || res.elapsed >= 60*time.Second {
			t.Fatalf("long poll from 0 = %d %+v after %s, want the changes at once", res.status, res.changes, res.elapsed)
		}
	})

	t.Run("client goes away", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		done := poll(ctx, e.url, owner, e.latest(t, owner), "60s")
		e.waiting(t, owner.P.TenantID, 1)
		cancel()
		if res := <-done; res.err == nil {
			t.Fatalf("a cancelled long poll answered %d", res.status)
		}
		// The handler returned: its wait is released.
		e.waiting(t, owner.P.TenantID, 0)
	})
}

// TestLongPollWait: the wait parameter is a duration or a number of seconds, up to a
// minute; anything else is 400 invalid_argument.
func TestLongPollWait(t *testing.T) {
	e := newPollEnv(t)
	owner, _, _ := e.Tenant("acme")
	tests := []struct {
		wait   string
		status int
	}{
		{"0", http.StatusOK},
		{"0s", http.StatusOK},
		{"10ms", http.StatusOK},
		{"1", http.StatusOK},
		{"-1s", http.StatusBadRequest},
		{"61s", http.StatusBadRequest},
		{"2m", http.StatusBadRequest},
		{"61", http.StatusBadRequest},
		{"99999999", http.StatusBadRequest},
		{"soon", http.StatusBadRequest},
		{"1.5", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.wait, func(t *testing.T) {
			res := <-poll(context.Background(), e.url, owner, 0, tt.wait)
			if res.status != tt.status || (tt.status == http.StatusBadRequest && res.code != "invalid_argument") {
				t.Errorf("wait=%s: %d %s, want %d", tt.wait, res.status, res.code, tt.status)
			}
		})
	}
}

// TestLongPollWithoutSignal: the journal is the truth. Without any wake-up a long poll still
// sees a commit at its next re-check; a draining server answers at once, closing the
// connection.
func TestLongPollWithoutSignal(t *testing.T) {
	e := newPollEnv(t)
	owner, _, _ := e.Tenant("acme")

	t.Run("re-check", func(t *testing.T) {
		const recheck = 300 * time.Millisecond
		parked := &parkLog{n: map[string]int{}}
		url := e.serve(t, bvsync.Config{Recheck: recheck}, parked)
		cursor := e.latest(t, owner)
		done := poll(context.Background(), url, owner, cursor, "30s")
		// The commit after the first read: only a re-check can see it.
		parked.waitParked(t, owner.P.TenantID, 1)
		e.Folder(owner, "/late")
		res := <-done
		if res.status != http.StatusOK || len(res.changes.Changes) != 1 || res.elapsed >= 30*time.Second {
			t.Fatalf("long poll = %d %+v after %s, want the change within the wait", res.status, res.changes, res.elapsed)
		}
		if res.elapsed < recheck {
			t.Errorf("answered after %s, before the first re-check (%s): without a signal, only a re-check sees the commit", res.elapsed, recheck)
		}
	})

	t.Run("draining", func(t *testing.T) {
		stop := make(chan struct{})
		close(stop)
		url := e.serve(t, bvsync.Config{Notifier: e.signal, Recheck: noRecheck, Stop: stop}, &parkLog{n: map[string]int{}})
		res := <-poll(context.Background(), url, owner, e.latest(t, owner), "60s")
		if res.status != http.StatusOK || len(res.changes.Changes) != 0 || res.elapsed >= 60*time.Second {
			t.Fatalf("long poll on a draining server = %d %+v after %s, want the empty page at once", res.status, res.changes, res.elapsed)
		}
		if !res.closed && res.header.Get("Connection") != "close" {
			t.Error("the connection is not closed: the next poll would come back to the draining server")
		}
	})
}
