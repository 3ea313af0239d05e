package log

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParseTraceparent(t *testing.T) {
	tests := []struct {
		in     string
		want   string
		wantOK bool
	}{
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "4bf92f3577b34da6a3ce929d0e0e4736", true},
		{" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00 ", "4bf92f3577b34da6a3ce929d0e0e4736", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", "4bf92f3577b34da6a3ce929d0e0e4736", true},
		{"", "", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", "", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", "", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01", "", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", "", false},
	}
	for _, tt := range tests {
		got, ok := ParseTraceparent(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseTraceparent(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

func TestMiddleware(t *testing.T) {
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	tests := []struct {
		name        string
		path        string
		header      map[string]string
		wantID      string // "" means a generated 32-hex id
		wantTraceID string
		wantLevel   string
	}{
		{name: "generated id", path: "/v1/x", wantLevel: "INFO"},
		{name: "client id kept", path: "/v1/x", header: map[string]string{"X-Request-Id": "req-42.a:b_c"}, wantID: "req-42.a:b_c", wantLevel: "INFO"},
		{name: "unsafe client id replaced", path: "/v1/x", header: map[string]string{"X-Request-Id": "bad id\"{}"}, wantLevel: "INFO"},
		{name: "overlong client id replaced", path: "/v1/x", header: map[string]string{"X-Request-Id": strings.Repeat("a", 129)}, wantLevel: "INFO"},
		{name: "trace id from traceparent", path: "/v1/x", header: map[string]string{"traceparent": traceparent}, wantTraceID: "4bf92f3577b34da6a3ce929d0e0e4736", wantLevel: "INFO"},
		{name: "invalid traceparent ignored", path: "/v1/x", header: map[string]string{"traceparent": "garbage"}, wantLevel: "INFO"},
		{name: "quiet path at debug", path: "/healthz", wantLevel: "DEBUG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			logger := New(&buf, slog.LevelDebug)
			var inID, inTrace string
			h := Middleware(logger, func(r *http.Request) bool { return r.URL.Path == "/healthz" },
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					inID, inTrace = RequestID(r.Context()), TraceID(r.Context())
					w.WriteHeader(http.StatusTeapot)
					_, _ = w.Write([]byte("tea"))
				}))
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)

			gotID := rec.Header().Get(HeaderRequestID)
			if tt.wantID != "" && gotID != tt.wantID {
				t.Errorf("response X-Request-Id = %q, want %q", gotID, tt.wantID)
			}
			if tt.wantID == "" && (len(gotID) != 32 || !isLowerHex(gotID, 32)) {
				t.Errorf("response X-Request-Id = %q, want 32 hex digits", gotID)
			}
			if inID != gotID || inTrace != tt.wantTraceID {
				t.Errorf("context ids = %q, %q; want %q, %q", inID, inTrace, gotID, tt.wantTraceID)
			}

			var line map[string]any
			if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
				t.Fatalf("access log %q is not one JSON object: %v", buf.String(), err)
			}
			want := map[string]any{"level": tt.wantLevel, "msg": "http request", "path": tt.path, "status": float64(http.StatusTeapot), "bytes": float64(3), "request_id": gotID}
			for k, v := range want {
				if line[k] != v {
					t.Errorf("log %s = %v, want %v", k, line[k], v)
				}
			}
			if tid, has := line["trace_id"]; (tt.wantTraceID != "") != has || (has && tid != tt.wantTraceID) {
				t.Errorf("log trace_id = %v, want %q", tid, tt.wantTraceID)
			}
			if d, _ := line["duration"].(string); d == "" {
				t.Errorf("log duration = %v, want a text duration", line["duration"])
			}
		})
	}
}
