// Command bvload is a load generator for a running bitvaultd (Postgres + S3 or fs storage).
//
// Load mode (default): N concurrent clients for D seconds, each looping over a weighted mix of
//
//	commit    upload + commit of a small file (POST /v1/files, PUT to the presigned URL,
//	          POST /v1/files/commit), timed end to end
//	download  GET /v1/files/{id}/content (the redirect to the presigned GET, not followed)
//	sync      GET /v1/sync/changes from the client's own cursor (a delta pull)
//	search    GET /v1/search
//
// and prints p50/p90/p99/max per operation and commits per second, as a table and as JSON.
//
// Seed mode (-seed-nodes N): bulk-inserts N files (nodes, versions, one shared blob and the
// change-journal rows) into one folder of the tenant with COPY as the schema owner, then
// times the list (first page, and a page deep into the folder), the sync pull (from cursor 0
// and from the middle of the seeded range) and search over the API, and prints EXPLAIN
// (ANALYZE, BUFFERS) of the list, child-by-name and sync queries (the service's own SQL) run
// as the app role with the tenant set.
//
// Usage (against scripts/service-dev.sh):
//
//	eval "$(scripts/service-dev.sh env)"; . ~/.local/state/bitvault/dev/secrets.env
//	go run ./internal/cmd/bvload -server http://127.0.0.1:8080 -tenant dev -email owner@example.com -password "$USER_PW" -c 50 -d 30s
//	go run ./internal/cmd/bvload ... -seed-nodes 100000
//
// The database URLs default to $BITVAULT_DATABASE_OWNER_URL and $BITVAULT_DATABASE_URL.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bitvault/bitvault/service/internal/client"
	"github.com/bitvault/bitvault/service/internal/db"
	"github.com/bitvault/bitvault/service/internal/files"
	bvsync "github.com/bitvault/bitvault/service/internal/sync"
)

type options struct {
	server, tenant, email, password string
	clients                         int
	duration                        time.Duration
	size                            int
	mix                             string
	seedNodes                       int
	samples                         int
	ownerDSN, appDSN                string
	jsonOut                         string
}

func main() {
	var o options
	flag.StringVar(&o.server, "server", envOr("BITVAULT_SERVER", "http://127.0.0.1:8080"), "bitvaultd URL")
	flag.StringVar(&o.tenant, "tenant", "dev", "tenant slug")
	flag.StringVar(&o.email, "email", "owner@example.com", "user email")
	flag.StringVar(&o.password, "password", os.Getenv("BVLOAD_PASSWORD"), "password (default $BVLOAD_PASSWORD)")
	flag.IntVar(&o.clients, "c", 50, "concurrent clients")
	flag.DurationVar(&o.duration, "d", 30*time.Second, "duration of the load")
	flag.IntVar(&o.size, "size", 4096, "max size of the uploaded files (bytes; each is 1..size)")
	flag.StringVar(&o.mix, "mix", "commit=30,download=30,sync=20,search=20", "operation weights")
	flag.IntVar(&o.seedNodes, "seed-nodes", 0, "seed mode: bulk-insert this many nodes, then measure list/sync/search")
	flag.IntVar(&o.samples, "samples", 30, "seed mode: requests per measured operation")
	flag.StringVar(&o.ownerDSN, "owner-dsn", os.Getenv("BITVAULT_DATABASE_OWNER_URL"), "schema owner DSN (seed mode)")
	flag.StringVar(&o.appDSN, "app-dsn", os.Getenv("BITVAULT_DATABASE_URL"), "app role DSN (seed mode EXPLAIN)")
	flag.StringVar(&o.jsonOut, "json", "", "also write the JSON result to this file")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "bvload:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, o options) error {
	hc := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		MaxIdleConns: 1000, MaxIdleConnsPerHost: 1000, IdleConnTimeout: 90 * time.Second,
	}}
	login, err := client.New(o.server, client.Options{HTTPClient: hc, UserAgent: "bvload"})
	if err != nil {
		return err
	}
	tok, err := login.Login(ctx, client.Credentials{Tenant: o.tenant, Email: o.email, Password: o.password})
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	sess := tok.Session()
	newClient := func() *client.Client {
		c, _ := client.New(o.server, client.Options{HTTPClient: hc, UserAgent: "bvload", Session: &sess})
		return c
	}
	if o.seedNodes > 0 {
		return seed(ctx, o, tok, newClient())
	}
	return load(ctx, o, newClient)
}

