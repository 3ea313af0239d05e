package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"lukechampine.com/blake3"

	"github.com/bitvault/bitvault/service/internal/platform/processtest"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

// TestBinarySyncSharingSearch: the real binary serves the sync, sharing and search APIs:
// an uploaded file shows in the change journal and in search, and a public link to it
// redirects anyone to its bytes; without a database they answer 503.
func TestBinarySyncSharingSearch(t *testing.T) {
	d := pgtest.New(t)
	bin := buildOnce(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := processtest.Start(t, bin, baseEnv(t,
		"BITVAULT_DATABASE_URL="+d.AppDSN, "BITVAULT_TOKEN_KEY="+tokenKey, "BITVAULT_BOOTSTRAP_TOKEN="+bootstrap,
		"BITVAULT_STORAGE=fs", "BITVAULT_HTTP_ADDR="+addr, "BITVAULT_PUBLIC_URL=http://"+addr)...)
	base := "http://" + p.Addr(30*time.Second)
	if code, body := post(t, base+"/v1/tenants", bootstrap, `{"slug":"acme","name":"Acme","owner":{"email":"owner@acme.example","password":"owner-password-1"}}`); code != http.StatusCreated {
		t.Fatalf("POST /v1/tenants = %d %s", code, body)
	}
	_, body := post(t, base+"/v1/auth/login", "", `{"tenant":"acme","email":"owner@acme.example","password":"owner-password-1"}`)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("login: %s", body)
	}
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
	sum := blake3.Sum256(content)
	code, body := post(t, base+"/v1/files", tok.AccessToken, fmt.Sprintf(`{"path":"/docs/quarterly.txt","size":%d,"blake3":%q}`, len(content), hex.EncodeToString(sum[:])))
	var up struct {
		UploadID string `json:"upload_id"`
		Upload   struct {
			Method  string              `json:"method"`
			URL     string              `json:"url"`
			Headers map[string][]string `json:"headers"`
		} `json:"upload"`
	}
	if err := json.Unmarshal(body, &up); err != nil || code != http.StatusCreated {
		t.Fatalf("POST /v1/files = %d %s", code, body)
	}
	req, _ := http.NewRequest(up.Upload.Method, up.Upload.URL, bytes.NewReader(content))
	for k, vs := range up.Upload.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	code, body = post(t, base+"/v1/files/commit", tok.AccessToken, fmt.Sprintf(`{"upload_id":%q}`, up.UploadID))
	var res struct {
		Node struct{ ID string } `json:"node"`
	}
	if err := json.Unmarshal(body, &res); err != nil || code != http.StatusCreated {
		t.Fatalf("commit = %d %s", code, body)
	}

	if code, body, _ := get(base+"/v1/sync/changes?cursor=0", tok.AccessToken); code != http.StatusOK || !strings.Contains(string(body), `"path":"/docs/quarterly.txt"`) {
		t.Errorf("GET /v1/sync/changes = %d %s", code, body)
	}
	if code, body := post(t, base+"/v1/devices", tok.AccessToken, `{"name":"laptop"}`); code != http.StatusCreated {
		t.Errorf("POST /v1/devices = %d %s", code, body)
	}
	if code, body, _ := get(base+"/v1/search?q="+url.QueryEscape("quart"), tok.AccessToken); code != http.StatusOK || !strings.Contains(string(body), `"name":"quarterly.txt"`) {
		t.Errorf("GET /v1/search = %d %s", code, body)
	}
	code, body = post(t, base+"/v1/nodes/"+res.Node.ID+"/links", tok.AccessToken, `{}`)
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
