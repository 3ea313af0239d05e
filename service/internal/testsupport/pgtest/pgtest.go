// Package pgtest runs a throwaway PostgreSQL cluster for the tests of one package and gives each test a fresh database.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) {
//		os.Exit(pgtest.Main(m, pgtest.Options{Template: func(ctx context.Context, ownerDSN string) error {
//			return migrate(ctx, ownerDSN) // prepare the template every New database is copied from
//		}}))
//	}
//
// The cluster starts on the first New or NewEmpty (so tests that need no database cost
// nothing), from the PostgreSQL binaries under /usr/lib/postgresql/<version>/bin (or
// $BITVAULT_PG_BIN), on a free 127.0.0.1 port with fsync off, in a directory under
// os.TempDir() named bitvault-pgtest-*. As root, initdb and pg_ctl run as the postgres user
// through runuser. pg_ctl detaches the server, so a killed test binary leaves its cluster
// running: every start first stops and removes the clusters whose owning test process is gone.
// Main stops the cluster with "pg_ctl stop -m immediate" and removes its directory.
//
// Roles: the bootstrap superuser "postgres" (SuperDSN, for fixtures only: it bypasses
// row-level security), OwnerRole, a non-superuser that owns every test database and runs
// the migrations, and AppRole, the non-owner role the application connects as, which the
// migrations create (its DSN works once they have run).
//
// Without PostgreSQL binaries (or, as root, without a postgres user) New skips the test,
// unless BITVAULT_REQUIRE_POSTGRES=1, which makes Main fail instead.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Role names. AppRole must match the role the migrations create.
const (
	SuperRole = "postgres"
	OwnerRole = "bitvault_owner"
	AppRole   = "bitvault_app"
)

// EnvRequire set to "1" turns a missing PostgreSQL into a failure instead of skipped tests.
const EnvRequire = "BITVAULT_REQUIRE_POSTGRES"

// EnvBin, if set, is the directory holding initdb and pg_ctl.
const EnvBin = "BITVAULT_PG_BIN"

// dirPrefix names the cluster directories in os.TempDir(); stale ones are found by it.
const dirPrefix = "bitvault-pgtest-"

// templateDB is the database New copies.
const templateDB = "bitvault_template"

// Options configure Main.
type Options struct {
	// Template, if set, prepares the template database that New copies, connecting with the
	// owner role's DSN (typically: apply the migrations). Without it, New is NewEmpty.
	Template func(ctx context.Context, ownerDSN string) error
}

// DB is one test's database.
type DB struct {
	// Name is the database name.
	Name string
	// SuperDSN connects as the superuser, which bypasses row-level security: fixtures only.
	SuperDSN string
	// OwnerDSN connects as OwnerRole, which owns the database (and runs the migrations).
	OwnerDSN string
	// AppDSN connects as AppRole, the application's non-owner role.
	AppDSN string
}

