package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/bitvault/bitvault/service/api"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/platform/app"
	"github.com/bitvault/bitvault/service/internal/platform/config"
	"github.com/bitvault/bitvault/service/internal/platform/health"
	"github.com/bitvault/bitvault/service/internal/platform/server"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
	"github.com/bitvault/bitvault/service/internal/testsupport/s3test"
)

// stack is bitvaultd's whole handler stack, in process: the mux built the way app.Run builds
// it from spec() and initModules (the production wiring), behind the production middleware,
// served by httptest, over a fresh database and a fresh object store.
type stack struct {
	URL string
	Mux *http.ServeMux
	Env map[string]string
	// SuperDSN bypasses row-level security: for arranging and inspecting rows only.
	SuperDSN string
	Stop     func()
	// Logs counts the server's log records (debug included) by message.
	Logs *logCounter

	mu        sync.Mutex
	exchanges []exchange
}

// logCounter is a slog.Handler counting the records by message, at every level.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logCounter) WithGroup(string) slog.Handler            { return h }
func (h *logCounter) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.n[r.Message]++
	h.mu.Unlock()
	return nil
}

// Count returns how many records with msg were logged.
func (h *logCounter) Count(msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[msg]
}

// exchange is one API request and its answer, recorded for checkTraffic.
type exchange struct {
	method, pattern, path string
	reqType               string
	reqBody               []byte
	status                int
	respType              string
	respBody              []byte
}

// maxRecorded bounds the bodies recorded (JSON only).
const maxRecorded = 1 << 20

// record wraps the mux: every request's pattern, JSON request body, status and JSON answer
// are kept for checkTraffic.
func (s *stack) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := s.Mux.Handler(r)
		ex := exchange{method: r.Method, pattern: pattern, path: r.URL.Path, reqType: r.Header.Get("Content-Type")}
		if strings.HasPrefix(ex.reqType, "application/json") {
			b, err := io.ReadAll(io.LimitReader(r.Body, maxRecorded))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			ex.reqBody = b
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		rw := &recordingWriter{ResponseWriter: w}
		next.ServeHTTP(rw, r)
		if r.Context().Err() != nil && rw.status == 0 {
			return // the client went away (a long poll ended by it): nothing was answered
		}
		ex.status, ex.respType, ex.respBody = rw.status, w.Header().Get("Content-Type"), rw.body.Bytes()
		if ex.status == 0 {
			ex.status = http.StatusOK
		}
		s.mu.Lock()
		s.exchanges = append(s.exchanges, ex)
		s.mu.Unlock()
	})
}

