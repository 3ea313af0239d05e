// Package s3test runs a throwaway S3 server (versitygw, POSIX backend) for the tests of one package and gives each test a fresh bucket.
//
// Use it from TestMain, around whatever else runs the tests:
//
//	func TestMain(m *testing.M) {
//		os.Exit(s3test.Main(m.Run))
//	}
//
// The server starts on the first New (tests that need none cost nothing), listening on a
// free 127.0.0.1 port with a data directory under os.TempDir() named bitvault-s3test-*, and is
// ready in well under a second; Main stops it and removes the directory. The process gets
// SIGKILL if the test binary dies (Pdeathsig), so a killed test leaves no server behind;
// directories left by such a test are removed by the next start.
//
// The binary is versitygw Version, found like the other pinned tools: $BITVAULT_VERSITYGW,
// else ${BITVAULT_TOOLS_DIR:-${XDG_CACHE_HOME:-~/.cache}/bitvault/tools}/versitygw-<Version>/versitygw
// (built by 'scripts/tools.sh versitygw' from tools/versitygw), else versitygw on PATH.
// Without it New skips the test, unless BITVAULT_REQUIRE_TOOLS=1, which makes it fail.
package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/storage"
)

// Version is the pinned versitygw release; tools/versitygw/go.mod in the repository root
// pins the same.
const Version = "v1.8.0"

// Environment variables.
const (
	// EnvBinary, if set, is the versitygw binary to run.
	EnvBinary = "BITVAULT_VERSITYGW"
	// EnvRequire set to "1" turns a missing binary into a failure instead of a skip.
	EnvRequire = "BITVAULT_REQUIRE_TOOLS"
)

// Fixed credentials and region of the test server.
const (
	AccessKey = "bitvault-test"
	SecretKey = "bitvault-test-secret-key-0123456789"
	Region    = "us-east-1"
)

const dirPrefix = "bitvault-s3test-"

// Bucket is one test's bucket on the shared server.
type Bucket struct {
	// Endpoint is the server's URL, http://127.0.0.1:PORT.
	Endpoint string
	Region   string
	Name     string
	// AccessKey and SecretKey are the server's root credentials.
	AccessKey, SecretKey string
}

// Config is the storage.S3Config for the bucket.
func (b *Bucket) Config() storage.S3Config {
	return storage.S3Config{Endpoint: b.Endpoint, Region: b.Region, Bucket: b.Name, AccessKeyID: b.AccessKey, SecretAccessKey: b.SecretKey}
}

// Store returns the S3 backend on the bucket.
func (b *Bucket) Store(t testing.TB) *storage.S3 {
	t.Helper()
	s, err := storage.NewS3(b.Config())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type harness struct {
	once sync.Once
	srv  *server
	err  error
	seq  atomic.Int64
}

var current *harness

// Main runs the tests (run is m.Run, or a function calling another harness's Main) and stops
// the server afterwards. It returns the exit code for os.Exit.
func Main(run func() int) int {
	h := &harness{}
	current = h
	code := run()
	if h.srv != nil {
		if err := h.srv.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "s3test: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// New returns a new, empty bucket on the package's server, starting it on first use.
func New(t testing.TB) *Bucket {
	t.Helper()
	h := current
	if h == nil {
		t.Fatal("s3test: call s3test.Main from TestMain")
	}
	bin, err := FindBinary()
	if err != nil {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatalf("%s=1 but %v", EnvRequire, err)
		}
		t.Skipf("skipping: %v (set %s=1 to make this a failure)", err, EnvRequire)
	}
	h.once.Do(func() {
		start := time.Now()
		h.srv, h.err = startServer(bin)
		if h.err == nil && testing.Verbose() {
			fmt.Fprintf(os.Stderr, "s3test: versitygw on %s ready in %s\n", h.srv.endpoint, time.Since(start).Round(time.Millisecond))
		}
	})
	if h.err != nil {
		t.Fatalf("s3test: %v", h.err)
	}
	b := &Bucket{Endpoint: h.srv.endpoint, Region: Region, Name: fmt.Sprintf("test-%d-%d", os.Getpid(), h.seq.Add(1)), AccessKey: AccessKey, SecretKey: SecretKey}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Store(t).CreateBucket(ctx); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return b
}

// ToolsDir is where scripts/tools.sh caches the pinned tools:
// $BITVAULT_TOOLS_DIR, else ${XDG_CACHE_HOME:-~/.cache}/bitvault/tools.
func ToolsDir() string {
	if d := os.Getenv("BITVAULT_TOOLS_DIR"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		d = os.TempDir()
	}
	return filepath.Join(d, "bitvault", "tools")
}

// FindBinary returns the versitygw binary: $BITVAULT_VERSITYGW, else
// <ToolsDir>/versitygw-<Version>/versitygw, else versitygw on PATH.
func FindBinary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		return p, nil
	}
	p := filepath.Join(ToolsDir(), "versitygw-"+Version, "versitygw")
	if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p, nil
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("versitygw %s not found (looked in $%s, %s and PATH); build it with 'scripts/tools.sh versitygw'", Version, EnvBinary, filepath.Dir(p))
}

// server is one running versitygw.
type server struct {
	dir      string
	endpoint string
	cmd      *exec.Cmd
	exited   chan struct{}
	log      *os.File
}

func startServer(bin string) (*server, error) {
	removeStale()
	dir, err := os.MkdirTemp("", dirPrefix+"*")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	// A free port may be taken before versitygw binds it: retry with another one.
	var lastErr error
	for range 5 {
		srv, err := tryStart(bin, dir, root)
		if err == nil {
			return srv, nil
		}
		lastErr = err
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

func tryStart(bin, dir, root string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "--port", addr, "--access", AccessKey, "--secret", SecretKey, "--region", Region, "-q", "posix", root)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &server{dir: dir, endpoint: "http://" + addr, cmd: cmd, exited: make(chan struct{}), log: logFile}
	go func() { _ = cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(30 * time.Second); err != nil {
		_ = cmd.Process.Kill()
		<-s.exited
		logFile.Close()
		out, _ := os.ReadFile(logFile.Name())
		return nil, fmt.Errorf("versitygw on %s: %w\n%s", addr, err, strings.TrimSpace(string(out)))
	}
	return s, nil
}

// waitReady polls until the server answers HTTP.
func (s *server) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-s.exited:
			return errors.New("exited before becoming ready")
		default:
		}
		resp, err := client.Get(s.endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *server) stop() error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.log.Close()
	return os.RemoveAll(s.dir)
}

// removeStale removes the directories of servers whose test process is gone (Pdeathsig
// has killed the servers themselves).
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			if fi, serr := os.Stat(dir); serr != nil || time.Since(fi.ModTime()) < time.Minute {
				continue
			}
		} else if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
				continue
			}
		}
		_ = os.RemoveAll(dir)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
