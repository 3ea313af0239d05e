// Package gobuild builds a Go program reproducibly for one target: a static
// binary (CGO_ENABLED=0) whose bytes depend only on the source, the Go
// toolchain, the target and the stamped version — not on the machine, the
// checkout's path, the time, the build cache or the git state:
//
//	GOOS=<os> GOARCH=<arch> CGO_ENABLED=0 GOFLAGS=-mod=readonly GOAMD64=v1 GOARM64=v8.0 GOEXPERIMENT= \
//	  go build -trimpath -buildvcs=false -ldflags "-s -w -buildid= -X <var>=<version>" -o <out> <main>
//
// run in the program's module directory. -trimpath drops file-system paths,
// -buildid= the content-hash build ID, -s -w the symbol table and DWARF;
// -buildvcs=false keeps git's state (a modified tree, the commit time) out of
// the binary so that it rebuilds identically from a source archive without
// .git — the version is stamped explicitly and the commit is in the release
// record. The architecture levels are pinned so that a GOAMD64/GOARM64 in the
// caller's environment cannot change the code generated. -mod=readonly never
// edits go.mod/go.sum; a module with dependencies builds offline from the module
// cache (or GOPROXY/GOFLAGS=-mod=vendor as the environment says), one with none —
// like BitVault's, standard library only — needs nothing but the toolchain.
package gobuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Options say what to build.
type Options struct {
	Dir        string // the module directory go build runs in
	Main       string // the main package, relative to Dir, e.g. ./cmd/bitvault
	Target     string // GOOS/GOARCH, e.g. darwin/arm64
	VersionVar string // the -X variable, e.g. main.version
	Version    string // the value stamped into it
	Output     string // the binary's path
	// GoCache, when set, is the build cache used (GOCACHE); a fresh directory
	// proves the binary does not come from a cache entry.
	GoCache string
	// Env is the environment the build starts from (default os.Environ()); the
	// variables that decide the output are always overridden.
	Env []string
}

// Result is one built binary.
type Result struct {
	Path    string
	SHA256  string // hex
	Size    int64
	Seconds float64
	Command string // the command line, for the record and error messages
}

var (
	targetRE  = regexp.MustCompile(`^(linux|darwin|windows|freebsd|openbsd|netbsd)/(amd64|arm64|386|arm|riscv64|ppc64le|s390x)$`)
	varRE     = regexp.MustCompile(`^[A-Za-z0-9_./-]+\.[A-Za-z_][A-Za-z0-9_]*$`)
	versionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+_-]*$`)
)

// Split parses GOOS/GOARCH.
func Split(target string) (goos, goarch string, err error) {
	if !targetRE.MatchString(target) {
		return "", "", fmt.Errorf("target %q: want GOOS/GOARCH, e.g. linux/amd64, darwin/arm64, windows/amd64", target)
	}
	goos, goarch, _ = strings.Cut(target, "/")
	return goos, goarch, nil
}

// Exe is the binary's file name on goos: name, or name.exe on windows.
func Exe(name, goos string) string {
	if goos == "windows" {
		return name + ".exe"
	}
	return name
}

// LDFlags is the -ldflags value.
func LDFlags(versionVar, version string) string {
	return "-s -w -buildid= -X " + versionVar + "=" + version
}

// Args is the go command's arguments.
func (o Options) Args() []string {
	return []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", LDFlags(o.VersionVar, o.Version), "-o", o.Output, o.Main}
}

// overridden are the variables Build always sets (an environment variable
// also beats a `go env -w` setting of the same name; the go env file's other
// settings — GOPROXY, GOPRIVATE, GOTOOLCHAIN — still apply).
var overridden = []string{"GOOS", "GOARCH", "CGO_ENABLED", "GOFLAGS", "GOAMD64", "GOARM64", "GOARM", "GO386", "GOEXPERIMENT"}

func (o Options) env() ([]string, error) {
	goos, goarch, err := Split(o.Target)
	if err != nil {
		return nil, err
	}
	base := o.Env
	if base == nil {
		base = os.Environ()
	}
	var env []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		drop := k == "GOCACHE" && o.GoCache != ""
		for _, o := range overridden {
			drop = drop || k == o
		}
		if !drop {
			env = append(env, kv)
		}
	}
	env = append(env, "GOOS="+goos, "GOARCH="+goarch, "CGO_ENABLED=0", "GOFLAGS=-mod=readonly",
		"GOAMD64=v1", "GOARM64=v8.0", "GOARM=7", "GO386=sse2", "GOEXPERIMENT=")
	if o.GoCache != "" {
		env = append(env, "GOCACHE="+o.GoCache)
	}
	return env, nil
}

// Build runs go build and hashes the binary.
func Build(ctx context.Context, o Options) (*Result, error) {
	if o.Dir == "" || o.Main == "" || o.Output == "" {
		return nil, fmt.Errorf("go build: Dir, Main and Output are required")
	}
	if !varRE.MatchString(o.VersionVar) {
		return nil, fmt.Errorf("go build: version variable %q: want a package path and a variable, e.g. main.version", o.VersionVar)
	}
	if !versionRE.MatchString(o.Version) {
		return nil, fmt.Errorf("go build: version %q: want a plain version such as 1.2.3", o.Version)
	}
	env, err := o.env()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(o.Output), 0o755); err != nil {
		return nil, err
	}
	args := o.Args()
	command := "GOOS=" + strings.Replace(o.Target, "/", " GOARCH=", 1) + " CGO_ENABLED=0 GOFLAGS=-mod=readonly go " + quote(args)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s (in %s): %w\n%s", command, o.Dir, err, strings.TrimSpace(out.String()))
	}
	sum, size, err := HashFile(o.Output)
	if err != nil {
		return nil, err
	}
	return &Result{Path: o.Output, SHA256: sum, Size: size, Seconds: time.Since(start).Seconds(), Command: command}, nil
}

// HashFile returns a file's SHA-256 (hex) and size.
func HashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// GoVersion is the toolchain's version as `go env GOVERSION` says, in dir.
func GoVersion(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "GOVERSION")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go env GOVERSION: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func quote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t\"'") {
			a = `"` + a + `"`
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