// ---- statistics ----

type recorder struct {
	mu   sync.Mutex
	lat  map[string][]time.Duration
	errs map[string]int
	last map[string]string
}

func newRecorder() *recorder {
	return &recorder{lat: map[string][]time.Duration{}, errs: map[string]int{}, last: map[string]string{}}
}

func (r *recorder) add(op string, d time.Duration, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs[op]++
		r.last[op] = err.Error()
		return
	}
	r.lat[op] = append(r.lat[op], d)
}

type opStats struct {
	Op     string  `json:"op"`
	Count  int     `json:"count"`
	Errors int     `json:"errors"`
	P50ms  float64 `json:"p50_ms"`
	P90ms  float64 `json:"p90_ms"`
	P99ms  float64 `json:"p99_ms"`
	MaxMs  float64 `json:"max_ms"`
	Target float64 `json:"target_p99_ms,omitempty"`
	OK     *bool   `json:"meets_target,omitempty"`
	Error  string  `json:"last_error,omitempty"`
}

var targets = map[string]float64{"commit": 2000, "download": 200, "sync": 500, "search": 1000}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(s []time.Duration, p float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(float64(len(s)-1) * p)
	return s[i]
}

func (r *recorder) stats(order []string) []opStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []opStats
	for _, op := range order {
		s := append([]time.Duration(nil), r.lat[op]...)
		if len(s) == 0 && r.errs[op] == 0 {
			continue
		}
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		st := opStats{Op: op, Count: len(s), Errors: r.errs[op], P50ms: ms(pct(s, .5)), P90ms: ms(pct(s, .9)), P99ms: ms(pct(s, .99)), Error: r.last[op]}
		if len(s) > 0 {
			st.MaxMs = ms(s[len(s)-1])
		}
		base, _, _ := strings.Cut(op, "@")
		base, _, _ = strings.Cut(base, "[")
		if t, ok := targets[base]; ok {
			st.Target = t
			ok := st.P99ms < t && st.Count > 0
			st.OK = &ok
		}
		out = append(out, st)
	}
	return out
}

func printTable(title string, st []opStats) {
	fmt.Println(title)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "op\tcount\terrors\tp50 ms\tp90 ms\tp99 ms\tmax ms\ttarget p99\tok\t")
	for _, s := range st {
		target, ok := "-", "-"
		if s.OK != nil {
			target, ok = fmt.Sprintf("< %.0f", s.Target), fmt.Sprint(*s.OK)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t\n", s.Op, s.Count, s.Errors, s.P50ms, s.P90ms, s.P99ms, s.MaxMs, target, ok)
	}
	tw.Flush()
	for _, s := range st {
		if s.Error != "" {
			fmt.Printf("  last %s error: %s\n", s.Op, s.Error)
		}
	}
}

