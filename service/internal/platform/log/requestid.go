package log

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// HeaderRequestID is the header that carries the request id in both directions.
const HeaderRequestID = "X-Request-Id"

// headerTraceparent is the W3C Trace Context header.
const headerTraceparent = "traceparent"

// maxRequestIDLen bounds a request id accepted from a client.
const maxRequestIDLen = 128

type ctxKey int

const (
	requestIDKey ctxKey = iota
	traceIDKey
)

// RequestID returns the request id stored in ctx by Middleware, or "".
func RequestID(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey).(string)
	return s
}

// TraceID returns the W3C trace id stored in ctx by Middleware, or "".
func TraceID(ctx context.Context) string {
	s, _ := ctx.Value(traceIDKey).(string)
	return s
}

// WithRequestID returns a copy of ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// WithTraceID returns a copy of ctx carrying the trace id.
func WithTraceID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, traceIDKey, id)
}

// Middleware gives every request a request id (the client's X-Request-Id when it is
// well-formed, a random one otherwise), echoes it in the response's X-Request-Id, takes the
// trace id from a valid traceparent header, stores both in the request context and writes
// one access-log line per request (debug level for quiet paths such as probes).
func Middleware(logger *slog.Logger, quiet func(*http.Request) bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = newRequestID()
		}
		ctx := WithRequestID(r.Context(), id)
		if tid, ok := ParseTraceparent(r.Header.Get(headerTraceparent)); ok {
			ctx = WithTraceID(ctx, tid)
		}
		w.Header().Set(HeaderRequestID, id)
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		r = r.WithContext(ctx)
		next.ServeHTTP(rec, r)

		level := slog.LevelInfo
		if quiet != nil && quiet(r) && rec.status < http.StatusInternalServerError {
			level = slog.LevelDebug
		}
		logger.LogAttrs(ctx, level, "http request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Int64("bytes", rec.bytes),
			slog.Duration("duration", time.Since(start)),
			slog.String("remote", r.RemoteAddr),
		)
	})
}

// ParseTraceparent returns the trace id of a W3C traceparent header value
// ("00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>"); ok is false when the value is
// malformed or the trace id is all zeros.
func ParseTraceparent(v string) (traceID string, ok bool) {
	parts := strings.Split(strings.TrimSpace(v), "-")
	if len(parts) < 4 {
		return "", false
	}
	version, tid, pid, flags := parts[0], parts[1], parts[2], parts[3]
	if !isLowerHex(version, 2) || version == "ff" || !isLowerHex(tid, 32) || !isLowerHex(pid, 16) || !isLowerHex(flags, 2) {
		return "", false
	}
	// Version 00 has exactly four fields; later versions may append more.
	if version == "00" && len(parts) != 4 {
		return "", false
	}
	if strings.Trim(tid, "0") == "" || strings.Trim(pid, "0") == "" {
		return "", false
	}
	return tid, true
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validRequestID accepts ids made of letters, digits and ".-_:" up to maxRequestIDLen, so a
// client cannot inject arbitrary text into logs or response headers.
func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead).
	return hex.EncodeToString(b[:])
}

// statusRecorder remembers the status code and body size written by a handler.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	bytes       int64
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status = code
		r.wroteHeader = true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer (Flush, deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
