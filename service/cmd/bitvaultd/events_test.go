package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/bitvault/bitvault/service/internal/platform/processtest"
	"github.com/bitvault/bitvault/service/internal/testsupport/natstest"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
	"github.com/bitvault/bitvault/service/internal/testsupport/s3test"
)

// TestBinaryEvents runs the real binaries in each profile and checks that the same events
// have the same results: the meter counts every version once, the indexer makes text
// content searchable, the GC deletes a purged file's blob, the webhooks are fanned out and
// delivered, and a sync long poll wakes on a commit of its own tenant, not of another.
//
//   - lite (fs object store): one bitvaultd does it all.
//   - standard (S3 on versitygw): two bitvaultd replicas relay to JetStream and do none of
//     the consumers' work: nothing is metered, indexed, collected or delivered until
//     bitvault-worker runs, nor while it is down; it catches up when it (re)starts. A long
//     poll on one replica wakes on a commit through the other.
func TestBinaryEvents(t *testing.T) {
	for _, profile := range []string{"lite", "standard"} {
		t.Run(profile, func(t *testing.T) { testEvents(t, profile) })
	}
}

// eventsRig is a running deployment of one profile.
type eventsRig struct {
	t        *testing.T
	standard bool
	super    *pgxpool.Pool
	// env is the environment of every process: bitvaultd and bitvault-worker get the same.
	env      []string
	replicas []*processtest.Process
	bases    []string
	// hookURL receives the webhooks; hooks counts the deliveries received.
	hookURL string
	hooks   atomic.Int64
	uploads int64
}

func newEventsRig(t *testing.T, profile string) *eventsRig {
	d := pgtest.New(t)
	r := &eventsRig{t: t, standard: profile == "standard", super: pgtest.Pool(t, d.SuperDSN)}
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Header.Get("X-BitVault-Event") != "" {
			r.hooks.Add(1)
		}
	}))
	t.Cleanup(receiver.Close)
	r.env = baseEnv(t, "BITVAULT_DATABASE_URL="+d.AppDSN, "BITVAULT_PROFILE="+profile,
		"BITVAULT_TOKEN_KEY="+tokenKey, "BITVAULT_BOOTSTRAP_TOKEN="+bootstrap,
		"BITVAULT_WEBHOOK_ALLOW_HTTP=true", "BITVAULT_WEBHOOK_ALLOW_PRIVATE=true",
		// A purge leaves the blob to the GC's sweep (without a grace, the purge deletes it).
		"BITVAULT_BLOB_GRACE=1s", "BITVAULT_GC_INTERVAL=1s",
		// Only the signal can wake a long poll (no re-check within the test), and the debug
		// log tells when one waits ("long poll waiting").
		"BITVAULT_SYNC_RECHECK=1h", "BITVAULT_LOG_LEVEL=debug")
	addrs := []string{freeAddr(t)}
	if r.standard {
		b := s3test.New(t)
		r.env = append(r.env, "BITVAULT_NATS_URL="+natstest.New(t).URL(), "BITVAULT_STORAGE=s3", "BITVAULT_S3_ENDPOINT="+b.Endpoint,
			"BITVAULT_S3_REGION="+b.Region, "BITVAULT_S3_BUCKET="+b.Name, "BITVAULT_S3_ACCESS_KEY_ID="+b.AccessKey, "BITVAULT_S3_SECRET_ACCESS_KEY="+b.SecretKey)
		addrs = append(addrs, freeAddr(t))
	} else {
		// The presigned URLs name bitvaultd's own address.
		r.env = append(r.env, "BITVAULT_STORAGE=fs", "BITVAULT_PUBLIC_URL=http://"+addrs[0])
	}
	bin := buildOnce(t)
	for _, addr := range addrs {
		p := processtest.Start(t, bin, append(r.env, "BITVAULT_HTTP_ADDR="+addr)...)
		base := "http://" + p.Addr(30*time.Second)
		waitReady(t, base, `"outbox":{"status":"ok","detail":"0 unpublished, oldest 0s"}`)
		r.replicas, r.bases = append(r.replicas, p), append(r.bases, base)
	}
	r.hookURL = receiver.URL
	return r
}

