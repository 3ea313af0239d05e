package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bitvault/bitvault/service/internal/client"
)

// timeFormat is how times are shown in the text output (local time).
const timeFormat = "2006-01-02 15:04"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(timeFormat)
}

// uuidRE matches node, version and other ids.
var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isID(s string) bool { return uuidRE.MatchString(s) }

// lookup resolves a remote path (or a node id) to its live node.
func (a *app) lookup(c *client.Client, p string) (client.Node, error) {
	if isID(p) {
		return c.Node(a.ctx, p)
	}
	return c.Lookup(a.ctx, p)
}

// notRoot refuses the root folder as the argument of a command that changes a node.
func notRoot(n client.Node, what string) error {
	if n.ID == "" {
		return usageErrorf("cannot %s the root folder", what)
	}
	return nil
}

// nodeRows renders nodes as a listing.
func nodeRows(nodes []client.Node) [][]string {
	rows := make([][]string, 0, len(nodes))
	for _, n := range nodes {
		size, name := humanSize(n.Size), n.Name
		if n.IsFolder() {
			size, name = "-", name+"/"
		}
		rows = append(rows, []string{size, fmtTime(n.UpdatedAt), name})
	}
	return rows
}

// listing is what ls prints.
type listing struct {
	Path  string        `json:"path,omitempty"`
	Nodes []client.Node `json:"nodes"`
}

func lsCmd() *command {
	var trash bool
	return &command{
		name: "ls", args: "[PATH]", summary: "list a folder (default /), or show a file",
		help:    "With --trash, list the trash instead: the nodes put there by 'bitvault rm', most recent first.",
		minArgs: 0, maxArgs: 1,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&trash, "trash", false, "list the trash")
		},
		run: func(a *app, args []string) error {
			c, err := a.authClient()
			if err != nil {
				return err
			}
			if trash {
				if len(args) > 0 {
					return usageErrorf("--trash takes no path")
				}
				nodes, err := c.ListAllTrash(a.ctx)
				if err != nil {
					return err
				}
				return a.print(listing{Nodes: nodes}, func(w io.Writer) {
					rows := make([][]string, 0, len(nodes))
					for _, n := range nodes {
						name := n.Name
						if n.IsFolder() {
							name += "/"
						}
						var at time.Time
						if n.TrashedAt != nil {
							at = *n.TrashedAt
						}
						rows = append(rows, []string{fmtTime(at), humanSize(n.Size), name, n.ID})
					}
					table(w, []string{"TRASHED", "SIZE", "NAME", "ID"}, rows)
				})
			}
			p := "/"
			if len(args) > 0 {
				p = args[0]
			}
			n, err := a.lookup(c, p)
			if err != nil {
				return err
			}
			res := listing{Path: n.Path, Nodes: []client.Node{n}}
			if n.IsFolder() {
				if res.Nodes, err = c.ListAll(a.ctx, n.ID); err != nil {
					return err
				}
				if res.Nodes == nil {
					res.Nodes = []client.Node{}
				}
			}
			return a.print(res, func(w io.Writer) {
				if len(res.Nodes) == 0 {
					return
				}
				table(w, []string{"SIZE", "MODIFIED", "NAME"}, nodeRows(res.Nodes))
			})
		},
	}
}

func mkdirCmd() *command {
	var parents bool
	return &command{
		name: "mkdir", args: "PATH...", summary: "create folders (and the missing folders above them)",
		minArgs: 1, maxArgs: -1,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&parents, "p", false, "no error if the folder exists already")
		},
		run: func(a *app, args []string) error {
			c, err := a.authClient()
			if err != nil {
				return err
			}
			var created []client.Node
			for _, p := range args {
				if len(client.SplitPath(p)) == 0 {
					return usageErrorf("cannot create the root folder")
				}
				n, err := c.CreateFolder(a.ctx, client.CleanPath(p))
				if err != nil && parents && client.IsCode(err, client.CodeAlreadyExists) {
					if existing, lerr := c.Lookup(a.ctx, p); lerr == nil && existing.IsFolder() {
						n, err = existing, nil
					}
				}
				if err != nil {
					return fmt.Errorf("%s: %w", client.CleanPath(p), err)
				}
				created = append(created, n)
			}
			return a.print(listing{Nodes: created}, func(w io.Writer) {
				for _, n := range created {
					fmt.Fprintf(w, "%s/\n", n.Path)
				}
			})
		},
	}
}

