package cli

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/bitvault/bitvault/service/internal/client"
)

func shareCmd() *command {
	var role string
	var list, revoke, withMe bool
	return &command{
		name: "share", args: "PATH USER | --list PATH | --revoke PATH USER|SHARE_ID | --with-me",
		summary: "share a file or folder with a user of the tenant",
		help: `USER is an email address or a user id. Sharing again changes the role. --list shows
who a node is shared with, --revoke ends a share, --with-me lists what others
shared with you.`,
		minArgs: 0, maxArgs: 2,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&role, "role", client.ShareViewer, "viewer (read) or editor (read and write)")
			fs.BoolVar(&list, "list", false, "list the node's shares")
			fs.BoolVar(&revoke, "revoke", false, "revoke the share of USER (or SHARE_ID)")
			fs.BoolVar(&withMe, "with-me", false, "list the shares granted to you")
		},
		run: func(a *app, args []string) error {
			modes := 0
			for _, b := range []bool{list, revoke, withMe} {
				if b {
					modes++
				}
			}
			switch {
			case modes > 1:
				return usageErrorf("give one of --list, --revoke and --with-me")
			case withMe && len(args) != 0:
				return usageErrorf("--with-me takes no arguments")
			case list && len(args) != 1:
				return usageErrorf("--list takes PATH")
			case (revoke || modes == 0) && len(args) != 2:
				return usageErrorf("give PATH and USER")
			case role != client.ShareViewer && role != client.ShareEditor:
				return usageErrorf("--role %q: use viewer or editor", role)
			}
			c, err := a.authClient()
			if err != nil {
				return err
			}
			if withMe {
				shares, err := c.SharedWithMe(a.ctx)
				if err != nil {
					return err
				}
				return a.print(map[string]any{"shares": shares}, func(w io.Writer) {
					rows := make([][]string, 0, len(shares))
					for _, s := range shares {
						rows = append(rows, []string{s.Path, s.NodeType, s.Role, fmtTime(s.CreatedAt)})
					}
					table(w, []string{"PATH", "TYPE", "ROLE", "SHARED"}, rows)
				})
			}
			n, err := a.lookup(c, args[0])
			if err != nil {
				return err
			}
			if err := notRoot(n, "share"); err != nil {
				return err
			}
			switch {
			case list:
				shares, err := c.Shares(a.ctx, n.ID)
				if err != nil {
					return err
				}
				return a.print(map[string]any{"path": n.Path, "shares": shares}, func(w io.Writer) {
					rows := make([][]string, 0, len(shares))
					for _, s := range shares {
						rows = append(rows, []string{s.UserEmail, s.Role, fmtTime(s.CreatedAt), s.ID})
					}
					table(w, []string{"USER", "ROLE", "SHARED", "ID"}, rows)
				})
			case revoke:
				id := args[1]
				if !isID(id) || strings.Contains(id, "@") {
					shares, err := c.Shares(a.ctx, n.ID)
					if err != nil {
						return err
					}
					found := ""
					for _, s := range shares {
						if strings.EqualFold(s.UserEmail, args[1]) || s.UserID == args[1] || s.ID == args[1] {
							found = s.ID
							break
						}
					}
					if found == "" {
						return fmt.Errorf("%s is not shared with %s", n.Path, args[1])
					}
					id = found
				}
				if err := c.RevokeShare(a.ctx, n.ID, id); err != nil {
					return err
				}
				return a.print(map[string]any{"path": n.Path, "revoked": id}, func(w io.Writer) {
					fmt.Fprintf(w, "revoked the share of %s with %s\n", n.Path, args[1])
				})
			}
			in := client.NewShare{Role: role}
			if strings.Contains(args[1], "@") {
				in.Email = args[1]
			} else {
				in.UserID = args[1]
			}
			s, err := c.Share(a.ctx, n.ID, in)
			if err != nil {
				return err
			}
			return a.print(s, func(w io.Writer) {
				fmt.Fprintf(w, "shared %s with %s as %s\n", n.Path, s.UserEmail, s.Role)
			})
		},
	}
}

// parseExpiry reads an expiry: a duration ("36h", "7d") from now, or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return now.Add(time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, usageErrorf("--expires %q: want a duration (36h, 7d) or an RFC 3339 time", s)
}

