// Package processtest builds a command of this module and runs it as a child process, for tests that exercise real signals.
package processtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Build compiles the main package in dir (e.g. ".") into a temporary directory, with extra
// go build flags, and returns the binary's path. It skips the test when no go command is on
// PATH (it always is under 'go test').
func Build(t *testing.T, dir string, flags ...string) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("skipping: no go command on PATH to build the binary: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "bin")
	args := append([]string{"build", "-o", bin}, flags...)
	args = append(args, dir)
	cmd := exec.Command(goCmd, args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}
	return bin
}

// Process is a started binary whose stdout is read as JSON log lines.
type Process struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr bytes.Buffer

	mu    sync.Mutex
	lines []map[string]any
	bad   []string
	addr  chan string

	done    chan struct{}
	waitErr error
}

// Start runs bin with exactly env as its environment and reads its stdout. The process is
// killed at the end of the test if it is still running.
func Start(t *testing.T, bin string, env ...string) *Process {
	t.Helper()
	p := &Process{t: t, addr: make(chan string, 1), done: make(chan struct{})}
	p.cmd = exec.Command(bin)
	p.cmd.Env = env
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go p.read(stdout)
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *Process) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		p.mu.Lock()
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			p.bad = append(p.bad, sc.Text())
		} else {
			p.lines = append(p.lines, m)
			if m["msg"] == "listening" {
				if a, ok := m["addr"].(string); ok {
					select {
					case p.addr <- a:
					default:
					}
				}
			}
		}
		p.mu.Unlock()
	}
	p.waitErr = p.cmd.Wait()
	close(p.done)
}

// Addr waits for the "listening" log line and returns its address.
func (p *Process) Addr(timeout time.Duration) string {
	p.t.Helper()
	select {
	case a := <-p.addr:
		return a
	case <-p.done:
		p.t.Fatalf("process exited before listening: %v\nstdout: %v\nstderr: %s", p.waitErr, p.Lines(), p.stderr.String())
	case <-time.After(timeout):
		p.t.Fatalf("no \"listening\" log line within %s", timeout)
	}
	return ""
}

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// Wait waits up to timeout for the process to exit and returns its exit code.
func (p *Process) Wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("process did not exit within %s", timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// Lines returns the JSON log lines read so far.
func (p *Process) Lines() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.lines...)
}

// CheckOnlyJSON fails the test if the process printed anything but JSON lines on stdout, or
// anything at all on stderr. Call it after Wait.
func (p *Process) CheckOnlyJSON() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bad) > 0 {
		p.t.Errorf("stdout lines that are not JSON: %q", p.bad)
	}
	if p.stderr.Len() > 0 {
		p.t.Errorf("stderr is not empty: %q", p.stderr.String())
	}
}

// HasMessage reports whether a log line with msg was printed.
func (p *Process) HasMessage(msg string) bool {
	for _, l := range p.Lines() {
		if l["msg"] == msg {
			return true
		}
	}
	return false
}

// Get performs GET url with a short timeout and returns the status code and body.
func Get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, b
}