// putResult is put's JSON output: the commit, and how the upload went.
type putResult struct {
	client.CommitResult
	// Multipart says the file went up in parts; Resumed that an interrupted upload was
	// resumed, PartsSkipped parts of it being in the store already.
	Multipart    bool `json:"multipart,omitempty"`
	Resumed      bool `json:"resumed,omitempty"`
	PartsSent    int  `json:"parts_sent,omitempty"`
	PartsSkipped int  `json:"parts_skipped,omitempty"`
}

func putCmd() *command {
	var noClobber, quiet, noResume bool
	return &command{
		name: "put", args: "LOCAL REMOTE", summary: "upload a file",
		help: `REMOTE is the file's path, or a folder (an existing one, or a path ending in '/')
to put it in under its local name. A file already at REMOTE gets a new version;
if someone else changed it meanwhile, the upload is kept as a conflicted copy
next to it and put fails.

The file is read twice: once to compute its BLAKE3 and SHA-256 (declared before
the upload), once to stream it to the object store, hashing it again. Progress
goes to stderr.

Large files go up in parts when the server's object store supports it (S3), and
such an upload is resumable: if it is interrupted (Ctrl-C, a network error), run
the same command again and only the missing parts are sent (the file is not
hashed again). The record of the upload is kept in the user cache directory
(bitvault/uploads, or $` + EnvCacheDir + `/uploads) until the upload ends; it is
tied to the file's size and modification time, so a file changed since starts
over. --no-resume starts over anyway. Starting over cancels the abandoned upload
on the server (if that fails, a warning says so and the upload expires on its
own).`,
		minArgs: 2, maxArgs: 2,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&noClobber, "no-clobber", false, "fail if REMOTE exists already")
			fs.BoolVar(&quiet, "q", false, "no progress on stderr")
			fs.BoolVar(&noResume, "no-resume", false, "start over instead of resuming an interrupted upload")
		},
		run: func(a *app, args []string) error {
			local, remote := args[0], args[1]
			st, err := os.Stat(local)
			if err != nil {
				return err
			}
			if st.IsDir() {
				return usageErrorf("%s is a directory: put uploads files (see 'bitvault sync' for folders)", local)
			}
			if !st.Mode().IsRegular() {
				return usageErrorf("%s is not a regular file", local)
			}
			c, err := a.authClient()
			if err != nil {
				return err
			}
			target := client.CleanPath(remote)
			var base *string
			existing, err := c.Lookup(a.ctx, target)
			switch {
			case err == nil && existing.IsFolder():
				target = client.JoinPath(append(client.SplitPath(target), filepath.Base(local)))
				existing, err = c.Lookup(a.ctx, target)
			case client.IsNotFound(err) && strings.HasSuffix(remote, "/"):
				return fmt.Errorf("%s: no such folder", target)
			}
			switch {
			case err == nil && existing.IsFolder():
				return fmt.Errorf("%s is a folder", target)
			case err == nil && noClobber:
				return fmt.Errorf("%s exists already", target)
			case err == nil && existing.CurrentVersion != nil:
				base = &existing.CurrentVersion.ID
			case err != nil && !client.IsNotFound(err):
				return err
			}
			if target == "/" {
				return usageErrorf("REMOTE must name a file")
			}
			pr := a.newProgress(target, quiet)
			resume, err := a.newFileResume(c.BaseURL(), target, local, st)
			if err != nil {
				return err
			}
			if err := a.discardResume(c, resume, noResume); err != nil {
				return err
			}
			var stats client.UploadStats
			opts := client.UploadOptions{BaseVersion: base, Progress: pr.update, Resume: resume, Stats: &stats, Notice: func(msg string) {
				pr.fail() // clears the progress line
				fmt.Fprintf(a.stderr, "%s\n", msg)
			}}
			res, err := c.Upload(a.ctx, target, func() (io.ReadCloser, error) { return os.Open(local) }, opts)
			if err != nil {
				pr.fail()
				return putError(local, target, err, resume)
			}
			pr.done(fmt.Sprintf("uploaded %s to %s", humanSize(res.Version.Size), res.Node.Path))
			out := putResult{CommitResult: res, Multipart: stats.Multipart, Resumed: stats.Resumed, PartsSent: stats.PartsSent, PartsSkipped: stats.PartsSkipped}
			return a.print(out, func(w io.Writer) {
				dedup := ""
				if res.Deduplicated {
					dedup = ", deduplicated"
				}
				fmt.Fprintf(w, "%s  version %d  %s%s\n", res.Node.Path, res.Version.Number, humanSize(res.Version.Size), dedup)
			})
		},
	}
}

