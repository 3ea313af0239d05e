// Package buildkitd connects to a BuildKit daemon: the one BUILDKIT_HOST names,
// or a managed buildkitd that this package starts (as root, OCI worker with
// runc) and stops again. The managed daemon keeps its state under a cache
// directory so that warm rebuilds reuse BuildKit's cache across runs.
package buildkitd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/moby/buildkit/client"
)

// Version is the pinned BuildKit release; tools/buildkit/go.mod pins the same
// (a test keeps the two equal).
const Version = "v0.34.2"

// Options say how to reach BuildKit.
type Options struct {
	// Host is a BuildKit address (unix://, tcp://, docker-container://...).
	// Empty means: start a managed daemon.
	Host string
	// StateDir holds the managed daemon's root, socket and log.
	StateDir string
	// Binary is the buildkitd to run; empty means FindBinary.
	Binary string
	// Log receives one-line notices ("started managed buildkitd ...").
	Log io.Writer
}

// Daemon is a connected BuildKit client, and the managed process if any.
type Daemon struct {
	Client  *client.Client
	Managed bool
	Addr    string

	cmd     *exec.Cmd
	done    chan error
	logFile *os.File
}

// DefaultStateDir is where a managed daemon keeps its state.
func DefaultStateDir() string {
	if d := os.Getenv("BITVAULT_BUILDKIT_STATE"); d != "" {
		return d
	}
	return filepath.Join(cacheHome(), "bitvault", "buildkitd")
}

func cacheHome() string {
	if d, err := os.UserCacheDir(); err == nil {
		return d
	}
	return os.TempDir()
}

// FindBinary locates buildkitd: $BITVAULT_BUILDKITD, then the pinned tools
// cache ($BITVAULT_TOOLS_DIR or ~/.cache/bitvault/tools)/buildkit-<Version>,
// then PATH.
func FindBinary() (string, error) {
	if p := os.Getenv("BITVAULT_BUILDKITD"); p != "" {
		return p, nil
	}
	tools := os.Getenv("BITVAULT_TOOLS_DIR")
	if tools == "" {
		tools = filepath.Join(cacheHome(), "bitvault", "tools")
	}
	p := filepath.Join(tools, "buildkit-"+Version, "buildkitd")
	if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
		return p, nil
	}
	if p, err := exec.LookPath("buildkitd"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("buildkitd %s not found (looked in $BITVAULT_BUILDKITD, %s and PATH); build it with 'scripts/tools.sh buildkit' or set BUILDKIT_HOST to a running daemon", Version, filepath.Dir(p))
}

// Connect returns a client for o.Host, or starts a managed daemon.
func Connect(ctx context.Context, o Options) (*Daemon, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Host != "" {
		c, err := client.New(ctx, o.Host)
		if err != nil {
			return nil, fmt.Errorf("connect to BuildKit at %s (BUILDKIT_HOST): %w", o.Host, err)
		}
		if err := ping(ctx, c, 10*time.Second); err != nil {
			c.Close()
			return nil, fmt.Errorf("BuildKit at %s (BUILDKIT_HOST) does not answer: %w; start buildkitd there or unset BUILDKIT_HOST to let bvrelease start its own", o.Host, err)
		}
		fmt.Fprintf(o.Log, "buildkit: using the daemon at %s (BUILDKIT_HOST)\n", o.Host)
		return &Daemon{Client: c, Addr: o.Host}, nil
	}
	return start(ctx, o)
}

// Preflight reports what a managed daemon would lack, with how to fix it.
func Preflight(binary string) error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("a managed buildkitd needs root (the OCI worker runs runc); run as root or set BUILDKIT_HOST to a running (rootless) daemon"))
	}
	if _, err := exec.LookPath("runc"); err != nil {
		errs = append(errs, errors.New("runc is not on PATH; buildkitd runs RUN steps with it: run 'apt-get install runc'"))
	}
	if binary == "" {
		if _, err := FindBinary(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func start(ctx context.Context, o Options) (*Daemon, error) {
	bin := o.Binary
	if bin == "" {
		var err error
		if bin, err = FindBinary(); err != nil {
			return nil, err
		}
	}
	if err := Preflight(bin); err != nil {
		return nil, fmt.Errorf("start managed buildkitd: %w", err)
	}
	state := o.StateDir
	if state == "" {
		state = DefaultStateDir()
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, fmt.Errorf("buildkitd state dir: %w", err)
	}
	// A unix socket path is limited to ~107 bytes: keep it short.
	sockDir, err := os.MkdirTemp("", "bvbk")
	if err != nil {
		return nil, err
	}
	sock := filepath.Join(sockDir, "buildkitd.sock")
	addr := "unix://" + sock
	logPath := filepath.Join(state, "buildkitd.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin,
		"--root", filepath.Join(state, "root"),
		"--addr", addr,
		"--oci-worker=true", "--containerd-worker=false",
		"--oci-worker-gc=true", "--oci-worker-gc-keepstorage=20000",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	d := &Daemon{Managed: true, Addr: addr, cmd: cmd, done: make(chan error, 1), logFile: logFile}
	go func() { d.done <- cmd.Wait(); close(d.done) }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			c, err := client.New(ctx, addr)
			if err == nil {
				if err = ping(ctx, c, 5*time.Second); err == nil {
					d.Client = c
					break
				}
				c.Close()
			}
		}
		select {
		case err := <-d.done:
			logFile.Close()
			return nil, fmt.Errorf("managed buildkitd exited during start-up (%v); its log is %s:\n%s", err, logPath, tail(logPath, 20))
		case <-ctx.Done():
			d.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Close()
			return nil, fmt.Errorf("managed buildkitd did not answer within 60s; its log is %s", logPath)
		}
	}
	fmt.Fprintf(o.Log, "buildkit: BUILDKIT_HOST not set; started managed buildkitd %s (pid %d, state %s)\n", Version, cmd.Process.Pid, state)
	return d, nil
}

func ping(ctx context.Context, c *client.Client, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		return errors.New("no workers")
	}
	return nil
}

// Close disconnects, and stops a managed daemon (SIGTERM, then SIGKILL after 20s).
func (d *Daemon) Close() error {
	if d.Client != nil {
		d.Client.Close()
	}
	if !d.Managed || d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	}
	if d.logFile != nil {
		d.logFile.Close()
	}
	if len(d.Addr) > len("unix://") {
		os.RemoveAll(filepath.Dir(d.Addr[len("unix://"):]))
	}
	return nil
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ") + "\n"
}
