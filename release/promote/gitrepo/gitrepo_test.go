package gitrepo

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitvault/bitvault/internal/testsupport/gitopstest"
)

const token = "ghs_secret-token-123"

// smartHTTP serves the bare repositories under root over git's smart HTTP
// protocol (git http-backend as CGI), answering 401 unless the request
// carries the token the way GitHub accepts it from actions/checkout.
func smartHTTP(t *testing.T, root string) (*httptest.Server, *[]string) {
	t.Helper()
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Skip("git is not installed")
	}
	backend := filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Skip("git-http-backend is not installed")
	}
	var auth []string
	h := &cgi.Handler{Path: backend, Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}}
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		if !strings.EqualFold(r.Header.Get("Authorization"), want) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "Bad credentials", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &auth
}

// TestHTTPRemoteToken: over http(s) the token reaches the server as an
// Authorization header, and never the URL, .git/config or an error message.
func TestHTTPRemoteToken(t *testing.T) {
	ctx := context.Background()
	bare := gitopstest.Bare(t, "../../../deploy/gitops", "main")
	gitopstest.Git(t, bare, "config", "http.receivepack", "true")
	srv, auth := smartHTTP(t, filepath.Dir(bare))
	url := srv.URL + "/" + filepath.Base(bare)

	dir := filepath.Join(t.TempDir(), "work")
	r, err := Open(ctx, dir, Remote{URL: url, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Checkout(ctx, "bvrelease/promote-dev-v1", "main"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "envs/dev/values.dev.yaml"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := r.Commit(ctx, "envs/dev/values.dev.yaml", "promote", Author{"bot", "bot@example.invalid"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Push(ctx, "bvrelease/promote-dev-v1", ""); err != nil {
		t.Fatal(err)
	}
	if got := gitopstest.Git(t, bare, "rev-parse", "bvrelease/promote-dev-v1"); got != c {
		t.Errorf("remote branch at %s, pushed %s", got, c)
	}
	if same, err := r.SameChange(ctx, "bvrelease/promote-dev-v1", "main", c); err != nil || !same {
		t.Errorf("SameChange after the push = %v, %v", same, err)
	}
	if len(*auth) == 0 || (*auth)[0] == "" {
		t.Errorf("no Authorization header reached the server: %q", *auth)
	}
	for _, f := range []string{".git/config", ".git/FETCH_HEAD"} {
		if data, _ := os.ReadFile(filepath.Join(dir, f)); strings.Contains(string(data), token) || strings.Contains(string(data), base64.StdEncoding.EncodeToString([]byte("x-access-token:"+token))) {
			t.Errorf("%s holds the token:\n%s", f, data)
		}
	}

	// The remote moved on since the fetch: the lease refuses to overwrite it.
	gitopstest.Commit(t, bare, "bvrelease/promote-dev-v1", "README.md", "someone else\n")
	err = r.Push(ctx, "bvrelease/promote-dev-v1", c)
	if err == nil || !strings.Contains(err.Error(), "changed on the remote") {
		t.Errorf("push over a concurrent change: %v", err)
	}

	// A wrong token: refused, and the error does not show it.
	_, err = Open(ctx, filepath.Join(t.TempDir(), "w2"), Remote{URL: url, Token: "ghs_wrong-token"})
	if err == nil || strings.Contains(err.Error(), "ghs_wrong-token") || !strings.Contains(err.Error(), "did not accept the credentials") {
		t.Errorf("wrong token: %v", err)
	}
}

func TestAuthEnv(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:tok"))
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name, remote, token string
		have                map[string]string
		want                []string
	}{
		{"github", "https://github.com/bitvault/gitops.git", "tok", nil, []string{"GIT_CONFIG_COUNT=1",
			"GIT_CONFIG_KEY_0=http.https://github.com/.extraheader", "GIT_CONFIG_VALUE_0=AUTHORIZATION: basic " + basic}},
		{"after existing entries", "https://ghe.example.com/o/r.git", "tok", map[string]string{"GIT_CONFIG_COUNT": "2"}, []string{"GIT_CONFIG_COUNT=3",
			"GIT_CONFIG_KEY_2=http.https://ghe.example.com/.extraheader", "GIT_CONFIG_VALUE_2=AUTHORIZATION: basic " + basic}},
		{"local path", "/srv/gitops.git", "tok", nil, nil},
		{"file URL", "file:///srv/gitops.git", "tok", nil, nil},
		{"no token", "https://github.com/bitvault/gitops.git", "", nil, nil},
	} {
		got := AuthEnv(env(tc.have), tc.remote, tc.token)
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := Redact("https://x:tok@github.com/o/r.git", "tok"); strings.Contains(got, "tok@") {
		t.Errorf("Redact: %s", got)
	}
}
