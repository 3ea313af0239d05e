package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestAlive(t *testing.T) {
	if !alive(processID(os.Getpid())) {
		t.Error("this process is not alive")
	}
	for _, owner := range []string{"", "x", "0", "2147483646 1", processID(os.Getpid()) + "0"} {
		if alive(owner) {
			t.Errorf("alive(%q) = true", owner)
		}
	}
}

// TestRemoveStale simulates a killed test binary: a running cluster whose owner file names a
// process that is gone is stopped and removed by the next start; a live owner's is kept.
func TestRemoveStale(t *testing.T) {
	if reason := unavailable(); reason != "" {
		if os.Getenv(EnvRequire) == "1" {
			t.Fatal(reason)
		}
		t.Skipf("skipping: %s", reason)
	}
	bin, _ := binDir()
	c, err := startCluster()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.stop() })
	pidFile := filepath.Join(c.dir, "data", "postmaster.pid")
	if _, err := os.Stat(pidFile); err != nil {
		t.Fatalf("cluster not running: %v", err)
	}

	removeStale(bin, c.asPG)
	if _, err := os.Stat(c.dir); err != nil {
		t.Fatalf("a cluster of a live process was removed: %v", err)
	}

	// A process that has exited: its pid is not reused within this test.
	dead := os.Getpid()
	proc, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err == nil {
		dead = proc.Pid
		_, _ = proc.Wait()
	}
	if dead == os.Getpid() {
		t.Skip("cannot make a dead pid")
	}
	if err := os.WriteFile(filepath.Join(c.dir, "owner"), []byte(processID(dead)+"x"), 0o644); err != nil {
		t.Fatal(err)
	}
	postmaster := readPostmasterPid(t, pidFile)
	_ = c.super.Close(context.Background())
	c.super = nil
	removeStale(bin, c.asPG)
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("stale cluster directory still there: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(postmaster, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("postmaster %d of the stale cluster still runs", postmaster)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readPostmasterPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		pid = pid*10 + int(c-'0')
	}
	if pid == 0 {
		t.Fatalf("no pid in %s", file)
	}
	return pid
}
