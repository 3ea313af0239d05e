package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/platform/processtest"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestIdleLoop(t *testing.T) {
	tests := []struct {
		name     string
		level    slog.Level
		wantIdle bool
	}{
		{"debug logs idle", slog.LevelDebug, true},
		{"info hides idle", slog.LevelInfo, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf syncBuffer
			logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: tt.level}))
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			if err := idleLoop(ctx, logger, 10*time.Millisecond); err != nil {
				t.Fatalf("idleLoop = %v, want nil when the context ends", err)
			}
			if got := strings.Contains(buf.String(), `"msg":"idle"`); got != tt.wantIdle {
				t.Errorf("logged idle = %v, want %v; log:\n%s", got, tt.wantIdle, buf.String())
			}
		})
	}
}

// TestBinarySIGTERM runs the built worker and checks it drains and exits 0 on SIGTERM.
func TestBinarySIGTERM(t *testing.T) {
	bin := processtest.Build(t, ".")
	p := processtest.Start(t, bin,
		"BITVAULT_HTTP_ADDR=127.0.0.1:0",
		"BITVAULT_LOG_LEVEL=debug",
		"BITVAULT_DRAIN_DELAY=300ms",
		"BITVAULT_SHUTDOWN_TIMEOUT=5s",
		"BITVAULT_DATA_DIR="+t.TempDir(),
		"PATH="+os.Getenv("PATH"),
	)
	base := "http://" + p.Addr(10*time.Second)
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := processtest.Get(t, base+path); code != http.StatusOK {
			t.Fatalf("%s = %d %s, want 200", path, code, body)
		}
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(5 * time.Second); code != 0 {
		t.Fatalf("exit code = %d, want 0; logs: %v", code, p.Lines())
	}
	p.CheckOnlyJSON()
	for _, msg := range []string{"main loop stopped", "draining", "exited cleanly"} {
		if !p.HasMessage(msg) {
			t.Errorf("no %q log line", msg)
		}
	}
}
