package apierror

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	bvlog "github.com/bitvault/bitvault/service/internal/platform/log"
)

func TestErrors(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	tests := []struct {
		name      string
		handler   http.Handler
		method    string
		wantCode  int
		wantErr   string // "" means no error body
		wantAllow string
	}{
		{name: "not found", handler: http.HandlerFunc(NotFound), method: http.MethodGet, wantCode: http.StatusNotFound, wantErr: "not_found"},
		{name: "allowed GET", handler: Methods(ok, http.MethodGet), method: http.MethodGet, wantCode: http.StatusNoContent},
		{name: "HEAD allowed with GET", handler: Methods(ok, http.MethodGet), method: http.MethodHead, wantCode: http.StatusNoContent},
		{name: "POST not allowed", handler: Methods(ok, http.MethodGet), method: http.MethodPost, wantCode: http.StatusMethodNotAllowed, wantErr: "method_not_allowed", wantAllow: "GET, HEAD"},
		{name: "GET not allowed on PUT", handler: Methods(ok, http.MethodPut), method: http.MethodGet, wantCode: http.StatusMethodNotAllowed, wantErr: "method_not_allowed", wantAllow: "PUT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/v1/thing", nil)
			req = req.WithContext(bvlog.WithRequestID(req.Context(), "rid-1"))
			rec := httptest.NewRecorder()
			tt.handler.ServeHTTP(rec, req)
			if rec.Code != tt.wantCode {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantCode)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
			if tt.wantErr == "" {
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var e Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if e.Code != tt.wantErr || e.RequestID != "rid-1" || e.Message == "" {
				t.Errorf("body = %+v, want code %q, request_id rid-1 and a message", e, tt.wantErr)
			}
		})
	}
}

func TestStatusAndWriteError(t *testing.T) {
	for code, want := range map[string]int{
		CodeInvalidArgument: 400, CodeUnauthenticated: 401, CodeTokenExpired: 401, CodePermissionDenied: 403,
		CodeInsufficientScope: 403, CodeNotFound: 404, CodeMethodNotAllowed: 405, CodeAlreadyExists: 409,
		CodeRequestTooLarge: 413, CodeRateLimited: 429, CodeInternal: 500, CodeUnavailable: 503, "no_such_code": 500,
		CodeConflict: 409, CodeVersionConflict: 409, CodeUploadIncomplete: 409, CodeSizeMismatch: 422, CodeHashMismatch: 422,
		CodeQuotaExceeded: 413, CodeFileTooLarge: 413,
	} {
		if got := Status(code); got != want {
			t.Errorf("Status(%q) = %d, want %d", code, got, want)
		}
	}
	tests := []struct {
		name     string
		err      error
		wantCode int
		wantErr  string
		wantMsg  string
	}{
		{"coded", New(CodeAlreadyExists, "slug taken"), 409, CodeAlreadyExists, "slug taken"},
		{"wrapped coded", fmt.Errorf("create: %w", New(CodeNotFound, "no token")), 404, CodeNotFound, "no token"},
		{"plain error hides details", errors.New("pq: connection refused to 10.0.0.1"), 500, CodeInternal, "internal error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/v1/x", nil)
			req = req.WithContext(bvlog.WithRequestID(req.Context(), "rid-2"))
			rec := httptest.NewRecorder()
			var logs strings.Builder
			WriteError(rec, req, slog.New(slog.NewTextHandler(&logs, nil)), tt.err)
			var e Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tt.wantCode || e.Code != tt.wantErr || e.Message != tt.wantMsg || e.RequestID != "rid-2" {
				t.Errorf("got %d %+v, want %d %s %q", rec.Code, e, tt.wantCode, tt.wantErr, tt.wantMsg)
			}
			if tt.wantErr == CodeInternal && !strings.Contains(logs.String(), "connection refused") {
				t.Errorf("internal error not logged: %q", logs.String())
			}
		})
	}
}

// retryErr is a Retryer wrapping a coded error, as a rate limiter's rejection is.
type retryErr struct {
	wait time.Duration
	err  error
}

func (e retryErr) Error() string             { return e.err.Error() }
func (e retryErr) Unwrap() error             { return e.err }
func (e retryErr) RetryAfter() time.Duration { return e.wait }

// TestWriteErrorRetryAfter: a Retryer, wrapped or not, gets Retry-After in whole seconds
// rounded up (at least 1); other errors get none.
func TestWriteErrorRetryAfter(t *testing.T) {
	limited := New(CodeRateLimited, "slow down")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"whole seconds", retryErr{90 * time.Second, limited}, "90"},
		{"rounded up", retryErr{1500 * time.Millisecond, limited}, "2"},
		{"at least one", retryErr{time.Millisecond, limited}, "1"},
		{"wrapped", fmt.Errorf("login: %w", retryErr{time.Minute, limited}), "60"},
		{"not a retryer", limited, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			WriteError(rec, httptest.NewRequest(http.MethodPost, "/v1/x", nil), nil, tt.err)
			if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != tt.want {
				t.Errorf("status %d, Retry-After %q; want 429, %q", rec.Code, rec.Header().Get("Retry-After"), tt.want)
			}
		})
	}
}
