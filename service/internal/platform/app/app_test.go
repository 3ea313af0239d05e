package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for concurrent writes.
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

func TestRun(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		env      map[string]string
		run      func(ctx context.Context, logger *slog.Logger) error
		init     func(ctx context.Context, env Env) (Module, error)
		cancel   time.Duration // cancel the context after this long (0: never)
		wantCode int
		wantMsg  string // a log message that must appear
	}{
		{
			name:     "clean stop",
			env:      map[string]string{"BITVAULT_DATA_DIR": dir},
			cancel:   100 * time.Millisecond,
			wantCode: ExitOK,
			wantMsg:  "exited cleanly",
		},
		{
			name:     "invalid configuration",
			env:      map[string]string{"BITVAULT_LOG_LEVEL": "chatty"},
			wantCode: ExitConfig,
			wantMsg:  "invalid configuration",
		},
		{
			name:     "data dir not writable",
			env:      map[string]string{"BITVAULT_DATA_DIR": file},
			wantCode: ExitError,
			wantMsg:  "writable dir check failed",
		},
		{
			name:     "main loop fails",
			env:      map[string]string{"BITVAULT_DATA_DIR": dir},
			run:      func(context.Context, *slog.Logger) error { return errors.New("consumer lost") },
			wantCode: ExitError,
			wantMsg:  "exiting with error",
		},
		{
			name:     "main loop returns early",
			env:      map[string]string{"BITVAULT_DATA_DIR": dir},
			run:      func(context.Context, *slog.Logger) error { return nil },
			wantCode: ExitError,
			wantMsg:  "exiting with error",
		},
		{
			name: "init config error",
			env:  map[string]string{"BITVAULT_DATA_DIR": dir},
			init: func(context.Context, Env) (Module, error) {
				return Module{}, ConfigError(errors.New("BITVAULT_X is required"))
			},
			wantCode: ExitConfig,
			wantMsg:  "invalid configuration",
		},
		{
			name:     "init fails",
			env:      map[string]string{"BITVAULT_DATA_DIR": dir},
			init:     func(context.Context, Env) (Module, error) { return Module{}, errors.New("database unreachable") },
			wantCode: ExitError,
			wantMsg:  "start failed",
		},
		{
			name: "init module closed after stop",
			env:  map[string]string{"BITVAULT_DATA_DIR": dir, "BITVAULT_X": "y"},
			init: func(_ context.Context, env Env) (Module, error) {
				if v, _ := env.Lookup("BITVAULT_X"); v != "y" {
					return Module{}, errors.New("Lookup does not reach the environment")
				}
				return Module{
					Routes: func(mux *http.ServeMux) { mux.HandleFunc("/x", func(http.ResponseWriter, *http.Request) {}) },
					Close:  func() { env.Logger.Info("module closed") },
				}, nil
			},
			cancel:   100 * time.Millisecond,
			wantCode: ExitOK,
			wantMsg:  "module closed",
		},
		{
			name: "main loop stops on cancel",
			env:  map[string]string{"BITVAULT_DATA_DIR": dir},
			run: func(ctx context.Context, _ *slog.Logger) error {
				<-ctx.Done()
				return nil
			},
			cancel:   100 * time.Millisecond,
			wantCode: ExitOK,
			wantMsg:  "exited cleanly",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"BITVAULT_HTTP_ADDR": "127.0.0.1:0", "BITVAULT_DRAIN_DELAY": "0s", "BITVAULT_SHUTDOWN_TIMEOUT": "2s"}
			for k, v := range tt.env {
				env[k] = v
			}
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, cancel)
			}
			var out syncBuffer
			code := Run(ctx, Spec{Name: "test", Version: "v", Commit: "c", Run: tt.run, Init: tt.init}, &out, lookup)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\n%s", code, tt.wantCode, out.String())
			}
			found := false
			for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(line), &m); err != nil {
					t.Errorf("output line is not JSON: %q", line)
					continue
				}
				if m["service"] != "test" {
					t.Errorf("log line without service=test: %q", line)
				}
				found = found || m["msg"] == tt.wantMsg
			}
			if !found {
				t.Errorf("no %q log line in:\n%s", tt.wantMsg, out.String())
			}
		})
	}
}
