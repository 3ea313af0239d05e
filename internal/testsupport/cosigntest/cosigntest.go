// Package cosigntest runs the pinned upstream cosign binary (tools/cosign) in tests.
package cosigntest

import (
	"path/filepath"
	"testing"

	"github.com/bitvault/bitvault/attest/scan"
	"github.com/bitvault/bitvault/internal/testsupport/tooltest"
)

// Binary returns the pinned cosign binary, or skips the test (fails it with
// BITVAULT_REQUIRE_TOOLS=1) when it has not been built.
func Binary(t testing.TB) string {
	t.Helper()
	return tooltest.Binary(t, scan.FindCosign)
}

// Run runs the cosign binary with args in a sealed environment (tooltest.Cmd), with
// SIGSTORE_CT_LOG_PUBLIC_KEY_FILE naming a never-read file so that `--key` does not try to
// fetch Sigstore's TUF root. It returns the exit status and stdout, stderr.
func Run(t testing.TB, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return RunEnv(t, bin, nil, args...)
}

// RunEnv is Run with extra environment variables (KEY=value), e.g.
// SIGSTORE_REKOR_PUBLIC_KEY for the transparency log to trust.
func RunEnv(t testing.TB, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	unused := filepath.Join(t.TempDir(), "unused.pem")
	return tooltest.Cmd{Env: append([]string{"SIGSTORE_CT_LOG_PUBLIC_KEY_FILE=" + unused}, env...)}.Run(t, bin, args...)
}
