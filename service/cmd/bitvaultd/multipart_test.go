package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/cmd/bitvault/cli"
	"github.com/bitvault/bitvault/service/internal/client"
)

// The stacks of the multipart tests: S3 with S3's smallest parts, 5 MiB, above 5 MiB.
var smallParts = []string{"BITVAULT_MULTIPART_THRESHOLD=5242880", "BITVAULT_MULTIPART_PART_SIZE=5242880"}

// adopt adds other's recorded traffic to s's (checked and counted by TestAPIContract).
func (s *stack) adopt(other *stack) {
	other.mu.Lock()
	ex := other.exchanges
	other.mu.Unlock()
	s.mu.Lock()
	s.exchanges = append(s.exchanges, ex...)
	s.mu.Unlock()
}

// contractMultipart exercises the multipart operations of the API on an S3 stack, for
// TestAPIContract: a multipart upload declared, a commit refused for missing parts, the part
// uploads presigned and sent, the upload's state, the commit.
func contractMultipart(t *testing.T) *stack {
	t.Helper()
	s := newStack(t, "s3", smallParts...)
	newTenant(t, s)
	ctx := context.Background()
	c, _ := client.New(s.URL, client.Options{})
	if _, err := c.Login(ctx, client.Credentials{Tenant: "acme", Email: "owner@acme.example", Password: ownerPassword}); err != nil {
		t.Fatal(err)
	}
	content := randomBytes(t, 6<<20)
	d, err := client.Hash(bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	up, err := c.CreateUpload(ctx, client.NewUpload{Path: "/c/big.bin", Size: d.Size, BLAKE3: d.BLAKE3})
	if err != nil || up.Multipart == nil || up.Multipart.Parts != 2 {
		t.Fatalf("CreateUpload = %+v, %v; want 2 parts", up, err)
	}
	if _, err := c.Commit(ctx, client.CommitRequest{UploadID: up.ID}); !client.IsCode(err, client.CodeUploadIncomplete) || !strings.Contains(err.Error(), "part 1-2 of 2") {
		t.Fatalf("commit without parts: %v", err)
	}
	parts, err := c.PresignParts(ctx, up.ID, []int{1, 2})
	if err != nil || len(parts) != 2 {
		t.Fatalf("PresignParts = %+v, %v", parts, err)
	}
	for _, p := range parts {
		off := int64(p.Number-1) * up.Multipart.PartSize
		if err := c.PutContent(ctx, p.Upload, bytes.NewReader(content[off:off+p.Size]), p.Size); err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.GetUpload(ctx, up.ID)
	if err != nil || st.Status != "pending" || len(st.Parts) != 2 {
		t.Fatalf("GetUpload = %+v, %v", st, err)
	}
	if _, err := c.Commit(ctx, client.CommitRequest{UploadID: up.ID}); err != nil {
		t.Fatal(err)
	}

	// A multipart upload cancelled after one part: cancelled (twice: idempotent), shown as
	// such, and no longer committable.
	up, err = c.CreateUpload(ctx, client.NewUpload{Path: "/c/cancelled.bin", Size: d.Size, BLAKE3: d.BLAKE3})
	if err != nil || up.Multipart == nil {
		t.Fatalf("CreateUpload = %+v, %v", up, err)
	}
	parts, err = c.PresignParts(ctx, up.ID, []int{1})
	if err != nil || len(parts) != 1 {
		t.Fatalf("PresignParts = %+v, %v", parts, err)
	}
	if err := c.PutContent(ctx, parts[0].Upload, bytes.NewReader(content[:parts[0].Size]), parts[0].Size); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := c.CancelUpload(ctx, up.ID); err != nil {
			t.Fatalf("CancelUpload: %v", err)
		}
	}
	if st, err := c.GetUpload(ctx, up.ID); err != nil || st.Status != "cancelled" || len(st.Parts) != 0 {
		t.Fatalf("GetUpload after cancel = %+v, %v", st, err)
	}
	if _, err := c.Commit(ctx, client.CommitRequest{UploadID: up.ID}); !client.IsCode(err, client.CodeConflict) || !strings.Contains(err.Error(), "upload was cancelled") {
		t.Fatalf("commit of a cancelled upload: %v", err)
	}
	if err := c.CancelUpload(ctx, "00000000-0000-4000-8000-000000000000"); !client.IsNotFound(err) {
		t.Fatalf("cancel of an unknown upload: %v", err)
	}
	return s
}

// interruptingTransport stops after a number of part uploads (PUTs with an uploadId), as a
// Ctrl-C would: it cancels the command's context. It counts the part uploads it let through.
type interruptingTransport struct {
	mu     sync.Mutex
	limit  int // 0: no limit
	parts  int
	cancel context.CancelFunc
	// failCancel fails the cancellations of uploads (DELETE /v1/uploads/{id}), as a network
	// error would.
	failCancel bool
}

func (tr *interruptingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if tr.failCancel && r.Method == http.MethodDelete && strings.HasPrefix(r.URL.Path, "/v1/uploads/") {
		return nil, errors.New("connection reset (test)")
	}
	if r.Method == http.MethodPut && r.URL.Query().Has("uploadId") {
		tr.mu.Lock()
		stop := tr.limit > 0 && tr.parts >= tr.limit
		if !stop {
			tr.parts++
		}
		tr.mu.Unlock()
		if stop {
			tr.cancel()
			return nil, context.Canceled
		}
	}
	return http.DefaultTransport.RoundTrip(r)
}

// putRun runs bitvault put, interrupted after limit part uploads (0: not interrupted); it
// returns the result and how many parts were sent.
func putRun(t *testing.T, env map[string]string, limit int, args ...string) (cliResult, int) {
	t.Helper()
	return putRunWith(t, env, &interruptingTransport{limit: limit}, args...)
}

// putRunWith runs bitvault put through tr.
func putRunWith(t *testing.T, env map[string]string, tr *interruptingTransport, args ...string) (cliResult, int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr.cancel = cancel
	var out, errb bytes.Buffer
	code := cli.Run(ctx, append([]string{"put"}, args...), cli.Env{
		Stdout: &out, Stderr: &errb, Version: "test", HTTPClient: &http.Client{Transport: tr},
		Getenv: func(k string) string { return env[k] },
	})
	return cliResult{code, out.String(), errb.String()}, tr.parts
}

// TestCLIResumablePut: bitvault put of a file larger than the multipart threshold,
// interrupted, resumed (only the missing parts are sent), then got back identical; a stale
// upload starts over with a message; --no-resume starts over.
func TestCLIResumablePut(t *testing.T) {
	s := newStack(t, "s3", smallParts...)
	newTenant(t, s)
	cache := t.TempDir()
	env := map[string]string{cli.EnvConfigDir: t.TempDir(), cli.EnvServer: s.URL, cli.EnvCacheDir: cache}
	bv := &cliRunner{t: t, env: env}
	if r := bv.run(ownerPassword+"\n", "login", "--tenant", "acme", "--email", "owner@acme.example"); r.code != 0 {
		t.Fatalf("login: %d %s", r.code, r.stderr)
	}
	work := t.TempDir()
	content := randomBytes(t, 11<<20) // parts of 5, 5 and 1 MiB
	local := filepath.Join(work, "big.bin")
	writeFile(t, local, content)
	records := func() []string {
		t.Helper()
		m, _ := filepath.Glob(filepath.Join(cache, "uploads", "*.json"))
		return m
	}

	// Interrupted after 2 parts: exit 1, a resumable message, a private record.
	r, sent := putRun(t, env, 2, local, "/big.bin")
	if r.code != cli.ExitError || sent != 2 || !strings.Contains(r.stderr, "run the same command again") {
		t.Fatalf("interrupted put: exit %d, %d parts, stderr %q", r.code, sent, r.stderr)
	}
	if recs := records(); len(recs) != 1 || mode(t, recs[0]) != 0o600 || mode(t, filepath.Dir(recs[0])) != 0o700 {
		t.Fatalf("resume records %v: want one, 0600 in a 0700 directory", recs)
	}

	// Resumed: only the third part is sent.
	var res struct {
		client.CommitResult
		Multipart    bool `json:"multipart"`
		Resumed      bool `json:"resumed"`
		PartsSent    int  `json:"parts_sent"`
		PartsSkipped int  `json:"parts_skipped"`
	}
	r, sent = putRun(t, env, 0, local, "/big.bin", "-o", "json")
	if r.code != cli.ExitOK || sent != 1 || !strings.Contains(r.stderr, "2 of 3 parts already uploaded") {
		t.Fatalf("resumed put: exit %d, %d parts sent, stderr %q", r.code, sent, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || !res.Multipart || !res.Resumed || res.PartsSent != 1 || res.PartsSkipped != 2 || res.Version.Size != int64(len(content)) {
		t.Fatalf("put --output json = %+v (%v): %s", res, err, r.stdout)
	}
	if recs := records(); len(recs) != 0 {
		t.Errorf("records %v left after the commit", recs)
	}
	out := filepath.Join(work, "out.bin")
	bv.ok("get", "/big.bin", out)
	if !bytes.Equal(readFile(t, out), content) {
		t.Fatal("got bytes differ from the put ones")
	}

	// A stale upload (expired on the server) starts over, saying so.
	r, _ = putRun(t, env, 1, local, "/big2.bin")
	if r.code != cli.ExitError {
		t.Fatalf("interrupted put: exit %d %s", r.code, r.stderr)
	}
	expireUploads(t, s)
	r, sent = putRun(t, env, 0, local, "/big2.bin")
	if r.code != cli.ExitOK || sent != 3 || !strings.Contains(r.stderr, "cannot be resumed (it is expired): starting over") {
		t.Fatalf("put after expiry: exit %d, %d parts, stderr %q", r.code, sent, r.stderr)
	}

	// --no-resume starts over although a record is there.
	r, _ = putRun(t, env, 1, local, "/big3.bin")
	if r.code != cli.ExitError || len(records()) != 1 {
		t.Fatalf("interrupted put: exit %d, records %v", r.code, records())
	}
	r, sent = putRun(t, env, 0, local, "/big3.bin", "--no-resume")
	if r.code != cli.ExitOK || sent != 3 || strings.Contains(r.stderr, "resuming") || strings.Contains(r.stderr, "warning") {
		t.Fatalf("put --no-resume: exit %d, %d parts, stderr %q", r.code, sent, r.stderr)
	}
	// ... and cancels the discarded upload on the server (its parts aborted).
	if got := uploadStatuses(t, s, "/big3.bin"); got != "cancelled committed" {
		t.Errorf("uploads of /big3.bin: %s, want the interrupted one cancelled, the new one committed", got)
	}

	// A file changed since its interrupted upload starts over, cancelling that upload and
	// dropping its record.
	r, _ = putRun(t, env, 1, local, "/big4.bin")
	if r.code != cli.ExitError || len(records()) != 1 {
		t.Fatalf("interrupted put: exit %d, records %v", r.code, records())
	}
	content[0] ^= 0xff
	writeFile(t, local, content)
	future := time.Now().Add(time.Minute)
	if err := os.Chtimes(local, future, future); err != nil {
		t.Fatal(err)
	}
	r, sent = putRun(t, env, 0, local, "/big4.bin")
	if r.code != cli.ExitOK || sent != 3 || strings.Contains(r.stderr, "warning") {
		t.Fatalf("put of the changed file: exit %d, %d parts, stderr %q", r.code, sent, r.stderr)
	}
	if got := uploadStatuses(t, s, "/big4.bin"); got != "cancelled committed" {
		t.Errorf("uploads of /big4.bin: %s, want the interrupted one cancelled, the new one committed", got)
	}
	if recs := records(); len(recs) != 0 {
		t.Errorf("records %v left", recs)
	}

	// Cancelling is best effort: a failure (here: the server cannot be reached for it) is a
	// warning, and the put goes on.
	r, _ = putRun(t, env, 1, local, "/big5.bin")
	if r.code != cli.ExitError || len(records()) != 1 {
		t.Fatalf("interrupted put: exit %d, records %v", r.code, records())
	}
	r, sent = putRunWith(t, env, &interruptingTransport{failCancel: true}, local, "/big5.bin", "--no-resume")
	if r.code != cli.ExitOK || sent != 3 || !strings.Contains(r.stderr, "warning: the previous upload") || !strings.Contains(r.stderr, "was not cancelled") {
		t.Fatalf("put --no-resume, cancel refused: exit %d, %d parts, stderr %q", r.code, sent, r.stderr)
	}
	if got := uploadStatuses(t, s, "/big5.bin"); got != "pending committed" {
		t.Errorf("uploads of /big5.bin: %s, want the one not cancelled pending, the new one committed", got)
	}

	// The same file put to two remote paths, both interrupted: a record each, both resumed.
	for _, remote := range []string{"/big6.bin", "/big7.bin"} {
		if r, _ = putRun(t, env, 1, local, remote); r.code != cli.ExitError {
			t.Fatalf("interrupted put to %s: exit %d %s", remote, r.code, r.stderr)
		}
	}
	if recs := records(); len(recs) != 2 {
		t.Fatalf("records %v, want one per remote path", recs)
	}
	for _, remote := range []string{"/big6.bin", "/big7.bin"} {
		r, sent = putRun(t, env, 0, local, remote)
		if r.code != cli.ExitOK || sent != 2 || !strings.Contains(r.stderr, "1 of 3 parts already uploaded") {
			t.Fatalf("resumed put to %s: exit %d, %d parts, stderr %q", remote, r.code, sent, r.stderr)
		}
		if got := uploadStatuses(t, s, remote); got != "committed" {
			t.Errorf("uploads of %s: %s, want the interrupted one resumed and committed", remote, got)
		}
	}
	if recs := records(); len(recs) != 0 {
		t.Errorf("records %v left", recs)
	}
	s.checkTraffic(t)
}

// uploadStatuses returns the statuses of the uploads to path, oldest first.
func uploadStatuses(t *testing.T, s *stack, path string) string {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), s.SuperDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var got string
	if err := pool.QueryRow(context.Background(), "SELECT coalesce(string_agg(status, ' ' ORDER BY created_at, status), '') FROM uploads WHERE path = $1", path).Scan(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

// expireUploads makes every pending upload of the stack expired, as time would.
func expireUploads(t *testing.T, s *stack) {
	t.Helper()
	superExec(t, s, "UPDATE uploads SET expires_at = now() - interval '1 second' WHERE status = 'pending'")
}

// superExec runs sql on the stack's database, bypassing row-level security.
func superExec(t *testing.T, s *stack, sql string) {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), s.SuperDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}
