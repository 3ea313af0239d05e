// Package tooltest runs the pinned external tools (tools/: cosign, kyverno, …) in tests:
// find the binary or skip, and run it sealed off from the machine's configuration.
package tooltest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Binary returns the tool find locates, or skips the test (fails it with
// BITVAULT_REQUIRE_TOOLS=1) when it has not been built.
func Binary(t testing.TB, find func() (string, error)) string {
	t.Helper()
	bin, err := find()
	if err == nil {
		return bin
	}
	if os.Getenv("BITVAULT_REQUIRE_TOOLS") == "1" {
		t.Fatal("BITVAULT_REQUIRE_TOOLS=1 but " + err.Error())
	}
	t.Skip("skipping: " + err.Error())
	return ""
}

// Cmd says how to run a tool: in Dir ("" = the test's package directory), with Env added to a
// sealed environment (PATH only, and fresh HOME, DOCKER_CONFIG, TUF_ROOT and TMPDIR: nothing
// reads or writes ~/.sigstore or ~/.docker), for at most Timeout (default 3 minutes).
type Cmd struct {
	Dir     string
	Env     []string
	Timeout time.Duration
}

// Run runs bin with args and returns its exit status, stdout and stderr.
func (c Cmd) Run(t testing.TB, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	if c.Timeout == 0 {
		c.Timeout = 3 * time.Minute
	}
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), c.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = c.Dir
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(tmp, "home"),
		"DOCKER_CONFIG=" + filepath.Join(tmp, "docker"),
		"TUF_ROOT=" + filepath.Join(tmp, "tuf"),
		"TMPDIR=" + tmp,
	}, c.Env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%s %s: %v", filepath.Base(bin), strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %s: timed out\n%s%s", filepath.Base(bin), strings.Join(args, " "), errOut.String(), out.String())
	}
	return code, out.String(), errOut.String()
}