type recordingWriter struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (w *recordingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recordingWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") && w.body.Len() < maxRecorded {
		w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (deadlines).
func (w *recordingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// checkTraffic checks every recorded exchange against service/api/openapi.yaml: the route,
// method and status are documented, and JSON bodies (requests and answers) match the
// schemas. It returns how many exchanges it checked.
func (s *stack) checkTraffic(t *testing.T) int {
	t.Helper()
	spec, err := api.LoadSpec(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	for _, ex := range s.exchanges {
		if ex.pattern == "/" {
			t.Errorf("%s %s: no route", ex.method, ex.path)
			continue
		}
		if ex.reqBody != nil {
			if err := spec.CheckRequest(ex.method, ex.pattern, ex.reqBody); err != nil {
				t.Errorf("request %s %s: %v\n%s", ex.method, ex.path, err, ex.reqBody)
			}
		}
		if err := spec.CheckResponse(ex.method, ex.pattern, ex.status, ex.respType, ex.respBody); err != nil {
			t.Errorf("answer to %s %s: %v\n%s", ex.method, ex.path, err, ex.respBody)
		}
		seen[ex.method+" "+ex.pattern] = true
	}
	return len(seen)
}

// newStack starts a stack with the object store backend "fs" (bitvaultd's own /v1/blobs/) or
// "s3" (versitygw); extra sets more BITVAULT_* variables.
func newStack(t *testing.T, backend string, extra ...string) *stack {
	t.Helper()
	d := pgtest.New(t)
	srv := httptest.NewUnstartedServer(nil)
	url := "http://" + srv.Listener.Addr().String()
	env := map[string]string{
		"BITVAULT_DATABASE_URL":    d.AppDSN,
		"BITVAULT_TOKEN_KEY":       tokenKey,
		"BITVAULT_BOOTSTRAP_TOKEN": bootstrap,
		"BITVAULT_DATA_DIR":        t.TempDir(),
		"BITVAULT_HTTP_ADDR":       srv.Listener.Addr().String(),
	}
	switch backend {
	case "fs":
		env["BITVAULT_STORAGE"] = "fs"
		env["BITVAULT_PUBLIC_URL"] = url
	case "s3":
		b := s3test.New(t)
		env["BITVAULT_STORAGE"] = "s3"
		env["BITVAULT_S3_ENDPOINT"] = b.Endpoint
		env["BITVAULT_S3_REGION"] = b.Region
		env["BITVAULT_S3_BUCKET"] = b.Name
		env["BITVAULT_S3_ACCESS_KEY_ID"] = b.AccessKey
		env["BITVAULT_S3_SECRET_ACCESS_KEY"] = b.SecretKey
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	for _, kv := range extra {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	sp := spec()
	cfg, err := config.Load(lookup, sp.Defaults)
	if err != nil {
		t.Fatal(err)
	}
	logs := &logCounter{n: map[string]int{}}
	logger := slog.New(logs)
	checks := health.New(0)
	ctx, cancel := context.WithCancel(context.Background())
	mod, err := sp.Init(ctx, app.Env{Config: cfg, Lookup: lookup, Logger: logger, Checks: checks})
	if err != nil {
		cancel()
		t.Fatalf("initModules: %v", err)
	}
	// As app.Run builds it.
	mux := http.NewServeMux()
	mux.Handle(health.PathLiveness, apierror.Methods(checks.Liveness(), http.MethodGet))
	mux.Handle(health.PathReadiness, apierror.Methods(checks.Readiness(), http.MethodGet))
	mux.HandleFunc("/", apierror.NotFound)
	sp.Routes(mux, logger)
	if mod.Routes != nil {
		mod.Routes(mux)
	}
	s := &stack{URL: url, Mux: mux, Env: env, SuperDSN: d.SuperDSN, Logs: logs}
	srv.Config.Handler = server.Handler(logger, s.record(mux))
	srv.Start()
	var stopped bool
	s.Stop = func() {
		if stopped {
			return
		}
		stopped = true
		srv.Close()
		if mod.Close != nil {
			mod.Close()
		}
		cancel()
	}
	t.Cleanup(s.Stop)
	return s
}

// muxPatterns returns the patterns registered on mux. http.ServeMux does not list them, so
// this reads its routing tree by reflection: every value of net/http's unexported pattern
// type reachable from the mux (not through handlers), by its original string. It fails the
// test if it finds none (net/http's internals changed: update this function).
func muxPatterns(t *testing.T, mux *http.ServeMux) []string {
	t.Helper()
	seen := map[uintptr]bool{}
	found := map[string]bool{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if v.IsNil() || seen[v.Pointer()] {
				return
			}
			seen[v.Pointer()] = true
			walk(v.Elem())
		case reflect.Struct:
			if v.Type().PkgPath() == "net/http" && v.Type().Name() == "pattern" {
				if f := v.FieldByName("str"); f.IsValid() && f.Kind() == reflect.String {
					found[f.String()] = true
				}
				return
			}
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			it := v.MapRange()
			for it.Next() {
				walk(it.Key())
				walk(it.Value())
			}
		}
		// Interfaces (the handlers) are not followed.
	}
	walk(reflect.ValueOf(mux))
	if len(found) == 0 {
		t.Fatal("found no pattern in the http.ServeMux: net/http's internals changed, update muxPatterns")
	}
	out := make([]string, 0, len(found))
	for p := range found {
		out = append(out, p)
		// Cross-check: the mux routes a request for the pattern to the pattern.
		method, path := splitPattern(p)
		if method == "" {
			method = http.MethodGet
		}
		req := httptest.NewRequest(method, samplePath(path), nil)
		if _, got := mux.Handler(req); got != p {
			t.Errorf("muxPatterns found %q, but the mux routes %s %s to %q", p, method, req.URL.Path, got)
		}
	}
	sort.Strings(out)
	return out
}

// splitPattern splits "[METHOD ]PATH" (no host in bitvaultd's patterns).
func splitPattern(p string) (method, path string) {
	if m, rest, ok := strings.Cut(p, " "); ok && !strings.HasPrefix(p, "/") {
		return m, strings.TrimSpace(rest)
	}
	return "", p
}

// samplePath is a request path matching a pattern's path: wildcards filled in, a trailing
// slash followed by a segment.
func samplePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			switch {
			case s == "{$}":
				segs[i] = ""
			case strings.HasSuffix(s, "...}"):
				segs[i] = "a/b"
			default:
				segs[i] = "00000000-0000-4000-8000-000000000000"
			}
		}
	}
	out := strings.Join(segs, "/")
	if strings.HasSuffix(p, "/") && p != "/" {
		out += "x/y"
	}
	return out
}

// probeMethod is a method no route serves: the answer's Allow header says which they do.
const probeMethod = "BVPROBE"

// routeMethods returns the methods the mux serves at pattern: the pattern's own method, else
// the Allow header of the 405 answering probeMethod (apierror.Methods, or the mux's own for
// method patterns). HEAD, served wherever GET is, is left out. ok is false when the route
// answers probeMethod with anything but 405 (it serves every method).
func routeMethods(mux *http.ServeMux, pattern string) (methods []string, ok bool) {
	method, path := splitPattern(pattern)
	if method != "" {
		return []string{method}, true
	}
	req := httptest.NewRequest(probeMethod, samplePath(path), nil)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed {
		return nil, false
	}
	for _, m := range strings.Split(rec.Header().Get("Allow"), ",") {
		if m = strings.TrimSpace(m); m != "" && m != http.MethodHead {
			methods = append(methods, m)
		}
	}
	sort.Strings(methods)
	return methods, true
}
