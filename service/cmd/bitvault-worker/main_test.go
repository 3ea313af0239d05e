package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/platform/app"
	"github.com/bitvault/bitvault/service/internal/platform/config"
	"github.com/bitvault/bitvault/service/internal/platform/health"
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

// TestStandardRefusesOwnFSStore: in the standard profile, the filesystem object store is a
// configuration error (the worker's would be another, empty store than bitvaultd's) unless
// BITVAULT_STORAGE_SHARED=true declares its directory shared; s3 is fine.
func TestStandardRefusesOwnFSStore(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("k"), 32))
	base := []string{"BITVAULT_PROFILE=standard", "BITVAULT_NATS_URL=nats://127.0.0.1:1",
		"BITVAULT_DATABASE_URL=postgres://bitvault_app@127.0.0.1:1/bitvault", "BITVAULT_TOKEN_KEY=" + key}
	fs := []string{"BITVAULT_STORAGE=fs", "BITVAULT_PUBLIC_URL=http://localhost:8080"}
	tests := []struct {
		name    string
		env     []string
		wantErr string // "": the storage settings pass (the start fails later, without a database)
	}{
		{"fs refused", fs, "BITVAULT_STORAGE_SHARED=true"},
		{"fs, not shared", append([]string{"BITVAULT_STORAGE_SHARED=false"}, fs...), "BITVAULT_STORAGE_SHARED=true"},
		{"fs, bad flag", append([]string{"BITVAULT_STORAGE_SHARED=maybe"}, fs...), "BITVAULT_STORAGE_SHARED"},
		{"fs, shared", append([]string{"BITVAULT_STORAGE_SHARED=true", "BITVAULT_STORAGE_DIR=" + t.TempDir()}, fs...), ""},
		{"s3", []string{"BITVAULT_STORAGE=s3", "BITVAULT_S3_BUCKET=b", "BITVAULT_S3_ACCESS_KEY_ID=a", "BITVAULT_S3_SECRET_ACCESS_KEY=s"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := map[string]string{"BITVAULT_DATABASE_WAIT": "0s"}
			for _, kv := range append(append([]string{}, base...), tt.env...) {
				k, v, _ := strings.Cut(kv, "=")
				vars[k] = v
			}
			lookup := func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			env := app.Env{Config: config.Config{DataDir: t.TempDir()}, Lookup: lookup, Logger: slog.New(slog.DiscardHandler), Checks: health.New(0)}
			var run func(context.Context) error
			mod, err := initConsumers(ctx, env, &run)
			if err == nil && mod.Close != nil {
				mod.Close()
			}
			isConfig := errors.Is(err, app.ErrConfig)
			switch {
			case tt.wantErr != "" && (!isConfig || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("initConsumers = %v, want a configuration error naming %s", err, tt.wantErr)
			case tt.wantErr == "" && isConfig:
				t.Fatalf("initConsumers = %v, want the storage settings accepted", err)
			}
		})
	}
}