// parked counts p's "long poll waiting" lines: each is a long poll whose read found nothing,
// now waiting.
func (r *eventsRig) parked(p *processtest.Process) int {
	n := 0
	for _, l := range p.Lines() {
		if l["msg"] == "long poll waiting" {
			n++
		}
	}
	return n
}

// waitParked waits until p has logged n "long poll waiting" lines.
func (r *eventsRig) waitParked(p *processtest.Process, n int) {
	r.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for r.parked(p) < n {
		if time.Now().After(deadline) {
			r.t.Fatalf("%d \"long poll waiting\" lines, want %d", r.parked(p), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testEvents(t *testing.T, profile string) {
	r := newEventsRig(t, profile)
	first, last := r.bases[0], r.bases[len(r.bases)-1]
	acme := acmeOwner(t, first)
	globex := tenantOwner(t, first, "globex")
	if code, body := post(t, first+"/v1/webhooks", acme, fmt.Sprintf(`{"url":%q}`, r.hookURL)); code != http.StatusCreated {
		t.Fatalf("POST /v1/webhooks = %d %s", code, body)
	}

	// A long poll wakes on a commit of its tenant (through another replica in standard), but
	// not on another tenant's: both wait (their first read done) before acme's commit; acme's
	// answers with it well before any re-check (1h), globex's waits on until its wait runs
	// out, never woken (a wake-up would make it read and wait again: one more "long poll
	// waiting" line).
	r.upload(first, acme, "/docs/bin/first.bin", "\x00 folders first")
	cursor := syncCursor(t, last, acme)
	poller := r.replicas[len(r.replicas)-1]
	parked := r.parked(poller)
	done := longPoll(t, last, acme, cursor, "30s")
	other := longPoll(t, last, globex, syncCursor(t, last, globex), "5s")
	r.waitParked(poller, parked+2)
	r.upload(first, acme, "/docs/hello.txt", "the needle in the haystack")
	if res := <-done; res.code != http.StatusOK || len(res.page.Changes) != 1 || res.page.Changes[0].Path != "/docs/hello.txt" || res.elapsed >= 20*time.Second {
		t.Fatalf("acme's long poll: %d (%v) after %s, %+v; want the commit, woken by the signal", res.code, res.err, res.elapsed, res.page)
	}
	select {
	case res := <-other:
		t.Fatalf("globex's long poll answered with acme's: %d after %s, %+v", res.code, res.elapsed, res.page)
	default:
	}
	if res := <-other; res.code != http.StatusOK || len(res.page.Changes) != 0 || res.elapsed < 5*time.Second {
		t.Fatalf("globex's long poll: %d (%v) after %s, %+v; want the empty page after the wait", res.code, res.err, res.elapsed, res.page)
	}
	if n := r.parked(poller) - parked; n != 2 {
		t.Fatalf("%d \"long poll waiting\" lines, want 2: globex's long poll was woken by acme's commit", n)
	}
	if res := <-longPoll(t, last, acme, 0, "61s"); res.code != http.StatusBadRequest {
		t.Fatalf("wait=61s: %d, want 400", res.code)
	}

	// A file purged at once: once its grace is over, the GC's sweep deletes its blob.
	purged := r.upload(first, acme, "/docs/bin/gone.bin", "purge me")
	if code, body := post(t, first+"/v1/nodes/"+purged.id+"/trash", acme, `{}`); code != http.StatusOK {
		t.Fatalf("trash = %d %s", code, body)
	}
	if code, body := send(t, http.MethodDelete, first+"/v1/nodes/"+purged.id, acme); code != http.StatusNoContent {
		t.Fatalf("purge = %d %s", code, body)
	}
	r.waitPublished()

	if r.standard {
		// bitvaultd relays, nothing more: the consumers wait for the worker.
		r.checkNothingConsumed("without bitvault-worker", "needle", purged.hash)
		w := r.startWorker()
		r.waitConsumed(acme, "needle", purged.hash)
		// The worker down: nothing is indexed; back up: it catches up.
		w.Signal(syscall.SIGKILL)
		w.Wait(10 * time.Second)
		r.upload(first, acme, "/docs/later.txt", "a late pitchfork")
		r.waitPublished()
		r.checkNothingConsumed("with bitvault-worker down", "pitchfork", "")
		w = r.startWorker()
		r.waitConsumed(acme, "pitchfork", "")
		w.Signal(syscall.SIGTERM)
		if code := w.Wait(10 * time.Second); code != 0 {
			t.Errorf("worker exit code = %d; logs: %v", code, w.Lines())
		}
		w.CheckOnlyJSON()
	} else {
		r.waitConsumed(acme, "needle", purged.hash)
	}

	for _, p := range r.replicas {
		p.Signal(syscall.SIGTERM)
		if code := p.Wait(10 * time.Second); code != 0 {
			t.Errorf("exit code = %d; logs: %v", code, p.Lines())
		}
		p.CheckOnlyJSON()
	}
}

// uploaded is a committed file.
type uploaded struct{ id, hash string }

// upload commits a file through base, counting it for the meter.
func (r *eventsRig) upload(base, token, path, content string) uploaded {
	r.t.Helper()
	var res struct {
		Node struct {
			ID string `json:"id"`
		} `json:"node"`
		Version struct {
			BLAKE3 string `json:"blake3"`
		} `json:"version"`
	}
	if err := json.Unmarshal(uploadFile(r.t, base, token, path, []byte(content)), &res); err != nil {
		r.t.Fatal(err)
	}
	r.uploads++
	return uploaded{id: res.Node.ID, hash: res.Version.BLAKE3}
}

// startWorker starts bitvault-worker with bitvaultd's environment and waits until it is
// ready: database, NATS and object store.
func (r *eventsRig) startWorker() *processtest.Process {
	r.t.Helper()
	w := processtest.Start(r.t, workerBinary(r.t), r.env...)
	base := "http://" + w.Addr(30*time.Second)
	for _, check := range []string{`"database":{"status":"ok"}`, `"nats":{"status":"ok"}`, `"storage":{"status":"ok"}`} {
		waitReady(r.t, base, check)
	}
	return w
}

// waitPublished waits until the relay has published every outbox row.
func (r *eventsRig) waitPublished() {
	r.t.Helper()
	r.waitFor("the outbox published", func() (bool, string) {
		n := r.count("SELECT count(*) FROM outbox WHERE published_at IS NULL")
		return n == 0, fmt.Sprintf("%d unpublished", n)
	})
}

// checkNothingConsumed checks that no consumer has worked since the last waitConsumed (or
// ever): word is not indexed, the blob (if any) is still there, and, the first time, nothing
// was metered nor any webhook delivered.
func (r *eventsRig) checkNothingConsumed(when, word, blob string) {
	r.t.Helper()
	if n := r.count("SELECT count(*) FROM node_content WHERE content LIKE $1", "%"+word+"%"); n != 0 {
		r.t.Errorf("%s: %q indexed", when, word)
	}
	if blob == "" {
		return
	}
	if n := r.count("SELECT count(*) FROM blobs WHERE hash = $1", blob); n != 1 {
		r.t.Errorf("%s: the purged blob was collected", when)
	}
	if n := r.count("SELECT coalesce(sum(events), 0) FROM usage_counters"); n != 0 {
		r.t.Errorf("%s: %d events metered", when, n)
	}
	if n := r.count("SELECT count(*) FROM webhook_deliveries"); n != 0 || r.hooks.Load() != 0 {
		r.t.Errorf("%s: %d webhook deliveries, %d received", when, n, r.hooks.Load())
	}
}

// waitConsumed waits for every consumer's effect: each upload metered once, word found in
// the text content through the search API, the purged blob (if any) deleted, webhooks
// received.
func (r *eventsRig) waitConsumed(token, word, blob string) {
	r.t.Helper()
	r.waitFor("the meter", func() (bool, string) {
		n := r.count("SELECT coalesce(sum(versions_created), 0) FROM usage_counters")
		if n > r.uploads {
			r.t.Fatalf("%d versions metered, want %d", n, r.uploads)
		}
		return n == r.uploads, fmt.Sprintf("%d versions metered, want %d", n, r.uploads)
	})
	r.waitFor("the indexer", func() (bool, string) {
		code, body := send(r.t, http.MethodGet, r.bases[0]+"/v1/search?q="+url.QueryEscape(word), token)
		return code == http.StatusOK && strings.Contains(string(body), `"results":[{`), fmt.Sprintf("search %s = %d %s", word, code, body)
	})
	if blob != "" {
		r.waitFor("the GC", func() (bool, string) {
			n := r.count("SELECT count(*) FROM blobs WHERE hash = $1", blob)
			return n == 0, fmt.Sprintf("%d blob rows", n)
		})
	}
	r.waitFor("the webhooks", func() (bool, string) {
		return r.hooks.Load() > 0, "no delivery received"
	})
}

func (r *eventsRig) count(sql string, args ...any) int64 {
	r.t.Helper()
	var n int64
	if err := r.super.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		r.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// waitFor polls cond for up to 30 s.
func (r *eventsRig) waitFor(what string, cond func() (bool, string)) {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("%s: still %s", what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// workerBinary builds bitvault-worker once per test binary, next to buildOnce's bitvaultd
// (removed by TestMain).
func workerBinary(t *testing.T) string {
	t.Helper()
	dir := filepath.Dir(buildOnce(t))
	worker.once.Do(func() {
		worker.bin = filepath.Join(dir, "bitvault-worker")
		cmd := exec.Command("go", "build", "-o", worker.bin, "../bitvault-worker")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			worker.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if worker.err != nil {
		t.Fatal(worker.err)
	}
	return worker.bin
}

var worker struct {
	once sync.Once
	bin  string
	err  error
}

// tenantOwner creates a tenant on the bitvaultd at base and returns its owner's access token.
func tenantOwner(t *testing.T, base, slug string) string {
	t.Helper()
	if code, body := post(t, base+"/v1/tenants", bootstrap, fmt.Sprintf(`{"slug":%q,"name":%q,"owner":{"email":"owner@%s.example","password":"owner-password-1"}}`, slug, slug, slug)); code != http.StatusCreated {
		t.Fatalf("POST /v1/tenants = %d %s", code, body)
	}
	_, body := post(t, base+"/v1/auth/login", "", fmt.Sprintf(`{"tenant":%q,"email":"owner@%s.example","password":"owner-password-1"}`, slug, slug))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("login: %s", body)
	}
	return tok.AccessToken
}

// send sends a request without a body.
func send(t *testing.T, method, url, bearer string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func syncCursor(t *testing.T, base, token string) int64 {
	t.Helper()
	code, body := send(t, http.MethodGet, base+"/v1/sync/cursor", token)
	var pos struct{ Cursor int64 }
	if err := json.Unmarshal(body, &pos); err != nil || code != http.StatusOK {
		t.Fatalf("GET /v1/sync/cursor = %d %s", code, body)
	}
	return pos.Cursor
}

// pollResult is the answer to a long poll.
type pollResult struct {
	code    int
	page    struct{ Changes []struct{ Path string } }
	elapsed time.Duration
	err     error
}

// longPoll sends GET /v1/sync/changes?cursor=&wait= in the background.
func longPoll(t *testing.T, base, token string, cursor int64, wait string) <-chan pollResult {
	out := make(chan pollResult, 1)
	go func() {
		var res pollResult
		start := time.Now()
		defer func() { res.elapsed = time.Since(start); out <- res }()
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/sync/changes?cursor=%d&wait=%s", base, cursor, wait), nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := (&http.Client{Timeout: 90 * time.Second}).Do(req)
		if err != nil {
			res.err = err
			return
		}
		defer resp.Body.Close()
		res.code = resp.StatusCode
		res.err = json.NewDecoder(resp.Body).Decode(&res.page)
	}()
	return out
}

func waitReady(t *testing.T, base, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := processtest.Get(t, base+"/readyz")
		if code == http.StatusOK && strings.Contains(string(body), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s, want %s", code, body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
