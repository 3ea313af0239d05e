package sync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
// signal: the production wiring) and a sync service woken by its signal.
type pollEnv struct {
	*apitest.Env
	signal *consumers.Signal
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
	svc, err := bvsync.New(e.Pool, bvsync.Config{Notifier: signal, Recheck: noRecheck}, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	svc.Routes(e.Mux, e.Auth)
	return &pollEnv{Env: e, signal: signal, url: e.URL}
}

// serve starts a sync service with cfg on its own server and returns the server's URL.
func (p *pollEnv) serve(t *testing.T, cfg bvsync.Config) string {
	t.Helper()
	svc, err := bvsync.New(p.Pool, cfg, p.Logger)
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
// wait; another tenant's commit does not, and the wait ends with the empty page; a client
// that goes away ends it.
func TestLongPoll(t *testing.T) {
	e := newPollEnv(t)
	owner, member, _ := e.Tenant("acme")
	globex, _, _ := e.Tenant("globex")
	e.Folder(owner, "/docs")

	t.Run("woken by its tenant's commit", func(t *testing.T) {
		cursor := e.latest(t, owner)
		done := poll(context.Background(), e.url, owner, cursor, "30s")
		e.waiting(t, owner.P.TenantID, 1)
		e.Upload(member, "/docs/a.txt", []byte("alpha"))
		res := <-done
		if res.err != nil || res.status != http.StatusOK || len(res.changes.Changes) != 1 || res.changes.Changes[0].Name != "a.txt" || res.changes.NextCursor != cursor+1 {
			t.Fatalf("long poll = %d %v %+v, want the commit", res.status, res.err, res.changes)
		}
		if res.elapsed >= 30*time.Second {
			t.Errorf("answered after %s: the wait ran out, the signal did not wake it", res.elapsed)
		}
	})

	t.Run("not woken by another tenant's commit", func(t *testing.T) {
		cursor := e.latest(t, owner)
		done := poll(context.Background(), e.url, owner, cursor, "1500ms")
		e.waiting(t, owner.P.TenantID, 1)
		e.Upload(globex, "/b.txt", []byte("bravo"))
		res := <-done
		if res.err != nil || res.status != http.StatusOK || len(res.changes.Changes) != 0 || res.changes.NextCursor != cursor {
			t.Fatalf("long poll = %d %v %+v, want the empty page", res.status, res.err, res.changes)
		}
		if res.elapsed < 1500*time.Millisecond {
			t.Errorf("answered after %s, before its wait of 1.5s", res.elapsed)
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
		url := e.serve(t, bvsync.Config{Recheck: 50 * time.Millisecond})
		cursor := e.latest(t, owner)
		done := poll(context.Background(), url, owner, cursor, "30s")
		e.Folder(owner, "/late")
		res := <-done
		if res.status != http.StatusOK || len(res.changes.Changes) != 1 || res.elapsed >= 30*time.Second {
			t.Fatalf("long poll = %d %+v after %s, want the change within the wait", res.status, res.changes, res.elapsed)
		}
	})

	t.Run("draining", func(t *testing.T) {
		stop := make(chan struct{})
		close(stop)
		url := e.serve(t, bvsync.Config{Notifier: e.signal, Recheck: noRecheck, Stop: stop})
		res := <-poll(context.Background(), url, owner, e.latest(t, owner), "60s")
		if res.status != http.StatusOK || len(res.changes.Changes) != 0 || res.elapsed >= 60*time.Second {
			t.Fatalf("long poll on a draining server = %d %+v after %s, want the empty page at once", res.status, res.changes, res.elapsed)
		}
		if !res.closed && res.header.Get("Connection") != "close" {
			t.Error("the connection is not closed: the next poll would come back to the draining server")
		}
	})
}
