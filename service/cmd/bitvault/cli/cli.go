// Package cli implements the bitvault command line: parsing, the commands and their output.
// Command bitvault (the parent directory) is its main package, which stamps the version.
//
// Every command takes --server (else $BITVAULT_SERVER, else the server logged in to) and
// --output text|json (-o); flags may come before or after the arguments. With --output json
// a command prints one JSON document on stdout and, on failure, {"error": {code, message,
// request_id}} on stderr. Exit codes: 0 success, 1 error, 2 bad usage, 3 authentication
// required (not logged in, session expired or revoked, wrong credentials). A login refused
// for too many failed attempts (429 rate_limited) is an error (1), not an authentication
// failure: the password may be right, and the server's message says when to try again.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/bitvault/bitvault/service/internal/client"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
	ExitAuth  = 3
)

// Environment variables.
const (
	// EnvServer is the server URL when --server is not given.
	EnvServer = "BITVAULT_SERVER"
	// EnvAPIToken, if set, authenticates every command with an API token instead of the
	// stored session.
	EnvAPIToken = "BITVAULT_API_TOKEN"
	// EnvConfigDir overrides the directory of the credentials file (default
	// os.UserConfigDir()/bitvault).
	EnvConfigDir = "BITVAULT_CONFIG_DIR"
)

// Name is the command's name.
const Name = "bitvault"

// Env is what a run of the command line gets from its process.
type Env struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the environment (nil: os.Getenv).
	Getenv func(string) string
	// Version is the binary's version.
	Version string
	// HTTPClient, if set, sends the requests (tests).
	HTTPClient *http.Client
	// StdinIsTerminal and StderrIsTerminal override the detection on *os.File (tests).
	StdinIsTerminal, StderrIsTerminal *bool
}

func (e *Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

func isTerminal(v any, override *bool) bool {
	if override != nil {
		return *override
	}
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// command is one subcommand.
type command struct {
	name    string
	args    string // synopsis of the arguments, e.g. "LOCAL REMOTE"
	summary string
	help    string // more text for --help
	// minArgs and maxArgs bound the positional arguments (maxArgs -1: any number).
	minArgs, maxArgs int
	// flags adds the command's own flags.
	flags func(fs *flag.FlagSet)
	// noAuth: the command needs no credentials.
	noAuth bool
	run    func(a *app, args []string) error
}

// commands is the command table, in the order of the usage text.
func commands() []*command {
	return []*command{
		loginCmd(), logoutCmd(), whoamiCmd(),
		lsCmd(), mkdirCmd(), putCmd(), getCmd(), mvCmd(), cpCmd(), rmCmd(), restoreCmd(), versionsCmd(),
		shareCmd(), linkCmd(), searchCmd(), syncCmd(),
		versionCmd(),
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "bitvault is the BitVault command-line client.\n\nUsage:\n  bitvault <command> [flags] [arguments]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range commands() {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	fmt.Fprintf(tw, "  help\tprint this help, or a command's ('bitvault help put')\n")
	tw.Flush()
	fmt.Fprintf(w, `
Flags of every command:
  --server URL          the server (default $%s, else the one logged in to)
  -o, --output FORMAT   text or json
Remote paths are absolute ("/docs/a.txt"; the leading "/" may be left out).

Environment: %s authenticates with an API token instead of 'bitvault login';
%s moves the credentials file (default: the user config directory).
Exit codes: 0 ok, 1 error, 2 bad usage, 3 authentication required.
`, EnvServer, EnvAPIToken, EnvConfigDir)
}

// usageError is a command-line mistake (exit 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// authError means credentials are needed (exit 3).
type authError struct{ msg string }

func (e *authError) Error() string { return e.msg }

// app is one run of a command.
type app struct {
	ctx    context.Context
	env    *Env
	cmd    *command
	output string
	server string // --server
	stdout io.Writer
	stderr io.Writer

	creds  *credentials // loaded lazily by client()
	store  *credStore
	client *client.Client
}

// Run runs the command line args and returns the exit code.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	if len(args) == 0 {
		usage(env.Stderr)
		return ExitUsage
	}
	// Flags before the command name: bitvault --server URL ls
	var pre []string
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && !isHelp(args[0]) && args[0] != "--version" {
		pre = append(pre, args[0])
		args = args[1:]
		if len(args) > 0 && !strings.Contains(pre[len(pre)-1], "=") && takesValue(pre[len(pre)-1]) {
			pre = append(pre, args[0])
			args = args[1:]
		}
	}
	if len(args) == 0 {
		fmt.Fprintf(env.Stderr, "bitvault: missing command\n\n")
		usage(env.Stderr)
		return ExitUsage
	}
	name, rest := args[0], append(pre, args[1:]...)
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c := lookupCommand(args[1]); c != nil {
				return runCommand(ctx, c, []string{"--help"}, &env)
			}
			fmt.Fprintf(env.Stderr, "bitvault help: unknown command %q\n", args[1])
			return ExitUsage
		}
		usage(env.Stdout)
		return ExitOK
	case "--version":
		name = "version"
	}
	c := lookupCommand(name)
	if c == nil {
		fmt.Fprintf(env.Stderr, "bitvault: unknown command %q\n\n", name)
		usage(env.Stderr)
		return ExitUsage
	}
	return runCommand(ctx, c, rest, &env)
}

func isHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

// takesValue says whether a global flag given before the command takes a value.
func takesValue(f string) bool {
	switch strings.TrimLeft(f, "-") {
	case "server", "output", "o":
		return true
	}
	return false
}

func lookupCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}

func runCommand(ctx context.Context, c *command, args []string, env *Env) int {
	a := &app{ctx: ctx, env: env, cmd: c, stdout: env.Stdout, stderr: env.Stderr, output: "text"}
	fs := flag.NewFlagSet("bitvault "+c.name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.StringVar(&a.server, "server", "", "server URL (default $"+EnvServer+", else the one logged in to)")
	fs.StringVar(&a.output, "output", a.output, "output format: text or json")
	fs.StringVar(&a.output, "o", a.output, "shorthand for --output")
	if c.flags != nil {
		c.flags(fs)
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bitvault %s [flags] %s\n\n%s.\n", c.name, c.args, upperFirst(c.summary))
		if c.help != "" {
			fmt.Fprintf(fs.Output(), "\n%s\n", strings.TrimSpace(c.help))
		}
		fmt.Fprintf(fs.Output(), "\nFlags:\n")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		return ExitUsage
	}
	if a.output != "text" && a.output != "json" {
		fmt.Fprintf(env.Stderr, "bitvault %s: --output %q: use text or json\n", c.name, a.output)
		return ExitUsage
	}
	if len(pos) < c.minArgs || c.maxArgs >= 0 && len(pos) > c.maxArgs {
		switch {
		case len(pos) < c.minArgs:
			fmt.Fprintf(env.Stderr, "bitvault %s: missing arguments\n", c.name)
		default:
			fmt.Fprintf(env.Stderr, "bitvault %s: unexpected argument %q\n", c.name, strings.Join(pos[c.maxArgs:], " "))
		}
		fmt.Fprintf(env.Stderr, "Usage: bitvault %s [flags] %s\n", c.name, c.args)
		return ExitUsage
	}
	return a.finish(c.run(a, pos))
}

// parseInterspersed parses flags anywhere among the arguments (until "--") and returns the
// positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// finish prints err (if any) and returns the exit code.
func (a *app) finish(err error) int {
	if err == nil {
		return ExitOK
	}
	code := ExitError
	var ue *usageError
	var ae *authError
	apiErr, isAPI := errors.AsType[*client.Error](err)
	switch {
	case errors.As(err, &ue):
		code = ExitUsage
	case errors.As(err, &ae):
		code = ExitAuth
	case client.IsUnauthenticated(err):
		code = ExitAuth
	}
	if a.output == "json" {
		body := client.Error{Code: "error", Message: err.Error()}
		switch {
		case isAPI:
			body = *apiErr
			if err != error(apiErr) {
				body.Message = err.Error() // with the command's context
			}
			if apiErr.Code == "" {
				body.Code = fmt.Sprintf("http_%d", apiErr.StatusCode)
			}
		case code == ExitUsage:
			body.Code = "usage"
		case code == ExitAuth:
			body.Code = client.CodeUnauthenticated
		}
		enc := json.NewEncoder(a.stderr)
		_ = enc.Encode(map[string]any{"error": body})
		return code
	}
	fmt.Fprintf(a.stderr, "bitvault %s: %v\n", a.cmd.name, err)
	switch code {
	case ExitUsage:
		fmt.Fprintf(a.stderr, "Usage: bitvault %s [flags] %s\n", a.cmd.name, a.cmd.args)
	case ExitAuth:
		if a.cmd.name != "login" {
			fmt.Fprintf(a.stderr, "Run 'bitvault login' to log in (or set %s).\n", EnvAPIToken)
		}
	}
	return code
}

// json prints v as the command's JSON document.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// print prints v as JSON, or calls text for the text output.
func (a *app) print(v any, text func(w io.Writer)) error {
	if a.output == "json" {
		return a.printJSON(v)
	}
	text(a.stdout)
	return nil
}

// userAgent is the User-Agent of the CLI's requests.
func (a *app) userAgent() string {
	return fmt.Sprintf("bitvault/%s (%s/%s)", a.env.Version, runtime.GOOS, runtime.GOARCH)
}

// serverURL is the server the command talks to: --server, else $BITVAULT_SERVER, else
// fallback (the logged-in one).
func (a *app) serverURL(fallback string) (string, error) {
	s := a.server
	if s == "" {
		s = a.env.getenv(EnvServer)
	}
	if s == "" {
		s = fallback
	}
	if s == "" {
		return "", usageErrorf("no server: give --server URL or set %s", EnvServer)
	}
	u, err := client.ParseServerURL(s)
	if err != nil {
		return "", usageErrorf("%v", err)
	}
	return u.String(), nil
}

// authClient returns a client authenticated with $BITVAULT_API_TOKEN or the stored session
// of the server; without either it fails with an authError.
func (a *app) authClient() (*client.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	store, err := a.credStore()
	if err != nil {
		return nil, err
	}
	creds, err := store.load()
	if err != nil {
		return nil, err
	}
	fallback := ""
	if creds != nil {
		fallback = creds.Server
	}
	server, err := a.serverURL(fallback)
	if err != nil {
		if creds == nil && a.env.getenv(EnvAPIToken) == "" {
			return nil, &authError{"not logged in"}
		}
		return nil, err
	}
	o := client.Options{HTTPClient: a.env.HTTPClient, UserAgent: a.userAgent()}
	switch {
	case a.env.getenv(EnvAPIToken) != "":
		o.APIToken = strings.TrimSpace(a.env.getenv(EnvAPIToken))
	case creds != nil && sameServer(creds.Server, server) && creds.APIToken != "":
		o.APIToken = creds.APIToken
	case creds != nil && sameServer(creds.Server, server) && creds.RefreshToken != "":
		s := creds.session()
		o.Session = &s
		o.Store = store
	case creds != nil:
		return nil, &authError{fmt.Sprintf("not logged in to %s (logged in to %s)", server, creds.Server)}
	default:
		return nil, &authError{"not logged in to " + server}
	}
	c, err := client.New(server, o)
	if err != nil {
		return nil, usageErrorf("%v", err)
	}
	a.creds, a.client = creds, c
	return c, nil
}

func sameServer(a, b string) bool {
	ua, err1 := client.ParseServerURL(a)
	ub, err2 := client.ParseServerURL(b)
	return err1 == nil && err2 == nil && strings.EqualFold(ua.Scheme+"://"+ua.Host, ub.Scheme+"://"+ub.Host) && ua.Path == ub.Path
}

func (a *app) credStore() (*credStore, error) {
	if a.store != nil {
		return a.store, nil
	}
	dir := a.env.getenv(EnvConfigDir)
	if dir == "" {
		base, err := os.UserConfigDir()
		if err != nil {
			return nil, fmt.Errorf("no directory for the credentials: %v (set %s)", err, EnvConfigDir)
		}
		dir = base + string(os.PathSeparator) + "bitvault"
	}
	a.store = &credStore{dir: dir}
	return a.store, nil
}

// table writes rows aligned in columns.
func table(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	if header != nil {
		fmt.Fprintln(tw, strings.Join(header, "\t"))
	}
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// humanSize formats a byte count.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