// putError explains a failed put: a conflict, a file changed during the upload, or an
// interruption of a resumable upload (whose record is still there).
func putError(local, target string, err error, resume *fileResume) error {
	if e, ok := errors.AsType[*client.Error](err); ok && e.Code == client.CodeVersionConflict && e.Conflict != nil {
		return fmt.Errorf("%s was changed by someone else meanwhile: your upload was kept as %s (%w)", target, e.Conflict.Node.Path, err)
	}
	if errors.Is(err, client.ErrChanged) {
		return fmt.Errorf("%s: %w; nothing was committed, try again", local, err)
	}
	if rec, _ := resume.Load(); rec != nil {
		return fmt.Errorf("%w\nthe upload is resumable: run the same command again to send the missing parts", err)
	}
	return err
}

// pickVersion finds a file's version by number or id ("" is the current one).
func (a *app) pickVersion(c *client.Client, n client.Node, sel string) (client.Version, error) {
	if sel == "" {
		if n.CurrentVersion == nil {
			return client.Version{}, fmt.Errorf("%s has no content", n.Path)
		}
		return *n.CurrentVersion, nil
	}
	vs, err := c.Versions(a.ctx, n.ID)
	if err != nil {
		return client.Version{}, err
	}
	num, numErr := strconv.Atoi(sel)
	for _, v := range vs {
		if v.ID == sel || numErr == nil && v.Number == num {
			return v, nil
		}
	}
	return client.Version{}, fmt.Errorf("%s has no version %s (see 'bitvault versions %s')", n.Path, sel, n.Path)
}

// downloadResult is what get prints.
type downloadResult struct {
	Node    client.Node    `json:"node"`
	Version client.Version `json:"version"`
	Local   string         `json:"local"`
	Size    int64          `json:"size"`
}

// downloadTo downloads a version into local through a temporary file in the same
// directory, verified (size, BLAKE3) before it is renamed into place.
func (a *app) downloadTo(c *client.Client, n client.Node, v client.Version, local string, progress client.Progress) (int64, error) {
	dir := filepath.Dir(local)
	f, err := os.CreateTemp(dir, "."+filepath.Base(local)+".bitvault-*")
	if err != nil {
		return 0, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	written, err := c.Download(a.ctx, n.ID, f, client.DownloadOptions{VersionID: v.ID, Expect: &v, Progress: progress})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return written, err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return written, err
	}
	_ = os.Chtimes(tmp, v.CreatedAt, v.CreatedAt)
	if err := os.Rename(tmp, local); err != nil {
		return written, err
	}
	return written, nil
}

func getCmd() *command {
	var version string
	var quiet bool
	return &command{
		name: "get", args: "REMOTE [LOCAL]", summary: "download a file",
		help: `LOCAL is the file to write (default: the remote name in the current directory),
an existing directory to write it in, or - for stdout. The content is fetched
from the object store the server redirects to, and its size and BLAKE3 are
verified before LOCAL is replaced.`,
		minArgs: 1, maxArgs: 2,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&version, "version", "", "the version to download: its number or id (default: the current one)")
			fs.BoolVar(&quiet, "q", false, "no progress on stderr")
		},
		run: func(a *app, args []string) error {
			c, err := a.authClient()
			if err != nil {
				return err
			}
			n, err := a.lookup(c, args[0])
			if err != nil {
				return err
			}
			if n.IsFolder() {
				return fmt.Errorf("%s is a folder: get downloads files (see 'bitvault sync' for folders)", n.Path)
			}
			v, err := a.pickVersion(c, n, version)
			if err != nil {
				return err
			}
			local := n.Name
			if len(args) > 1 {
				local = args[1]
			}
			if local == "-" {
				if a.output == "json" {
					return usageErrorf("--output json and LOCAL - both use stdout")
				}
				_, err := c.Download(a.ctx, n.ID, a.stdout, client.DownloadOptions{VersionID: v.ID, Expect: &v})
				return err
			}
			if st, err := os.Stat(local); err == nil && st.IsDir() {
				local = filepath.Join(local, n.Name)
			}
			pr := a.newProgress(n.Path, quiet)
			written, err := a.downloadTo(c, n, v, local, pr.update)
			if err != nil {
				pr.fail()
				return err
			}
			pr.done(fmt.Sprintf("downloaded %s to %s", humanSize(written), local))
			res := downloadResult{Node: n, Version: v, Local: local, Size: written}
			return a.print(res, func(w io.Writer) {
				fmt.Fprintf(w, "%s  version %d  %s\n", local, v.Number, humanSize(written))
			})
		},
	}
}

