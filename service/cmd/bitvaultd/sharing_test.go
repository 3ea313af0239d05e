package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/platform/processtest"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

// TestBinarySyncSharingSearch: the real binary serves the sync, sharing and search APIs:
// an uploaded file shows in the change journal and in search, and a public link to it
// redirects anyone to its bytes; without a database they answer 503.
func TestBinarySyncSharingSearch(t *testing.T) {
	d := pgtest.New(t)
	bin := buildOnce(t)
	addr := freeAddr(t)
	p := processtest.Start(t, bin, baseEnv(t,
		"BITVAULT_DATABASE_URL="+d.AppDSN, "BITVAULT_TOKEN_KEY="+tokenKey, "BITVAULT_BOOTSTRAP_TOKEN="+bootstrap,
		"BITVAULT_STORAGE=fs", "BITVAULT_HTTP_ADDR="+addr, "BITVAULT_PUBLIC_URL=http://"+addr)...)
	base := "http://" + p.Addr(30*time.Second)
	token := acmeOwner(t, base)
	noFollow := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u, bearer string) (int, []byte, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}

	content := []byte("quarterly numbers")
	body := uploadFile(t, base, token, "/docs/quarterly.txt", content)
	var res struct {
		Node struct{ ID string } `json:"node"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatalf("commit = %s", body)
	}

	if code, body, _ := get(base+"/v1/sync/changes?cursor=0", token); code != http.StatusOK || !strings.Contains(string(body), `"path":"/docs/quarterly.txt"`) {
		t.Errorf("GET /v1/sync/changes = %d %s", code, body)
	}
	if code, body := post(t, base+"/v1/devices", token, `{"name":"laptop"}`); code != http.StatusCreated {
		t.Errorf("POST /v1/devices = %d %s", code, body)
	}
	if code, body, _ := get(base+"/v1/search?q="+url.QueryEscape("quart"), token); code != http.StatusOK || !strings.Contains(string(body), `"name":"quarterly.txt"`) {
		t.Errorf("GET /v1/search = %d %s", code, body)
	}
	code, body := post(t, base+"/v1/nodes/"+res.Node.ID+"/links", token, `{}`)
	var link struct{ URL string }
	if err := json.Unmarshal(body, &link); err != nil || code != http.StatusCreated {
		t.Fatalf("POST links = %d %s", code, body)
	}
	code, _, h := get(base+link.URL, "")
	if code != http.StatusFound {
		t.Fatalf("GET %s = %d", link.URL, code)
	}
	if code, got, _ := get(h.Get("Location"), ""); code != http.StatusOK || !bytes.Equal(got, content) {
		t.Errorf("download through the link = %d %q", code, got)
	}
	p.Signal(syscall.SIGTERM)
	if code := p.Wait(10 * time.Second); code != 0 {
		t.Errorf("exit code = %d; logs: %v", code, p.Lines())
	}
	p.CheckOnlyJSON()
	for _, l := range p.Lines() {
		if strings.Contains(fmt.Sprint(l), link.URL) {
			t.Errorf("a log line has the link's token: %v", l)
		}
	}

	// Without a database: 503.
	q := processtest.Start(t, bin, baseEnv(t, "BITVAULT_DB=none")...)
	base = "http://" + q.Addr(30*time.Second)
	for _, path := range []string{"/v1/sync/changes", "/v1/search?q=x", "/v1/links/bvl_x", "/v1/devices"} {
		if code, body, _ := get(base+path, ""); code != http.StatusServiceUnavailable {
			t.Errorf("GET %s without a database = %d %s, want 503", path, code, body)
		}
	}
}