func linkCmd() *command {
	var list, password, inline bool
	var expires, revoke string
	return &command{
		name: "link", args: "PATH | --list PATH | --revoke LINK_ID PATH",
		summary: "create a public download link to a file",
		help: `The link's URL is shown once: anyone who has it can download the file (with
--password, only who also knows the password, asked like the login password).`,
		minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&list, "list", false, "list the file's links")
			fs.StringVar(&revoke, "revoke", "", "revoke the link with this id")
			fs.BoolVar(&password, "password", false, "protect the link with a password (read from the terminal or stdin)")
			fs.StringVar(&expires, "expires", "", "expiry: a duration (36h, 7d) or an RFC 3339 time (default: until revoked)")
			fs.BoolVar(&inline, "inline", false, "let browsers show the file instead of downloading it")
		},
		run: func(a *app, args []string) error {
			if list && revoke != "" {
				return usageErrorf("give --list or --revoke, not both")
			}
			c, err := a.authClient()
			if err != nil {
				return err
			}
			n, err := a.lookup(c, args[0])
			if err != nil {
				return err
			}
			switch {
			case list:
				links, err := c.Links(a.ctx, n.ID)
				if err != nil {
					return err
				}
				return a.print(map[string]any{"path": n.Path, "links": links}, func(w io.Writer) {
					rows := make([][]string, 0, len(links))
					for _, l := range links {
						exp := "never"
						if l.ExpiresAt != nil {
							exp = fmtTime(*l.ExpiresAt)
						}
						rows = append(rows, []string{l.Prefix + "…", strconv.FormatBool(l.HasPassword), exp, fmtTime(l.CreatedAt), l.ID})
					}
					table(w, []string{"TOKEN", "PASSWORD", "EXPIRES", "CREATED", "ID"}, rows)
				})
			case revoke != "":
				if err := c.RevokeLink(a.ctx, n.ID, revoke); err != nil {
					return err
				}
				return a.print(map[string]any{"path": n.Path, "revoked": revoke}, func(w io.Writer) {
					fmt.Fprintf(w, "revoked link %s of %s\n", revoke, n.Path)
				})
			}
			var in client.NewLink
			if expires != "" {
				t, err := parseExpiry(expires, time.Now())
				if err != nil {
					return err
				}
				t = t.UTC()
				in.ExpiresAt = &t
			}
			if inline {
				f := false
				in.DownloadOnly = &f
			}
			if password {
				p, err := a.secret(a.lines(), "Link password", false)
				if err != nil {
					return err
				}
				in.Password = &p
			}
			l, err := c.CreateLink(a.ctx, n.ID, in)
			if err != nil {
				return err
			}
			res := struct {
				client.CreatedLink
				Path string `json:"path"`
			}{l, n.Path}
			res.URL = c.LinkURL(l.URL)
			return a.print(res, func(w io.Writer) { fmt.Fprintln(w, res.URL) })
		},
	}
}

func searchCmd() *command {
	var limit int
	return &command{
		name: "search", args: "QUERY...", summary: "search file and folder names (and metadata)",
		minArgs: 1, maxArgs: -1,
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&limit, "limit", 50, "at most this many results")
		},
		run: func(a *app, args []string) error {
			if limit < 1 {
				return usageErrorf("--limit must be at least 1")
			}
			c, err := a.authClient()
			if err != nil {
				return err
			}
			q := strings.Join(args, " ")
			hits := []client.SearchHit{}
			cursor := ""
			for len(hits) < limit {
				p, err := c.Search(a.ctx, q, cursor, min(limit-len(hits), 100))
				if err != nil {
					return err
				}
				hits = append(hits, p.Results...)
				if p.NextCursor == "" || len(p.Results) == 0 {
					break
				}
				cursor = p.NextCursor
			}
			return a.print(map[string]any{"query": q, "results": hits}, func(w io.Writer) {
				rows := make([][]string, 0, len(hits))
				for _, h := range hits {
					size, p := humanSize(h.Size), h.Path
					if h.Type == client.TypeFolder {
						size, p = "-", p+"/"
					}
					rows = append(rows, []string{size, fmtTime(h.UpdatedAt), p})
				}
				if len(rows) > 0 {
					table(w, []string{"SIZE", "MODIFIED", "PATH"}, rows)
				}
			})
		},
	}
}
