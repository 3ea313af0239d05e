// Package cosigntest runs the pinned upstream cosign binary (tools/cosign) in tests.
package cosigntest

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

	"github.com/bitvault/bitvault/attest/scan"
)

// Binary returns the pinned cosign binary, or skips the test (fails it with
// BITVAULT_REQUIRE_TOOLS=1) when it has not been built.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := scan.FindCosign()
	if err == nil {
		return bin
	}
	if os.Getenv("BITVAULT_REQUIRE_TOOLS") == "1" {
		t.Fatal("BITVAULT_REQUIRE_TOOLS=1 but " + err.Error())
	}
	t.Skip("skipping: " + err.Error())
	return ""
}

// Run runs the cosign binary with args in a sealed environment: HOME, TUF_ROOT and
// DOCKER_CONFIG are fresh temp dirs (nothing reads or writes ~/.sigstore or ~/.docker), and
// SIGSTORE_CT_LOG_PUBLIC_KEY_FILE names a never-read file so that `--key` does not try to
// fetch Sigstore's TUF root. It returns the exit status and stdout, stderr.
func Run(t testing.TB, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return RunEnv(t, bin, nil, args...)
}

// RunEnv is Run with extra environment variables (KEY=value), e.g.
// SIGSTORE_REKOR_PUBLIC_KEY for the transparency log to trust.
func RunEnv(t testing.TB, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(tmp, "home"),
		"TUF_ROOT=" + filepath.Join(tmp, "tuf"),
		"DOCKER_CONFIG=" + filepath.Join(tmp, "docker"),
		"SIGSTORE_CT_LOG_PUBLIC_KEY_FILE=" + filepath.Join(tmp, "unused.pem"),
		"TMPDIR=" + tmp,
	}
	cmd.Env = append(cmd.Env, env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("cosign %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("cosign %s: timed out\n%s", strings.Join(args, " "), errOut.String())
	}
	return code, out.String(), errOut.String()
}
