// Command bitvault is the BitVault command-line client: log in, list, upload, download,
// move, copy, trash and restore files, see their versions, share them, search, and sync a
// local folder (see package cli, and 'bitvault help').
//
// It is distributed as static (CGO-free), reproducible archives built by bvrelease's dist
// stage, which stamps the release version at build time:
//
//	go build -trimpath -ldflags "-X main.version=1.2.3" ./cmd/bitvault
//
// Exit codes: 0 success, 1 error, 2 bad usage, 3 authentication required.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"

	"github.com/bitvault/bitvault/service/cmd/bitvault/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK    = cli.ExitOK
	exitError = cli.ExitError
	exitUsage = cli.ExitUsage
	exitAuth  = cli.ExitAuth
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := cli.Run(ctx, os.Args[1:], cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Version: version})
	stop()
	os.Exit(code)
}

// run executes the command line args without stdin and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	return cli.Run(context.Background(), args, cli.Env{Stdout: stdout, Stderr: stderr, Version: version})
}
