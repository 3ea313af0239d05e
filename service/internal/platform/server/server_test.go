package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/platform/health"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestServeDrainThenShutdown: when the context ends, /readyz flips to 503 at once while the
// server keeps serving for the drain delay, then Serve returns nil after a clean shutdown
// and the port is closed.
func TestServeDrainThenShutdown(t *testing.T) {
	const drain = 400 * time.Millisecond
	checks := health.New(0)
	mux := http.NewServeMux()
	mux.Handle(health.PathLiveness, checks.Liveness())
	mux.Handle(health.PathReadiness, checks.Readiness())

	ln := listen(t)
	base := "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, Options{Handler: mux, Drainer: checks, DrainDelay: drain, ShutdownTimeout: 2 * time.Second})
	}()

	if code, body := get(t, base+health.PathReadiness); code != http.StatusOK {
		t.Fatalf("/readyz before drain = %d %s", code, body)
	}
	start := time.Now()
	cancel()
	// Draining is set synchronously by Serve after ctx ends; poll briefly for it.
	for !checks.Draining() {
		if time.Since(start) > drain/2 {
			t.Fatal("not draining shortly after the context ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
	code, body := get(t, base+health.PathReadiness)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"status":"draining"`) {
		t.Errorf("/readyz while draining = %d %s, want 503 draining", code, body)
	}
	if code, _ := get(t, base+health.PathLiveness); code != http.StatusOK {
		t.Errorf("/healthz while draining = %d, want 200", code)
	}

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if took := time.Since(start); took < drain {
		t.Errorf("Serve returned %s after cancel, before the %s drain delay", took, drain)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Error("listener still accepts connections after shutdown")
	}
}

// TestServeOnShutdown: OnShutdown is called once the drain delay is over, not when it
// starts: a long-running request that ends on it (a long poll) goes on while draining, then
// ends, and the shutdown is clean.
func TestServeOnShutdown(t *testing.T) {
	const drain = 400 * time.Millisecond
	stop := make(chan struct{})
	var stoppedAt time.Time
	mux := http.NewServeMux()
	mux.HandleFunc("/poll", func(w http.ResponseWriter, r *http.Request) {
		<-stop
		_, _ = io.WriteString(w, "stopped")
	})
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, ln, Options{Handler: mux, DrainDelay: drain, ShutdownTimeout: 2 * time.Second,
			OnShutdown: func() { stoppedAt = time.Now(); close(stop) }})
	}()
	answered := make(chan time.Time, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/poll")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		answered <- time.Now()
	}()
	time.Sleep(50 * time.Millisecond) // the request is in flight
	start := time.Now()
	cancel()
	select {
	case <-answered:
		t.Fatal("the long request ended when draining started, not after the drain delay")
	case <-time.After(drain / 2):
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v, want nil: OnShutdown ends the long request before the shutdown waits for it", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	at := <-answered
	if stoppedAt.Sub(start) < drain || at.Before(stoppedAt) {
		t.Errorf("OnShutdown called %s after cancel, the request answered %s after: want both after the %s drain delay",
			stoppedAt.Sub(start), at.Sub(start), drain)
	}
}

func TestServeShutdown(t *testing.T) {
	tests := []struct {
		name      string
		handler   time.Duration // how long the in-flight request takes
		timeout   time.Duration // shutdown timeout
		wantErr   string
		wantReply bool
	}{
		{name: "in-flight request finishes", handler: 300 * time.Millisecond, timeout: 3 * time.Second, wantReply: true},
		{name: "in-flight request outlives timeout", handler: 3 * time.Second, timeout: 200 * time.Millisecond, wantErr: "outlived"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{})
			mux := http.NewServeMux()
			mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
				close(started)
				select {
				case <-time.After(tt.handler):
					_, _ = io.WriteString(w, "done")
				case <-r.Context().Done():
				}
			})
			ln := listen(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- Serve(ctx, ln, Options{Handler: mux, ShutdownTimeout: tt.timeout}) }()

			reply := make(chan string, 1)
			go func() {
				resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
				if err != nil {
					reply <- "error: " + err.Error()
					return
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				reply <- string(b)
			}()
			<-started
			cancel()

			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return")
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Serve = %v, want nil", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Serve = %v, want an error containing %q", err, tt.wantErr)
			}
			if got := <-reply; (got == "done") != tt.wantReply {
				t.Errorf("in-flight reply = %q, want completed = %v", got, tt.wantReply)
			}
		})
	}
}

func TestListenAndServeBadAddress(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	err := ListenAndServe(context.Background(), ln.Addr().String(), Options{Handler: http.NotFoundHandler(), ShutdownTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "listen "+ln.Addr().String()) {
		t.Fatalf("ListenAndServe on a used port = %v, want a listen error naming the address", err)
	}
}

func TestHandlerRecoversPanics(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
	var logs strings.Builder
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	rec := httptest.NewRecorder()
	Handler(logger, mux).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/boom", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status = %d, want 500", rec.Code)
	}
	var body struct {
		Code      string `json:"code"`
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Code != "internal" || body.RequestID == "" || body.RequestID != rec.Header().Get("X-Request-Id") {
		t.Errorf("body = %+v, header X-Request-Id = %q", body, rec.Header().Get("X-Request-Id"))
	}
	if !strings.Contains(logs.String(), "handler panic") {
		t.Errorf("panic not logged: %s", logs.String())
	}
}