func emitJSON(o options, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	if o.jsonOut != "" {
		return os.WriteFile(o.jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

// ---- load mode ----

type weighted struct {
	ops   []string
	total int
	cum   []int
}

func parseMix(s string) (weighted, error) {
	var w weighted
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		var n int
		if _, err := fmt.Sscan(v, &n); !ok || err != nil || n < 0 {
			return w, fmt.Errorf("bad -mix entry %q", part)
		}
		if _, known := targets[k]; !known {
			return w, fmt.Errorf("unknown op %q in -mix", k)
		}
		w.total += n
		w.ops = append(w.ops, k)
		w.cum = append(w.cum, w.total)
	}
	if w.total == 0 {
		return w, errors.New("empty -mix")
	}
	return w, nil
}

func (w weighted) pick(r *mrand.Rand) string {
	n := r.IntN(w.total)
	for i, c := range w.cum {
		if n < c {
			return w.ops[i]
		}
	}
	return w.ops[len(w.ops)-1]
}

type loadResult struct {
	Mode          string    `json:"mode"`
	Server        string    `json:"server"`
	Clients       int       `json:"clients"`
	DurationS     float64   `json:"duration_s"`
	Mix           string    `json:"mix"`
	Commits       int       `json:"commits"`
	CommitsPerSec float64   `json:"commits_per_sec"`
	OpsPerSec     float64   `json:"ops_per_sec"`
	Ops           []opStats `json:"ops"`
}

func load(ctx context.Context, o options, newClient func() *client.Client) error {
	mix, err := parseMix(o.mix)
	if err != nil {
		return err
	}
	run := fmt.Sprintf("bvload-%d", time.Now().Unix())
	// Warm-up: a few files so that downloads and searches have something to hit.
	c0 := newClient()
	var known []string // node ids
	var knownMu sync.Mutex
	for i := range 20 {
		res, err := upload(ctx, c0, fmt.Sprintf("/%s/seed/warm-%03d.bin", run, i), 1+mrand.IntN(o.size))
		if err != nil {
			return fmt.Errorf("warm-up upload: %w", err)
		}
		known = append(known, res.Node.ID)
	}
	pos, err := c0.SyncCursor(ctx)
	if err != nil {
		return fmt.Errorf("sync cursor: %w", err)
	}
	startCursor := pos.Cursor

	rec := newRecorder()
	var commits atomic.Int64
	lctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient()
			r := mrand.New(mrand.NewPCG(uint64(w), uint64(start.UnixNano())))
			cursor := startCursor
			for n := 0; lctx.Err() == nil; n++ {
				op := mix.pick(r)
				t0 := time.Now()
				var err error
				switch op {
				case "commit":
					var res client.CommitResult
					res, err = upload(lctx, c, fmt.Sprintf("/%s/w%03d/f%06d.bin", run, w, n), 1+r.IntN(o.size))
					if err == nil {
						commits.Add(1)
						knownMu.Lock()
						known = append(known, res.Node.ID)
						knownMu.Unlock()
					}
				case "download":
					knownMu.Lock()
					id := known[r.IntN(len(known))]
					knownMu.Unlock()
					_, err = c.ContentURL(lctx, id, "")
				case "sync":
					var ch client.Changes
					ch, err = c.Changes(lctx, cursor, 500)
					if err == nil {
						cursor = ch.NextCursor
					}
				case "search":
					_, err = c.Search(lctx, fmt.Sprintf("f%04d", r.IntN(2000)), "", 20)
				}
				if lctx.Err() != nil && err != nil {
					break // cut off by the end of the run
				}
				rec.add(op, time.Since(t0), err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	st := rec.stats([]string{"commit", "download", "sync", "search"})
	total := 0
	for _, s := range st {
		total += s.Count
	}
	res := loadResult{Mode: "load", Server: o.server, Clients: o.clients, DurationS: elapsed.Seconds(), Mix: o.mix,
		Commits: int(commits.Load()), CommitsPerSec: float64(commits.Load()) / elapsed.Seconds(), OpsPerSec: float64(total) / elapsed.Seconds(), Ops: st}
	printTable(fmt.Sprintf("bvload: %d clients, %s, mix %s: %d commits (%.1f/s), %.1f ops/s", o.clients, elapsed.Round(time.Millisecond), o.mix, res.Commits, res.CommitsPerSec, res.OpsPerSec), st)
	return emitJSON(o, res)
}

func upload(ctx context.Context, c *client.Client, path string, size int) (client.CommitResult, error) {
	b := make([]byte, size)
	_, _ = rand.Read(b)
	return c.Upload(ctx, path, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, client.UploadOptions{})
}

// ---- seed mode ----

type seedResult struct {
	Mode       string            `json:"mode"`
	Nodes      int               `json:"nodes"`
	Folder     string            `json:"folder"`
	SeedS      float64           `json:"seed_seconds"`
	RowsPerSec float64           `json:"rows_per_sec"`
	Ops        []opStats         `json:"ops"`
	Explain    map[string]string `json:"explain"`
}

func seed(ctx context.Context, o options, tok client.Tokens, c *client.Client) error {
	if o.ownerDSN == "" || o.appDSN == "" {
		return errors.New("seed mode needs -owner-dsn and -app-dsn (or BITVAULT_DATABASE_OWNER_URL and BITVAULT_DATABASE_URL)")
	}
	folder := fmt.Sprintf("/seed-%d-%d", o.seedNodes, time.Now().Unix())
	f, err := c.CreateFolder(ctx, folder)
	if err != nil {
		return fmt.Errorf("create folder: %w", err)
	}
	conn, err := pgx.Connect(ctx, o.ownerDSN)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)

	t0 := time.Now()
	fromSeq, err := seedRows(ctx, conn, tok.TenantID, tok.UserID, f.ID, o.seedNodes)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	seedTime := time.Since(t0)
	fmt.Printf("bvload: seeded %d files into %s in %s (%.0f rows/s); journal seq %d..%d\n",
		o.seedNodes, folder, seedTime.Round(time.Millisecond), float64(o.seedNodes)/seedTime.Seconds(), fromSeq+1, fromSeq+int64(o.seedNodes))

	// Timings over the API.
	rec := newRecorder()
	// A cursor deep into the folder: the name of the node in the middle.
	midName := fmt.Sprintf("file-%08d.bin", o.seedNodes/2)
	for range o.samples {
		t := time.Now()
		_, err := c.List(ctx, f.ID, "", 100)
		rec.add("list[first 100]", time.Since(t), err)

		t = time.Now()
		_, err = c.Changes(ctx, 0, 500)
		rec.add("sync@0[500]", time.Since(t), err)

		t = time.Now()
		_, err = c.Changes(ctx, fromSeq+int64(o.seedNodes/2), 500)
		rec.add("sync@mid[500]", time.Since(t), err)

		t = time.Now()
		_, err = c.Search(ctx, fmt.Sprintf("%08d", mrand.IntN(o.seedNodes)), "", 20)
		rec.add("search[exact]", time.Since(t), err)

		t = time.Now()
		_, err = c.Search(ctx, "file", "", 20)
		rec.add("search[common]", time.Since(t), err)
	}
	// The deep page through the API: the cursor is opaque, so walk to it only once per sample
	// would be too slow; instead, time the SQL below (EXPLAIN ANALYZE) for the deep page.
	st := rec.stats([]string{"list[first 100]", "sync@0[500]", "sync@mid[500]", "search[exact]", "search[common]"})

	explain, err := explainQueries(ctx, o.appDSN, tok.TenantID, f.ID, midName, fromSeq+int64(o.seedNodes/2))
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	printTable(fmt.Sprintf("bvload seed: %d nodes in one folder, %d samples each", o.seedNodes, o.samples), st)
	for _, k := range []string{"list_first_page", "list_deep_page", "child_by_name", "sync_pull_mid"} {
		fmt.Printf("\n-- EXPLAIN (ANALYZE, BUFFERS) %s (as bitvault_app, app.tenant_id set)\n%s\n", k, explain[k])
	}
	return emitJSON(o, seedResult{Mode: "seed", Nodes: o.seedNodes, Folder: folder, SeedS: seedTime.Seconds(),
		RowsPerSec: float64(o.seedNodes) / seedTime.Seconds(), Ops: st, Explain: explain})
}

func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// seedRows inserts n files under parent in one transaction as the owner (the tables force
// row-level security, so the tenant is set like the app does): one shared blob, then nodes
// (without their version), versions, the link node → version and the journal rows, all
// through COPY into a temporary table. It
// returns the journal seq before the seeded rows.
func seedRows(ctx context.Context, conn *pgx.Conn, tenant, user, parent string, n int) (int64, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1, true)", tenant); err != nil {
		return 0, err
	}
	hb := make([]byte, 32)
	_, _ = rand.Read(hb)
	hash := hex.EncodeToString(hb)
	const size = 1024
	if _, err := tx.Exec(ctx, `INSERT INTO blobs (tenant_id, hash, size, refcount, state) VALUES ($1, $2, $3, $4, 'committed')`, tenant, hash, size, n); err != nil {
		return 0, err
	}
	var seq int64
	if err := tx.QueryRow(ctx, `INSERT INTO journal_counters (tenant_id, seq) VALUES ($1, $2)
ON CONFLICT (tenant_id) DO UPDATE SET seq = journal_counters.seq + $2 RETURNING seq - $2`, tenant, n).Scan(&seq); err != nil {
		return 0, err
	}
	nodeIDs := make([]string, n)
	verIDs := make([]string, n)
	for i := range n {
		nodeIDs[i], verIDs[i] = uuid(), uuid()
	}
	now := time.Now()
	name := func(i int) string { return fmt.Sprintf("file-%08d.bin", i) }
	// COPY refuses tables with row-level security (forced on the owner too): copy into
	// temporary tables, then INSERT … SELECT under the policies.
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE seed_nodes (id uuid, name text, version_id uuid) ON COMMIT DROP`); err != nil {
		return 0, err
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"seed_nodes"}, []string{"id", "name", "version_id"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) { return []any{nodeIDs[i], name(i), verIDs[i]}, nil })); err != nil {
		return 0, fmt.Errorf("copy: %w", err)
	}
	steps := []struct {
		what, sql string
		args      []any
	}{
		{"nodes", `INSERT INTO nodes (tenant_id, id, parent_id, type, name, size, created_by, created_at, updated_at)
SELECT $1, id, $2, 'file', name, $3, $4, $5, $5 FROM seed_nodes`, []any{tenant, parent, size, user, now}},
		{"versions", `INSERT INTO versions (tenant_id, id, node_id, number, blob_hash, size, created_by, created_at)
SELECT $1, version_id, id, 1, $2, $3, $4, $5 FROM seed_nodes`, []any{tenant, hash, size, user, now}},
		{"link versions", `UPDATE nodes n SET current_version_id = s.version_id FROM seed_nodes s
WHERE n.tenant_id = $1 AND n.id = s.id`, []any{tenant}},
		{"journal", `INSERT INTO change_journal (tenant_id, seq, node_id, op, node_type, parent_id, name, version_id, blob_hash, actor_id, at)
SELECT $1, $2 + row_number() OVER (ORDER BY name), id, 'create', 'file', $3, name, version_id, $4, $5, $6 FROM seed_nodes`,
			[]any{tenant, seq, parent, hash, user, now}},
	}
	for _, st := range steps {
		t := time.Now()
		if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
			return 0, fmt.Errorf("%s: %w", st.what, err)
		}
		fmt.Fprintf(os.Stderr, "bvload: seed %s: %s\n", st.what, time.Since(t).Round(time.Millisecond))
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	// VACUUM as well as ANALYZE: the measurements start from the steady state autovacuum
	// reaches (GIN pending lists merged, visibility map set) instead of racing it.
	for _, t := range []string{"nodes", "versions", "change_journal"} {
		if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+t); err != nil {
			return 0, err
		}
	}
	return seq, nil
}

func explainQueries(ctx context.Context, appDSN, tenant, parent, midName string, midSeq int64) (map[string]string, error) {
	cfg, err := db.ParseConfig(appDSN) // bitvaultd's session settings
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	out := map[string]string{}
	q := []struct {
		key, sql string
		args     []any
	}{
		{"list_first_page", files.ListSQL(false, 101), []any{tenant, parent}},
		{"list_deep_page", files.ListSQL(true, 101), []any{tenant, parent, midName, "00000000-0000-0000-0000-000000000000"}},
		{"child_by_name", files.ChildSQL, []any{tenant, parent, midName}},
		{"sync_pull_mid", bvsync.PullSQL, []any{tenant, midSeq, 501}},
	}
	for _, e := range q {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT set_config('app.tenant_id', $1, true)", tenant); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+e.sql, e.args...)
			if err != nil {
				return err
			}
			var lines []string
			for rows.Next() {
				var l string
				if err := rows.Scan(&l); err != nil {
					return err
				}
				lines = append(lines, l)
			}
			out[e.key] = strings.Join(lines, "\n")
			return rows.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.key, err)
		}
	}
	return out, nil
}
