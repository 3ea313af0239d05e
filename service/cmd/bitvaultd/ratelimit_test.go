package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/bitvault/bitvault/service/cmd/bitvault/cli"
	"github.com/bitvault/bitvault/service/internal/client"
)

// TestBruteForceLimits: bitvaultd wired as in production, with BITVAULT_BRUTEFORCE_PER_ACCOUNT_IP=2:
// a locked login and a locked link password answer 429 rate_limited with Retry-After, as
// service/api/openapi.yaml documents (every exchange is checked against it), and the CLI
// prints the server's message with exit code 1.
func TestBruteForceLimits(t *testing.T) {
	s := newStack(t, "fs", "BITVAULT_BRUTEFORCE_PER_ACCOUNT_IP=2")
	newTenant(t, s)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	ctx := context.Background()
	c, err := client.New(s.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx, client.Credentials{Tenant: "acme", Email: "owner@acme.example", Password: ownerPassword}); err != nil {
		t.Fatal(err)
	}

	// A link password: two wrong ones, then locked whatever the password.
	res, err := c.Upload(ctx, "/a.txt", func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("a")), nil }, client.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	link, err := c.CreateLink(ctx, res.Node.ID, client.NewLink{Password: new("link-password-1")})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.ResolveLink(ctx, link.Token, "wrong-password"); !client.IsUnauthenticated(err) {
			t.Fatalf("wrong link password: %v, want 401", err)
		}
	}
	if _, err := c.ResolveLink(ctx, link.Token, "link-password-1"); !client.IsCode(err, client.CodeRateLimited) || !strings.Contains(err.Error(), "try again in") {
		t.Fatalf("locked link: %v, want rate_limited with the wait", err)
	}
	status, header, body := postJSON(t, s.URL+"/v1/links/"+link.Token, map[string]string{"password": "link-password-1"})
	if secs, _ := strconv.Atoi(header.Get("Retry-After")); status != http.StatusTooManyRequests || secs < 1 || secs > 15*60 {
		t.Fatalf("POST locked link = %d (Retry-After %q) %s, want 429 with Retry-After", status, header.Get("Retry-After"), body)
	}

	// Login through the CLI: wrong passwords are authentication failures (3); locked, the
	// server's message and exit 1.
	bv := &cliRunner{t: t, env: map[string]string{}}
	login := []string{"login", "--server", s.URL, "--tenant", "acme", "--email", "member@acme.example"}
	for range 2 {
		if r := bv.run("wrong-password-1\n", login...); r.code != cli.ExitAuth {
			t.Fatalf("wrong password: exit %d %q, want %d", r.code, r.stderr, cli.ExitAuth)
		}
	}
	r := bv.run(ownerPassword+"\n", login...)
	if r.code != cli.ExitError || !strings.Contains(r.stderr, "too many failed login attempts: try again in") || !strings.Contains(r.stderr, "rate_limited") {
		t.Fatalf("locked login: exit %d, stderr %q; want %d and the server's message", r.code, r.stderr, cli.ExitError)
	}
	r = bv.run(ownerPassword+"\n", append(login, "-o", "json")...)
	var out struct {
		Error client.Error `json:"error"`
	}
	if err := json.Unmarshal([]byte(r.stderr), &out); err != nil || r.code != cli.ExitError || out.Error.Code != client.CodeRateLimited {
		t.Fatalf("locked login -o json: exit %d, stderr %q (%v), want the rate_limited error", r.code, r.stderr, err)
	}
	status, header, body = postJSON(t, s.URL+"/v1/auth/login", map[string]string{"tenant": "acme", "email": "member@acme.example", "password": ownerPassword})
	if status != http.StatusTooManyRequests || header.Get("Retry-After") == "" {
		t.Fatalf("POST /v1/auth/login = %d (Retry-After %q) %s, want 429", status, header.Get("Retry-After"), body)
	}
	// The owner, not locked, still logs in from the same address.
	if _, err := c.Login(ctx, client.Credentials{Tenant: "acme", Email: "owner@acme.example", Password: ownerPassword}); err != nil {
		t.Fatal(err)
	}

	s.checkTraffic(t)
}

// postJSON posts body as JSON without credentials and without following redirects.
func postJSON(t *testing.T, url string, body any) (int, http.Header, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, out
}
