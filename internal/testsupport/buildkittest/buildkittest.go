// Package buildkittest starts one managed buildkitd per test package (from
// TestMain) for tests that really build images.
//
// Such tests need root and runc. Where they are missing the tests skip and say
// why — unless BITVAULT_REQUIRE_BUILDKIT=1 (set by .ci/run), where a missing
// prerequisite fails the package instead, so CI can never pass by skipping.
package buildkittest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/bitvault/bitvault/builder/buildkitd"
)

var (
	daemon  *buildkitd.Daemon
	skipWhy string
)

// Main runs the package's tests with a managed buildkitd started once. The
// daemon's state lives under $BITVAULT_BUILDKIT_STATE/test-<pkg> (or the user
// cache dir), so BuildKit's cache survives between runs of the same package.
func Main(m *testing.M, pkg string) {
	os.Exit(run(m, pkg))
}

func run(m *testing.M, pkg string) int {
	logrus.SetLevel(logrus.ErrorLevel) // containerd's fs-verity warnings
	if err := buildkitd.Preflight(""); err != nil {
		if os.Getenv("BITVAULT_REQUIRE_BUILDKIT") == "1" {
			fmt.Fprintf(os.Stderr, "buildkittest: BITVAULT_REQUIRE_BUILDKIT=1 but: %v\n", err)
			return 1
		}
		skipWhy = err.Error()
		return m.Run()
	}
	state := filepath.Join(filepath.Dir(buildkitd.DefaultStateDir()), "buildkitd-test-"+pkg)
	d, err := buildkitd.Connect(context.Background(), buildkitd.Options{StateDir: state, Log: os.Stderr})
	if err != nil {
		fmt.Fprintf(os.Stderr, "buildkittest: %v\n", err)
		return 1
	}
	daemon = d
	code := m.Run()
	d.Close()
	return code
}

// Daemon returns the package's daemon, or skips t with the reason it is missing.
func Daemon(t testing.TB) *buildkitd.Daemon {
	t.Helper()
	if daemon == nil {
		if skipWhy == "" {
			t.Fatal("buildkittest.Main was not called from TestMain")
		}
		t.Skipf("needs BuildKit (root + runc): %s", skipWhy)
	}
	return daemon
}
