// Command bitvault is the BitVault command-line client.
//
// For now it knows two commands, `version` and `help`; the commands that talk
// to a BitVault server come with later work. It is distributed as static,
// reproducible archives built by bvrelease's dist stage, which stamps the
// release version at build time:
//
//	go build -trimpath -ldflags "-X main.version=1.2.3" ./cmd/bitvault
//
// Exit codes: 0 success, 2 bad usage.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const name = "bitvault"

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `bitvault is the BitVault command-line client.

Usage:
  bitvault <command> [flags]

Commands:
  version   print the version of this binary (--output text|json)
  help      print this help

Run 'bitvault <command> --help' for a command's flags.
`

// run executes the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] == "version" {
			return versionCmd([]string{"--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	case "version", "--version":
		return versionCmd(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "bitvault: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

// versionInfo is what `bitvault version --output json` prints.
type versionInfo struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func currentVersion() versionInfo {
	return versionInfo{Name: name, Version: version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}

func versionCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	output := "text"
	fs.StringVar(&output, "output", output, "output format: text or json")
	fs.StringVar(&output, "o", output, "shorthand for --output")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: bitvault version [--output text|json]\n\nPrint the version of this binary.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bitvault version: unexpected argument %q\n", strings.Join(fs.Args(), " "))
		return exitUsage
	}
	v := currentVersion()
	switch output {
	case "text":
		fmt.Fprintf(stdout, "%s %s (%s, %s)\n", v.Name, v.Version, v.Go, v.Platform)
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			fmt.Fprintf(stderr, "bitvault version: %v\n", err)
			return exitError
		}
	default:
		fmt.Fprintf(stderr, "bitvault version: --output %q: use text or json\n", output)
		return exitUsage
	}
	return exitOK
}