// placement resolves the destination of mv and cp: into an existing folder under the same
// name, or to a new name in an existing folder.
func (a *app) placement(c *client.Client, src client.Node, dst string) (client.Placement, string, error) {
	segs := client.SplitPath(dst)
	d, err := c.Lookup(a.ctx, dst)
	switch {
	case err == nil && d.IsFolder():
		return client.Placement{ParentID: &d.ID}, client.JoinPath(append(segs, src.Name)), nil
	case err == nil:
		return client.Placement{}, "", fmt.Errorf("%s exists already", d.Path)
	case !client.IsNotFound(err):
		return client.Placement{}, "", err
	case strings.HasSuffix(dst, "/") || len(segs) == 0:
		return client.Placement{}, "", fmt.Errorf("%s: no such folder", client.JoinPath(segs))
	}
	parent, err := c.Lookup(a.ctx, client.JoinPath(segs[:len(segs)-1]))
	if err != nil {
		return client.Placement{}, "", err
	}
	if !parent.IsFolder() {
		return client.Placement{}, "", fmt.Errorf("%s is not a folder", parent.Path)
	}
	name := segs[len(segs)-1]
	return client.Placement{ParentID: &parent.ID, Name: &name}, client.JoinPath(segs), nil
}

func mvCmd() *command {
	return &command{
		name: "mv", args: "SOURCE DEST", summary: "move or rename a file or folder",
		help:    "DEST is an existing folder to move SOURCE into, or the new path.",
		minArgs: 2, maxArgs: 2,
		run: func(a *app, args []string) error {
			c, err := a.authClient()
			if err != nil {
				return err
			}
			src, err := a.lookup(c, args[0])
			if err != nil {
				return err
			}
			if err := notRoot(src, "move"); err != nil {
				return err
			}
			to, _, err := a.placement(c, src, args[1])
			if err != nil {
				return err
			}
			n, err := c.Move(a.ctx, src.ID, to)
			if err != nil {
				return err
			}
			return a.print(n, func(w io.Writer) { fmt.Fprintf(w, "%s -> %s\n", src.Path, n.Path) })
		},
	}
}

func cpCmd() *command {
	return &command{
		name: "cp", args: "SOURCE DEST", summary: "copy a file (no bytes are copied: the copy shares the content)",
		help:    "DEST is an existing folder to copy SOURCE into, or the new path.",
		minArgs: 2, maxArgs: 2,
		run: func(a *app, args []string) error {
			c, err := a.authClient()
			if err != nil {
				return err
			}
			src, err := a.lookup(c, args[0])
			if err != nil {
				return err
			}
			if src.IsFolder() {
				return fmt.Errorf("%s is a folder: copying folders is not supported", src.Path)
			}
			to, _, err := a.placement(c, src, args[1])
			if err != nil {
				return err
			}
			res, err := c.Copy(a.ctx, src.ID, to)
			if err != nil {
				return err
			}
			return a.print(res, func(w io.Writer) { fmt.Fprintf(w, "%s -> %s\n", src.Path, res.Node.Path) })
		},
	}
}