// Pool opens a pgx pool on dsn, closed when the test ends.
func Pool(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// harness is the per-package state Main sets up; tests reach it through New.
type harness struct {
	opts Options

	once    sync.Once
	cluster *cluster
	err     error // start error: tests fail (or skip, see skip)
	skip    string

	seq atomic.Int64
}

var current *harness

// Main runs the tests of a package (call it from TestMain) and stops the cluster afterwards.
// It returns the exit code for os.Exit.
func Main(m *testing.M, opts Options) int {
	h := &harness{opts: opts}
	if reason := unavailable(); reason != "" {
		if os.Getenv(EnvRequire) == "1" {
			fmt.Fprintf(os.Stderr, "pgtest: PostgreSQL is required (%s=1) but %s\n", EnvRequire, reason)
			return 1
		}
		h.skip = reason
	}
	current = h
	code := m.Run()
	if h.cluster != nil {
		if err := h.cluster.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// New returns a fresh database copied from the template (see Options.Template).
func New(t testing.TB) *DB {
	t.Helper()
	h := ready(t)
	if h.opts.Template == nil {
		return h.create(t, "template1")
	}
	return h.create(t, templateDB)
}

// NewEmpty returns a fresh database without the template's content (for migration tests).
func NewEmpty(t testing.TB) *DB {
	t.Helper()
	return ready(t).create(t, "template1")
}

func ready(t testing.TB) *harness {
	t.Helper()
	h := current
	if h == nil {
		t.Fatal("pgtest: call pgtest.Main from TestMain")
	}
	if h.skip != "" {
		t.Skipf("skipping: %s (set %s=1 to make this a failure)", h.skip, EnvRequire)
	}
	h.once.Do(func() {
		start := time.Now()
		h.cluster, h.err = startCluster()
		if h.err == nil && h.opts.Template != nil {
			h.err = h.cluster.prepareTemplate(h.opts.Template)
		}
		if h.err == nil && testing.Verbose() {
			fmt.Fprintf(os.Stderr, "pgtest: cluster on port %d ready in %s\n", h.cluster.port, time.Since(start).Round(time.Millisecond))
		}
	})
	if h.err != nil {
		t.Fatalf("pgtest: %v", h.err)
	}
	return h
}

func (h *harness) create(t testing.TB, template string) *DB {
	t.Helper()
	name := fmt.Sprintf("test_%d", h.seq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := h.cluster
	if err := c.superExec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s OWNER %s", name, template, OwnerRole)); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	return &DB{Name: name, SuperDSN: c.dsn(SuperRole, name), OwnerDSN: c.dsn(OwnerRole, name), AppDSN: c.dsn(AppRole, name)}
}

// cluster is one running PostgreSQL server.
type cluster struct {
	bin   string
	dir   string // owned by postgres when running as root
	port  int
	asPG  bool // run the tools through runuser -u postgres
	super *pgx.Conn
	mu    sync.Mutex // guards super
}

func (c *cluster) dsn(role, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", role, c.port, db)
}

func (c *cluster) superExec(ctx context.Context, sql string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.super.Exec(ctx, sql)
	return err
}

// prepareTemplate creates the template database and lets fn fill it.
func (c *cluster) prepareTemplate(fn func(ctx context.Context, ownerDSN string) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.superExec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s", templateDB, OwnerRole)); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	if err := fn(ctx, c.dsn(OwnerRole, templateDB)); err != nil {
		return fmt.Errorf("prepare template database: %w", err)
	}
	return nil
}

// unavailable says why no cluster can be started here, or "".
func unavailable() string {
	if _, err := binDir(); err != nil {
		return err.Error()
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			return "running as root and there is no postgres user to run PostgreSQL as (apt-get install postgresql creates it)"
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			return "running as root and runuser is not on PATH"
		}
	}
	return ""
}

// binDir finds the directory with initdb and pg_ctl: $BITVAULT_PG_BIN, else the newest
// /usr/lib/postgresql/<version>/bin, preferring 15.
func binDir() (string, error) {
	has := func(dir string) bool {
		for _, tool := range []string{"initdb", "pg_ctl", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, tool)); err != nil {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv(EnvBin); dir != "" {
		if !has(dir) {
			return "", fmt.Errorf("%s=%s has no initdb, pg_ctl and postgres", EnvBin, dir)
		}
		return dir, nil
	}
	if dir := "/usr/lib/postgresql/15/bin"; has(dir) {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	return "", errors.New("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// startCluster removes stale clusters, then creates and starts a new one.
func startCluster() (*cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	asPG := os.Geteuid() == 0
	removeStale(bin, asPG)

	dir, err := os.MkdirTemp("", dirPrefix+"*")
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin, dir: dir, asPG: asPG}
	// Claim the directory first, so that a concurrent removeStale leaves it alone.
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(processID(os.Getpid())), 0o644); err != nil {
		return nil, c.fail(err)
	}
	if asPG {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, c.fail(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, c.fail(err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := c.run("initdb", "-D", data, "-A", "trust", "-U", SuperRole, "-N", "-E", "UTF8", "--no-locale"); err != nil {
		return nil, c.fail(fmt.Errorf("initdb: %w\n%s", err, out))
	}

	// A free port may be taken before the server binds it (other packages start clusters
	// concurrently): retry with another one.
	for attempt := 1; ; attempt++ {
		c.port, err = freePort()
		if err != nil {
			return nil, c.fail(err)
		}
		opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", c.port, dir)
		out, err := c.run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", opts, "start")
		if err == nil {
			break
		}
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		if attempt < 5 && bytes.Contains(log, []byte("could not bind")) {
			continue
		}
		return nil, c.fail(fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c.super, err = pgx.Connect(ctx, c.dsn(SuperRole, "postgres"))
	if err != nil {
		return nil, c.fail(fmt.Errorf("connect as %s: %w", SuperRole, err))
	}
	// The owner may create roles (the migrations create the app role) but is no superuser,
	// so that it is subject to FORCE ROW LEVEL SECURITY like in production.
	if _, err := c.super.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN NOSUPERUSER CREATEROLE NOBYPASSRLS", OwnerRole)); err != nil {
		return nil, c.fail(fmt.Errorf("create role %s: %w", OwnerRole, err))
	}
	return c, nil
}

// fail stops and removes a cluster that could not be started, and returns err.
func (c *cluster) fail(err error) error {
	_ = c.stop()
	return err
}

// stop stops the server at once (its data is thrown away) and removes the directory.
func (c *cluster) stop() error {
	if c.super != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = c.super.Close(ctx)
		cancel()
	}
	var errs []error
	data := filepath.Join(c.dir, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
		if out, err := c.run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"); err != nil {
			errs = append(errs, fmt.Errorf("pg_ctl stop %s: %w\n%s", data, err, out))
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// run runs a PostgreSQL tool, as the postgres user when running as root.
func (c *cluster) run(tool string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, tool)
	var cmd *exec.Cmd
	if c.asPG {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = os.TempDir()
	// The server logs to -l's file: no pipe of ours stays open in the detached postmaster.
	return cmd.CombinedOutput()
}

// removeStale stops and removes the clusters left by test processes that no longer run.
func removeStale(bin string, asPG bool) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		owner, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			// Not claimed yet (being created right now) or not ours: leave young ones alone.
			if fi, serr := os.Stat(dir); serr != nil || time.Since(fi.ModTime()) < time.Minute {
				continue
			}
		} else if alive(string(owner)) {
			continue
		}
		c := &cluster{bin: bin, dir: dir, asPG: asPG}
		_ = c.stop()
	}
}

// processID identifies a process by pid and start time, so that a reused pid is not
// mistaken for the owner.
func processID(pid int) string {
	return strconv.Itoa(pid) + " " + startTime(pid)
}

func alive(owner string) bool {
	pidText, _, _ := strings.Cut(strings.TrimSpace(owner), " ")
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	return processID(pid) == strings.TrimSpace(owner)
}

// startTime is field 22 of /proc/<pid>/stat ("" where there is no /proc).
func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return ""
	}
	return fields[19]
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
