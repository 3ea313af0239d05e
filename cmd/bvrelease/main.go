// Command bvrelease builds, checks, publishes and records BitVault's releases.
//
// Exit codes: 0 success; 1 a stage failed; 2 bad usage or configuration;
// 3 image design rule violations; 4 a build is not reproducible.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/bitvault/bitvault/release/check"
	"github.com/bitvault/bitvault/release/config"
)

// Exit codes.
const (
	exitFailed         = 1
	exitUsage          = 2
	exitViolations     = 3
	exitUnreproducible = 4
)

func main() {
	// containerd's content store (used for dist/oci) logs a warning per open on
	// filesystems without fs-verity; nothing a user can act on.
	logrus.SetLevel(logrus.ErrorLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand()
	err := root.ExecuteContext(ctx)
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "bvrelease:", err)
	os.Exit(exitCode(err))
}

func exitCode(err error) int {
	var ce *config.Error
	var ue usageError
	switch {
	case errors.As(err, &ce), errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, errUnreproducible):
		return exitUnreproducible
	}
	if _, ok := check.AsFailed(err); ok {
		return exitViolations
	}
	return exitFailed
}

type usageError struct{ error }

var errUnreproducible = errors.New("not reproducible")