func rmCmd() *command {
	var purge bool
	return &command{
		name: "rm", args: "PATH...", summary: "put files and folders in the trash",
		help:    "With --purge, delete them for good right away (they cannot be restored).",
		minArgs: 1, maxArgs: -1,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&purge, "purge", false, "delete for good instead of keeping in the trash")
		},
		run: func(a *app, args []string) error {
			c, err := a.authClient()
			if err != nil {
				return err
			}
			var done []client.Node
			for _, p := range args {
				n, err := a.lookup(c, p)
				if err != nil {
					return err
				}
				if err := notRoot(n, "remove"); err != nil {
					return err
				}
				path := n.Path
				if n.TrashedAt == nil {
					if n, err = c.Trash(a.ctx, n.ID); err != nil {
						return fmt.Errorf("%s: %w", path, err)
					}
				}
				if purge {
					if err := c.Purge(a.ctx, n.ID); err != nil {
						return fmt.Errorf("%s: %w", path, err)
					}
				}
				n.Path = path
				done = append(done, n)
			}
			verb := "trashed"
			if purge {
				verb = "purged"
			}
			return a.print(listing{Nodes: done}, func(w io.Writer) {
				for _, n := range done {
					fmt.Fprintf(w, "%s %s\n", verb, n.Path)
				}
			})
		},
	}
}

// trashed finds the node trashed at path: the most recently trashed one of that name in
// that folder (which must be live).
func (a *app) trashed(c *client.Client, p string) (client.Node, error) {
	if isID(p) {
		return c.Node(a.ctx, p)
	}
	segs := client.SplitPath(p)
	if len(segs) == 0 {
		return client.Node{}, usageErrorf("the root folder is never in the trash")
	}
	parent, err := c.Lookup(a.ctx, client.JoinPath(segs[:len(segs)-1]))
	if err != nil {
		return client.Node{}, err
	}
	nodes, err := c.ListAllTrash(a.ctx)
	if err != nil {
		return client.Node{}, err
	}
	name := segs[len(segs)-1]
	for _, n := range nodes {
		inParent := n.ParentID == nil && parent.ID == "" || n.ParentID != nil && *n.ParentID == parent.ID
		if inParent && n.Name == name {
			return n, nil
		}
	}
	return client.Node{}, &client.Error{StatusCode: 404, Code: client.CodeNotFound, Message: client.JoinPath(segs) + " is not in the trash (see 'bitvault ls --trash')"}
}

func restoreCmd() *command {
	var name string
	return &command{
		name: "restore", args: "PATH|ID", summary: "take a file or folder out of the trash",
		help:    "PATH is where the node was; give its id (from 'bitvault ls --trash') when several were trashed there.",
		minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "", "restore under this name instead")
		},
		run: func(a *app, args []string) error {
			c, err := a.authClient()
			if err != nil {
				return err
			}
			n, err := a.trashed(c, args[0])
			if err != nil {
				return err
			}
			var newName *string
			if name != "" {
				newName = &name
			}
			r, err := c.Restore(a.ctx, n.ID, newName)
			if err != nil {
				return err
			}
			return a.print(r, func(w io.Writer) { fmt.Fprintf(w, "restored %s\n", r.Path) })
		},
	}
}

func versionsCmd() *command {
	return &command{
		name: "versions", args: "PATH", summary: "list a file's versions, newest first",
		minArgs: 1, maxArgs: 1,
		run: func(a *app, args []string) error {
			c, err := a.authClient()
			if err != nil {
				return err
			}
			n, err := a.lookup(c, args[0])
			if err != nil {
				return err
			}
			if n.IsFolder() {
				return fmt.Errorf("%s is a folder: only files have versions", n.Path)
			}
			vs, err := c.Versions(a.ctx, n.ID)
			if err != nil {
				return err
			}
			res := struct {
				Path     string           `json:"path"`
				Versions []client.Version `json:"versions"`
			}{n.Path, vs}
			return a.print(res, func(w io.Writer) {
				rows := make([][]string, 0, len(vs))
				for _, v := range vs {
					cur := ""
					if n.CurrentVersion != nil && n.CurrentVersion.ID == v.ID {
						cur = "*"
					}
					rows = append(rows, []string{strconv.Itoa(v.Number) + cur, humanSize(v.Size), fmtTime(v.CreatedAt), v.BLAKE3[:min(16, len(v.BLAKE3))], v.ID})
				}
				table(w, []string{"VERSION", "SIZE", "CREATED", "BLAKE3", "ID"}, rows)
			})
		},
	}
}
