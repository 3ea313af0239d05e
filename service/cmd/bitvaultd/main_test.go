package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/platform/processtest"
)

func TestVersionHandler(t *testing.T) {
	rec := httptest.NewRecorder()
	versionHandler(rec, httptest.NewRequest(http.MethodGet, "/v1/version", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200", rec.Code)
	}
	var got versionInfo
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if want := (versionInfo{Name: "bitvaultd", Version: "dev", Commit: "unknown"}); got != want {
		t.Errorf("body = %+v, want %+v", got, want)
	}
}

// TestBinarySIGTERM builds bitvaultd (without a database, BITVAULT_DB=none) with version ldflags, runs it, and checks the drain
// sequence on a real SIGTERM: /readyz turns 503 while the process still serves, then it
// exits 0 well within the shutdown timeout, having printed nothing but JSON.
func TestBinarySIGTERM(t *testing.T) {
	bin := processtest.Build(t, ".", "-trimpath", "-ldflags", "-X main.version=1.2.3 -X main.commit=abc123")
	p := processtest.Start(t, bin,
		"BITVAULT_HTTP_ADDR=127.0.0.1:0",
		"BITVAULT_DB=none",
		"BITVAULT_DRAIN_DELAY=1s",
		"BITVAULT_SHUTDOWN_TIMEOUT=5s",
		"BITVAULT_DATA_DIR="+t.TempDir(),
		"PATH="+os.Getenv("PATH"),
	)
	base := "http://" + p.Addr(10*time.Second)

	if code, body := processtest.Get(t, base+"/readyz"); code != http.StatusOK || !strings.Contains(string(body), `"database":{"status":"not_configured"`) {
		t.Fatalf("/readyz before SIGTERM = %d %s, want 200 with the database not_configured", code, body)
	}
	if code, body := post(t, base+"/v1/auth/login", "", `{}`); code != http.StatusServiceUnavailable {
		t.Errorf("/v1/auth/login without a database = %d %s, want 503", code, body)
	}
	code, body := processtest.Get(t, base+"/v1/version")
	var v versionInfo
	if err := json.Unmarshal(body, &v); err != nil || code != http.StatusOK {
		t.Fatalf("/v1/version = %d %s (%v)", code, body, err)
	}
	if want := (versionInfo{Name: "bitvaultd", Version: "1.2.3", Commit: "abc123"}); v != want {
		t.Errorf("/v1/version = %+v, want %+v", v, want)
	}

	start := time.Now()
	p.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(900 * time.Millisecond)
	for {
		code, body := processtest.Get(t, base+"/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz during drain = %d %s, want 503", code, body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := processtest.Get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during drain = %d, want 200", code)
	}

	if code := p.Wait(5 * time.Second); code != 0 {
		t.Fatalf("exit code = %d, want 0; logs: %v", code, p.Lines())
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("exited %s after SIGTERM, before the 1s drain delay", took)
	}
	p.CheckOnlyJSON()
	for _, msg := range []string{"draining", "stopped", "exited cleanly"} {
		if !p.HasMessage(msg) {
			t.Errorf("no %q log line", msg)
		}
	}
}
