package cli

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/bitvault/bitvault/service/internal/client"
)

// maxSecretLen bounds a password or token read from stdin.
const maxSecretLen = 4096

// lineReader reads lines from stdin, shared by the prompts of one command.
type lineReader struct{ r *bufio.Reader }

func (a *app) lines() *lineReader {
	return &lineReader{bufio.NewReader(io.LimitReader(a.env.Stdin, 1<<20))}
}

func (l *lineReader) line() (string, error) {
	s, err := l.r.ReadString('\n')
	if err != nil && !(errors.Is(err, io.EOF) && s != "") {
		if errors.Is(err, io.EOF) {
			return "", errors.New("nothing on stdin")
		}
		return "", err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

// prompt asks for a value on the terminal (stderr) and reads it from stdin.
func (a *app) prompt(l *lineReader, label string) (string, error) {
	fmt.Fprintf(a.stderr, "%s: ", label)
	return l.line()
}

// secret reads a password or token: from the terminal without echo, else the first line of
// stdin.
func (a *app) secret(l *lineReader, label string, fromStdin bool) (string, error) {
	if !fromStdin && isTerminal(a.env.Stdin, a.env.StdinIsTerminal) {
		if f, ok := a.env.Stdin.(*os.File); ok {
			fmt.Fprintf(a.stderr, "%s: ", label)
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(a.stderr)
			if err != nil {
				return "", fmt.Errorf("read %s: %w", strings.ToLower(label), err)
			}
			return string(b), nil
		}
	}
	s, err := l.line()
	if err != nil {
		return "", fmt.Errorf("read %s from stdin: %w", strings.ToLower(label), err)
	}
	if len(s) > maxSecretLen {
		return "", fmt.Errorf("%s longer than %d bytes", strings.ToLower(label), maxSecretLen)
	}
	return s, nil
}

// loginResult is what login prints.
type loginResult struct {
	Server    string    `json:"server"`
	Tenant    string    `json:"tenant,omitempty"`
	Email     string    `json:"email,omitempty"`
	TenantID  string    `json:"tenant_id,omitempty"`
	UserID    string    `json:"user_id,omitempty"`
	Role      string    `json:"role,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	ExpiresAt time.Time `json:"session_expires_at,omitzero"`
	APIToken  bool      `json:"api_token,omitempty"`
	// CredentialsFile is where the credentials were stored.
	CredentialsFile string `json:"credentials_file"`
}

func loginCmd() *command {
	var tenant, email string
	var passwordStdin, apiToken bool
	return &command{
		name: "login", args: "", summary: "log in and store the credentials",
		help: `The password is read from the terminal without echo, or from the first line of
stdin when stdin is not a terminal (or with --password-stdin). The session's tokens
are stored in the user config directory (bitvault/credentials.json, mode 0600) and
refreshed as needed; 'bitvault logout' ends the session.

With --api-token, an API token (bvt_...) is read instead of a password, checked and stored.`,
		minArgs: 0, maxArgs: 0, noAuth: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "tenant (its slug)")
			fs.StringVar(&email, "email", "", "email address")
			fs.BoolVar(&passwordStdin, "password-stdin", false, "read the password from stdin even on a terminal")
			fs.BoolVar(&apiToken, "api-token", false, "log in with an API token (read like a password) instead")
		},
		run: func(a *app, _ []string) error {
			store, err := a.credStore()
			if err != nil {
				return err
			}
			old, err := store.load()
			if err != nil {
				old = nil // a corrupt file is replaced
			}
			fallback := ""
			if old != nil {
				fallback = old.Server
			}
			server, err := a.serverURL(fallback)
			if err != nil {
				return err
			}
			interactive := isTerminal(a.env.Stdin, a.env.StdinIsTerminal) && !passwordStdin
			l := a.lines()
			c, err := client.New(server, client.Options{HTTPClient: a.env.HTTPClient, UserAgent: a.userAgent()})
			if err != nil {
				return usageErrorf("%v", err)
			}
			var creds *credentials
			if apiToken {
				tok, err := a.secret(l, "API token", passwordStdin)
				if err != nil {
					return err
				}
				tok = strings.TrimSpace(tok)
				if tok == "" {
					return usageErrorf("empty API token")
				}
				c, err = client.New(server, client.Options{HTTPClient: a.env.HTTPClient, UserAgent: a.userAgent(), APIToken: tok})
				if err != nil {
					return err
				}
				// Any authenticated call checks the token; a token without files:read is
				// still valid (403).
				if _, err := c.List(a.ctx, "", "", 1); err != nil && !client.IsCode(err, client.CodeInsufficientScope) && !client.IsCode(err, client.CodePermissionDenied) {
					return err
				}
				creds = &credentials{Server: server, APIToken: tok}
			} else {
				if tenant == "" || email == "" {
					if !interactive {
						return usageErrorf("--tenant and --email are required when stdin is not a terminal")
					}
					if tenant == "" {
						if tenant, err = a.prompt(l, "Tenant"); err != nil {
							return err
						}
					}
					if email == "" {
						if email, err = a.prompt(l, "Email"); err != nil {
							return err
						}
					}
				}
				tenant, email = strings.TrimSpace(tenant), strings.TrimSpace(email)
				if tenant == "" || email == "" {
					return usageErrorf("tenant and email must not be empty")
				}
				password, err := a.secret(l, "Password", passwordStdin)
				if err != nil {
					return err
				}
				if password == "" {
					return usageErrorf("empty password")
				}
				t, err := c.Login(a.ctx, client.Credentials{Tenant: tenant, Email: email, Password: password})
				if err != nil {
					if client.IsUnauthenticated(err) {
						return &authError{fmt.Sprintf("login to %s failed: %v", server, err)}
					}
					return err
				}
				creds = &credentials{
					Server: server, Tenant: tenant, Email: email, TenantID: t.TenantID, UserID: t.UserID, Role: t.Role, SessionID: t.SessionID,
					AccessToken: t.AccessToken, ExpiresAt: t.ExpiresAt, RefreshToken: t.RefreshToken, RefreshExpiresAt: t.RefreshExpiresAt,
				}
			}
			// Replacing another session: end it first (best effort).
			if old != nil && old.RefreshToken != "" {
				if oc, err := client.New(old.Server, client.Options{HTTPClient: a.env.HTTPClient, UserAgent: a.userAgent(), Session: new(old.session())}); err == nil {
					_ = oc.Logout(a.ctx)
				}
			}
			if err := store.save(creds); err != nil {
				return err
			}
			res := loginResult{Server: server, Tenant: creds.Tenant, Email: creds.Email, TenantID: creds.TenantID, UserID: creds.UserID,
				Role: creds.Role, SessionID: creds.SessionID, ExpiresAt: creds.RefreshExpiresAt, APIToken: creds.APIToken != "", CredentialsFile: store.path()}
			return a.print(res, func(w io.Writer) {
				if res.APIToken {
					fmt.Fprintf(w, "Logged in to %s with an API token.\n", server)
					return
				}
				fmt.Fprintf(w, "Logged in to %s as %s (tenant %s, role %s).\n", server, creds.Email, creds.Tenant, creds.Role)
			})
		},
	}
}

func logoutCmd() *command {
	return &command{
		name: "logout", summary: "end the session and delete the stored credentials", noAuth: true,
		minArgs: 0, maxArgs: 0,
		run: func(a *app, _ []string) error {
			store, err := a.credStore()
			if err != nil {
				return err
			}
			creds, err := store.load()
			if err != nil {
				_ = store.remove()
				return err
			}
			res := struct {
				Server    string `json:"server,omitempty"`
				LoggedOut bool   `json:"logged_out"`
				Warning   string `json:"warning,omitempty"`
			}{}
			if creds != nil {
				res.Server, res.LoggedOut = creds.Server, true
				if creds.RefreshToken != "" {
					c, err := client.New(creds.Server, client.Options{HTTPClient: a.env.HTTPClient, UserAgent: a.userAgent(), Session: new(creds.session())})
					if err == nil {
						err = c.Logout(a.ctx)
					}
					if err != nil && !client.IsUnauthenticated(err) {
						res.Warning = "the server could not end the session: " + err.Error()
					}
				}
				if err := store.remove(); err != nil {
					return err
				}
			}
			return a.print(res, func(w io.Writer) {
				if res.Warning != "" {
					fmt.Fprintf(a.stderr, "bitvault logout: warning: %s\n", res.Warning)
				}
				if !res.LoggedOut {
					fmt.Fprintln(w, "Not logged in.")
					return
				}
				fmt.Fprintf(w, "Logged out of %s.\n", res.Server)
			})
		},
	}
}

func whoamiCmd() *command {
	return &command{
		name: "whoami", summary: "show who is logged in, where", minArgs: 0, maxArgs: 0,
		run: func(a *app, _ []string) error {
			c, err := a.authClient()
			if err != nil {
				return err
			}
			// Check that the credentials still work.
			if _, err := c.List(a.ctx, "", "", 1); err != nil && !client.IsCode(err, client.CodeInsufficientScope) && !client.IsCode(err, client.CodePermissionDenied) {
				return err
			}
			res := loginResult{Server: c.BaseURL()}
			if a.creds != nil && sameServer(a.creds.Server, c.BaseURL()) {
				res = loginResult{Server: c.BaseURL(), Tenant: a.creds.Tenant, Email: a.creds.Email, TenantID: a.creds.TenantID,
					UserID: a.creds.UserID, Role: a.creds.Role, SessionID: a.creds.SessionID, ExpiresAt: a.creds.RefreshExpiresAt, APIToken: a.creds.APIToken != ""}
				if st, err := a.credStore(); err == nil {
					res.CredentialsFile = st.path()
				}
			}
			if a.env.getenv(EnvAPIToken) != "" {
				res = loginResult{Server: c.BaseURL(), APIToken: true}
			}
			return a.print(res, func(w io.Writer) {
				switch {
				case res.APIToken:
					fmt.Fprintf(w, "API token on %s\n", res.Server)
				default:
					fmt.Fprintf(w, "%s (tenant %s, role %s) on %s\n", res.Email, res.Tenant, res.Role, res.Server)
				}
			})
		},
	}
}

// versionInfo is what `bitvault version --output json` prints.
type versionInfo struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

func versionCmd() *command {
	return &command{
		name: "version", args: "[--output text|json]", summary: "print the version of this binary", noAuth: true,
		minArgs: 0, maxArgs: 0,
		run: func(a *app, _ []string) error {
			v := versionInfo{Name: Name, Version: a.env.Version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
			return a.print(v, func(w io.Writer) {
				fmt.Fprintf(w, "%s %s (%s, %s)\n", v.Name, v.Version, v.Go, v.Platform)
			})
		},
	}
}
