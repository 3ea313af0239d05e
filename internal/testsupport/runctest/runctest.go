// Package runctest runs an image's root filesystem with runc the way a
// hardened Kubernetes pod would: as 65532:65532, read-only root, a tmpfs /tmp,
// no capabilities, no new privileges, and containerd's default seccomp profile
// (what RuntimeDefault means on a containerd node). The container shares the
// host network namespace so a test can reach it on 127.0.0.1.
//
// It needs root and runc; amd64 images only (no emulation here).
package runctest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"

	"testing"
	"time"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Container is a running container.
type Container struct {
	ID     string
	Output *bytes.Buffer
	root   string
	cmd    *exec.Cmd
	done   chan error
}

// FreePort returns a TCP port free on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start unpacks img and runs its entrypoint+cmd with extra environment.
func Start(t testing.TB, img v1.Image, env ...string) *Container {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("runc needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc not installed: apt-get install runc")
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	if err := unpack(img, rootfs); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	args := append(append([]string{}, cfg.Config.Entrypoint...), cfg.Config.Cmd...)
	if len(args) == 0 {
		t.Fatal("image has no entrypoint or cmd")
	}
	cwd := cfg.Config.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	spec := Spec(args, append(append([]string{}, cfg.Config.Env...), env...), cwd)
	data, _ := json.MarshalIndent(spec, "", " ")
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Container{ID: fmt.Sprintf("bvtest-%d", time.Now().UnixNano()), Output: &bytes.Buffer{}, root: filepath.Join(bundle, "runc-state"), done: make(chan error, 1)}
	c.cmd = exec.Command("runc", "--root", c.root, "run", "--bundle", bundle, c.ID)
	c.cmd.Stdout, c.cmd.Stderr = c.Output, c.Output
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("runc run: %v", err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(c.Stop)
	return c
}

// Spec is the hardened runtime spec.
func Spec(args, env []string, cwd string) *specs.Spec {
	s := &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			User:            specs.User{UID: 65532, GID: 65532},
			Args:            args,
			Env:             env,
			Cwd:             cwd,
			NoNewPrivileges: true,
			Capabilities:    &specs.LinuxCapabilities{}, // all dropped
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Root:     &specs.Root{Path: "rootfs", Readonly: true},
		Hostname: "runctest",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: "/etc/resolv.conf", Options: []string{"rbind", "ro"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{{Type: "pid"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}},
			MaskedPaths: []string{"/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
				"/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	s.Linux.Seccomp = seccomp.DefaultProfile(s)
	return s
}

// WaitHTTP polls url until it answers with want, the container dies, or 30s pass.
func (c *Container) WaitHTTP(t testing.TB, url string, want int) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		select {
		case err := <-c.done:
			t.Fatalf("container exited (%v) before %s answered; output:\n%s", err, url, c.Output)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			cancel()
			if resp.StatusCode == want {
				return body
			}
			last = fmt.Sprintf("status %d: %s", resp.StatusCode, body)
		} else {
			cancel()
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d within 30s (last: %s); output:\n%s", url, want, last, c.Output)
	return nil
}

// Stop kills and deletes the container.
func (c *Container) Stop() {
	exec.Command("runc", "--root", c.root, "kill", c.ID, "KILL").Run()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
	}
	exec.Command("runc", "--root", c.root, "delete", "-f", c.ID).Run()
}

// unpack writes the flattened filesystem of img into dir.
func unpack(img v1.Image, dir string) error {
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean("/" + h.Name)
		if name == "/" {
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(h.Mode).Perm() | os.FileMode(h.Mode)&(os.ModeSticky)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			os.Chmod(p, os.FileMode(h.Mode)&0o7777)
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			f.Close()
			os.Chmod(p, os.FileMode(h.Mode)&0o7777)
		case tar.TypeSymlink:
			os.Remove(p)
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		case tar.TypeLink:
			os.Remove(p)
			if err := os.Link(filepath.Join(dir, filepath.Clean("/"+h.Linkname)), p); err != nil {
				return err
			}
		default:
			continue
		}
		if h.Typeflag != tar.TypeSymlink {
			os.Lchown(p, h.Uid, h.Gid)
		}
	}
}
