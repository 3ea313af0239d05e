package cli

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bitvault/bitvault/service/internal/client"
)

// StateDir is the directory of a sync folder's state, at its top; it is never synced.
const StateDir = ".bitvault"

// stateFile is the sync state's file in StateDir.
const stateFile = "sync.json"

// syncNode is a node of the remote namespace as the journal describes it.
type syncNode struct {
	Parent    string `json:"parent,omitempty"` // "" is the root
	Name      string `json:"name"`
	Type      string `json:"type"`
	Trashed   bool   `json:"trashed,omitempty"`
	VersionID string `json:"version_id,omitempty"`
	Hash      string `json:"hash,omitempty"`
	Size      int64  `json:"size"` // -1: unknown
}

// localEntry is what a sync wrote in the local folder for a node.
type localEntry struct {
	Path    string `json:"path"` // slash-separated, relative to the sync folder
	Type    string `json:"type"`
	Hash    string `json:"hash,omitempty"`
	Size    int64  `json:"size,omitempty"`
	ModTime int64  `json:"mtime,omitempty"` // UnixNano, to notice local edits
}

// syncState is LOCALDIR/.bitvault/sync.json.
type syncState struct {
	Format   int                    `json:"format"`
	Server   string                 `json:"server"`
	TenantID string                 `json:"tenant_id,omitempty"`
	DeviceID string                 `json:"device_id"`
	Cursor   int64                  `json:"cursor"`
	SyncedAt time.Time              `json:"synced_at,omitzero"`
	Nodes    map[string]*syncNode   `json:"nodes"`
	Local    map[string]*localEntry `json:"local"`
}

// syncResult is what sync prints.
type syncResult struct {
	Local      string     `json:"local"`
	DeviceID   string     `json:"device_id"`
	FromCursor int64      `json:"from_cursor"`
	Cursor     int64      `json:"cursor"`
	FullResync bool       `json:"full_resync"`
	Changes    int        `json:"changes"`
	Downloaded []string   `json:"downloaded"`
	Moved      []syncMove `json:"moved"`
	Deleted    []string   `json:"deleted"`
	Folders    []string   `json:"folders_created"`
	// Kept are local files set aside (renamed) rather than overwritten or deleted: they had
	// been changed locally, or were in the way and not synced.
	Kept []string `json:"kept"`
	// Skipped are files whose content could not be fetched because a later change (not yet
	// applied) removed it; the next sync applies that change.
	Skipped  []string `json:"skipped"`
	Warnings []string `json:"warnings"`
}

type syncMove struct {
	From string `json:"from"`
	To   string `json:"to"`
}

func syncCmd() *command {
	var deviceName string
	var quiet, watch bool
	return &command{
		name: "sync", args: "LOCALDIR", summary: "pull the remote files into a local folder (changes since the last sync)",
		help: `The first sync registers LOCALDIR as a device, lists the whole namespace and
downloads it; later syncs pull the changes since the stored cursor from the change
journal: new versions are downloaded, moves and renames applied, trashed and purged
nodes deleted. The state (device, cursor, what was written) is kept in
LOCALDIR/.bitvault. Sync only pulls: a local file changed since it was synced is
set aside (renamed *.local-TIMESTAMP) rather than overwritten or deleted, as is an
unknown file in the way. A cursor the server can no longer resume (cursor_stale)
triggers a full resync.

With --watch, sync keeps running after the first pass: it long-polls the server for
changes after its cursor and applies them as they come, printing each pass (with
--output json, one JSON document per pass), until interrupted (Ctrl-C).`,
		minArgs: 1, maxArgs: 1,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&deviceName, "device-name", "", "the device's name on the server (default: host:LOCALDIR)")
			fs.BoolVar(&quiet, "q", false, "no progress on stderr")
			fs.BoolVar(&watch, "watch", false, "keep running: apply the changes as they come, until interrupted")
		},
		run: func(a *app, args []string) error {
			c, err := a.authClient()
			if err != nil {
				return err
			}
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			s := &syncer{a: a, c: c, dir: dir, quiet: quiet}
			if watch {
				return s.watch(deviceName)
			}
			return s.run(deviceName)
		},
	}
}

type syncer struct {
	a     *app
	c     *client.Client
	dir   string
	quiet bool
	st    *syncState
	res   syncResult
	now   time.Time
	// registered is the device registered by this command (once, not on every pass).
	registered string
}

func (s *syncer) statePath() string { return filepath.Join(s.dir, StateDir, stateFile) }

func (s *syncer) loadState() (*syncState, error) {
	b, err := os.ReadFile(s.statePath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st syncState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("sync state %s is corrupt (%v): remove it for a full resync", s.statePath(), err)
	}
	if st.Nodes == nil {
		st.Nodes = map[string]*syncNode{}
	}
	if st.Local == nil {
		st.Local = map[string]*localEntry{}
	}
	return &st, nil
}

func (s *syncer) saveState() error {
	if err := os.MkdirAll(filepath.Join(s.dir, StateDir), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(s.st, "", " ")
	if err != nil {
		return err
	}
	tmp := s.statePath() + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, s.statePath())
}

func newDeviceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func (s *syncer) run(deviceName string) error {
	ctx := s.a.ctx
	s.now = time.Now()
	st, err := s.loadState()
	if err != nil {
		return err
	}
	tenantID := ""
	if s.a.creds != nil && s.a.env.getenv(EnvAPIToken) == "" {
		tenantID = s.a.creds.TenantID
	}
	if st != nil && (!sameServer(st.Server, s.c.BaseURL()) || st.TenantID != "" && tenantID != "" && st.TenantID != tenantID) {
		return fmt.Errorf("%s is synced with another server or tenant (%s): use another folder", s.dir, st.Server)
	}
	if st == nil {
		st = &syncState{Format: 1, Server: s.c.BaseURL(), TenantID: tenantID, DeviceID: newDeviceID(), Nodes: map[string]*syncNode{}, Local: map[string]*localEntry{}}
	}
	s.st = st
	if deviceName == "" {
		host, _ := os.Hostname()
		deviceName = host + ":" + s.dir
	}
	if len(deviceName) > 200 {
		deviceName = deviceName[len(deviceName)-200:]
	}
	if s.registered != st.DeviceID {
		if _, err := s.c.RegisterDevice(ctx, client.NewDevice{ID: st.DeviceID, Name: deviceName}); err != nil {
			return fmt.Errorf("register the device: %w", err)
		}
		s.registered = st.DeviceID
	}
	s.res = syncResult{Local: s.dir, DeviceID: st.DeviceID, FromCursor: st.Cursor, Downloaded: []string{}, Moved: []syncMove{},
		Deleted: []string{}, Folders: []string{}, Kept: []string{}, Skipped: []string{}, Warnings: []string{}}

	full := st.SyncedAt.IsZero()
	if !full {
		err := s.pull()
		if client.IsCode(err, client.CodeCursorStale) {
			full = true
		} else if err != nil {
			return err
		}
	}
	if full {
		s.res.FullResync = true
		if err := s.fullListing(); err != nil {
			return err
		}
		if err := s.pull(); err != nil {
			return err
		}
	}
	if err := s.reconcile(); err != nil {
		// What was written is recorded: the next sync goes on from there.
		_ = s.saveState()
		return err
	}
	st.SyncedAt = time.Now().UTC()
	s.res.Cursor = st.Cursor
	if err := s.saveState(); err != nil {
		return err
	}
	if _, err := s.c.SetDeviceCursor(ctx, st.DeviceID, st.Cursor); err != nil && !client.IsCode(err, client.CodeCursorStale) {
		s.res.Warnings = append(s.res.Warnings, "the server did not take the device's cursor: "+err.Error())
	}
	r := s.res
	return s.a.print(r, func(w io.Writer) {
		for _, p := range r.Downloaded {
			fmt.Fprintf(w, "downloaded %s\n", p)
		}
		for _, m := range r.Moved {
			fmt.Fprintf(w, "moved %s -> %s\n", m.From, m.To)
		}
		for _, p := range r.Deleted {
			fmt.Fprintf(w, "deleted %s\n", p)
		}
		for _, p := range r.Kept {
			fmt.Fprintf(w, "kept %s (local changes)\n", p)
		}
		for _, p := range r.Skipped {
			fmt.Fprintf(w, "skipped %s (changed again on the server: the next sync gets it)\n", p)
		}
		for _, m := range r.Warnings {
			fmt.Fprintf(s.a.stderr, "bitvault sync: warning: %s\n", m)
		}
		how := "changes"
		if r.FullResync {
			how = "full sync"
		}
		fmt.Fprintf(w, "%s: %s at cursor %d (%d changes, %d downloaded, %d moved, %d deleted)\n", r.Local, how, r.Cursor, r.Changes, len(r.Downloaded), len(r.Moved), len(r.Deleted))
	})
}

// fullListing replaces the model with the namespace as listed now; the journal's position is
// read first, so pulling from it afterwards replays whatever changed during the listing.
func (s *syncer) fullListing() error {
	ctx := s.a.ctx
	pos, err := s.c.SyncCursor(ctx)
	if err != nil {
		return err
	}
	nodes := map[string]*syncNode{}
	queue := []string{""}
	for len(queue) > 0 {
		parent := queue[0]
		queue = queue[1:]
		children, err := s.c.ListAll(ctx, parent)
		if client.IsNotFound(err) && parent != "" {
			continue // removed during the listing: the journal says so
		}
		if err != nil {
			return err
		}
		for _, n := range children {
			sn := &syncNode{Parent: parent, Name: n.Name, Type: n.Type, Size: n.Size}
			if n.CurrentVersion != nil {
				sn.VersionID, sn.Hash, sn.Size = n.CurrentVersion.ID, n.CurrentVersion.BLAKE3, n.CurrentVersion.Size
			}
			nodes[n.ID] = sn
			if n.IsFolder() {
				queue = append(queue, n.ID)
			}
		}
	}
	s.st.Nodes = nodes
	s.st.Cursor = pos.Cursor
	return nil
}

// pull applies the journal's changes after the cursor to the model.
func (s *syncer) pull() error {
	for {
		page, err := s.c.Changes(s.a.ctx, s.st.Cursor, 1000)
		if err != nil {
			return err
		}
		for _, ch := range page.Changes {
			s.apply(ch)
			s.res.Changes++
		}
		s.st.Cursor = page.NextCursor
		if !page.HasMore || len(page.Changes) == 0 {
			return nil
		}
	}
}

// apply applies one change to the model.
func (s *syncer) apply(ch client.Change) {
	nodes := s.st.Nodes
	if ch.Op == client.OpPurge {
		delete(nodes, ch.NodeID)
		return
	}
	n := nodes[ch.NodeID]
	if n == nil {
		n = &syncNode{Size: -1}
		nodes[ch.NodeID] = n
	}
	n.Name, n.Type, n.Parent = ch.Name, ch.NodeType, ""
	if ch.ParentID != nil {
		n.Parent = *ch.ParentID
	}
	if ch.VersionID != nil {
		n.VersionID, n.Size = *ch.VersionID, -1
		if ch.Hash != nil {
			n.Hash = *ch.Hash
		}
		if ch.Size != nil {
			n.Size = *ch.Size
		}
	}
	n.Trashed = ch.Op == client.OpTrash
}

// wanted is a node that should be in the local folder.
type wanted struct {
	id   string
	rel  string // slash-separated
	node *syncNode
}

// desired computes the local paths of the live nodes whose ancestors are all live; nodes
// under a purged folder are dropped from the model.
func (s *syncer) desired() map[string]wanted {
	out := map[string]wanted{}
	orphan := map[string]bool{}
	var resolve func(id string, depth int) (string, bool)
	resolve = func(id string, depth int) (string, bool) {
		if w, ok := out[id]; ok {
			return w.rel, true
		}
		n := s.st.Nodes[id]
		if n == nil {
			orphan[id] = true
			return "", false
		}
		if n.Trashed || depth > 1000 {
			return "", false
		}
		parent := ""
		if n.Parent != "" {
			var ok bool
			if parent, ok = resolve(n.Parent, depth+1); !ok {
				if orphan[n.Parent] {
					orphan[id] = true
				}
				return "", false
			}
		}
		rel := n.Name
		if parent != "" {
			rel = parent + "/" + n.Name
		}
		if !validName(n.Name) || parent == "" && n.Name == StateDir || !filepath.IsLocal(filepath.FromSlash(rel)) {
			s.res.Warnings = append(s.res.Warnings, fmt.Sprintf("skipped %q: not a valid local name", rel))
			return "", false
		}
		out[id] = wanted{id: id, rel: rel, node: n}
		return rel, true
	}
	for id := range s.st.Nodes {
		resolve(id, 0)
	}
	for id := range orphan {
		delete(s.st.Nodes, id)
	}
	return out
}

// validName refuses names that cannot be a single local path element.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, `/\`+"\x00") && path.Base(name) == name
}

func (s *syncer) abs(rel string) string { return filepath.Join(s.dir, filepath.FromSlash(rel)) }

// changedLocally reports whether the file a sync wrote was changed since.
func (s *syncer) changedLocally(le *localEntry) bool {
	st, err := os.Stat(s.abs(le.Path))
	if err != nil {
		return false // gone: nothing to keep
	}
	return !st.Mode().IsRegular() || st.Size() != le.Size || st.ModTime().UnixNano() != le.ModTime
}

// setAside renames a local file out of the way, keeping it: name.local-TIMESTAMP.
func (s *syncer) setAside(rel string) error {
	p := s.abs(rel)
	aside := fmt.Sprintf("%s.local-%s", p, s.now.Format("20060102-150405"))
	for i := 2; ; i++ {
		if _, err := os.Lstat(aside); errors.Is(err, fs.ErrNotExist) {
			break
		}
		aside = fmt.Sprintf("%s.local-%s-%d", p, s.now.Format("20060102-150405"), i)
	}
	if err := os.Rename(p, aside); err != nil {
		return err
	}
	r, _ := filepath.Rel(s.dir, aside)
	s.res.Kept = append(s.res.Kept, filepath.ToSlash(r))
	return nil
}

// reconcile makes the local folder match the model: files that moved or went away are
// staged, folders that went away removed, the wanted folders created, and the files put in
// place from the stage or downloaded.
func (s *syncer) reconcile() error {
	want := s.desired()
	stage := filepath.Join(s.dir, StateDir, "stage")
	if err := os.MkdirAll(stage, 0o700); err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	staged := map[string]string{} // node id → hash of its staged file
	local := s.st.Local

	// 1. Files that moved, changed or went away leave their place.
	for _, id := range sortedKeys(local) {
		le := local[id]
		if le.Type != client.TypeFile {
			continue
		}
		w, ok := want[id]
		if ok && w.node.Type == client.TypeFile && w.rel == le.Path && w.node.Hash == le.Hash {
			if _, err := os.Stat(s.abs(le.Path)); err != nil {
				delete(local, id) // deleted locally: downloaded again
			}
			continue
		}
		if _, err := os.Lstat(s.abs(le.Path)); err != nil {
			delete(local, id)
			continue
		}
		if s.changedLocally(le) {
			if err := s.setAside(le.Path); err != nil {
				return err
			}
			delete(local, id)
			continue
		}
		if ok && w.node.Hash == le.Hash {
			if err := os.Rename(s.abs(le.Path), filepath.Join(stage, id)); err != nil {
				return err
			}
			staged[id] = le.Hash
			if w.rel != le.Path {
				s.res.Moved = append(s.res.Moved, syncMove{From: le.Path, To: w.rel})
			}
		} else {
			if err := os.Remove(s.abs(le.Path)); err != nil {
				return err
			}
			if !ok {
				s.res.Deleted = append(s.res.Deleted, le.Path)
			}
		}
		delete(local, id)
	}

	// 2. Folders that moved or went away are removed, deepest first, if nothing unknown is
	// left in them.
	var goneDirs []*localEntry
	for id, le := range local {
		if le.Type != client.TypeFolder {
			continue
		}
		if w, ok := want[id]; ok && w.node.Type == client.TypeFolder && w.rel == le.Path {
			continue
		}
		goneDirs = append(goneDirs, le)
		delete(local, id)
	}
	sort.Slice(goneDirs, func(i, j int) bool {
		return strings.Count(goneDirs[i].Path, "/") > strings.Count(goneDirs[j].Path, "/")
	})
	for _, le := range goneDirs {
		err := os.Remove(s.abs(le.Path))
		switch {
		case err == nil:
			s.res.Deleted = append(s.res.Deleted, le.Path+"/")
		case errors.Is(err, fs.ErrNotExist):
		default:
			if _, ok := wantedAt(want, le.Path); !ok {
				s.res.Warnings = append(s.res.Warnings, fmt.Sprintf("kept the folder %s: it holds files that are not synced", le.Path))
			}
		}
	}

	// 3. The wanted folders, parents first.
	var dirs []wanted
	var files []wanted
	for _, w := range want {
		if w.node.Type == client.TypeFolder {
			dirs = append(dirs, w)
		} else {
			files = append(files, w)
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i].rel < dirs[j].rel })
	for _, w := range dirs {
		p := s.abs(w.rel)
		if st, err := os.Lstat(p); err == nil && !st.IsDir() {
			if err := s.setAside(w.rel); err != nil {
				return err
			}
		}
		if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			s.res.Folders = append(s.res.Folders, w.rel+"/")
		}
		local[w.id] = &localEntry{Path: w.rel, Type: client.TypeFolder}
	}

	// 4. The files: in place already, from the stage, or downloaded.
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	pr := s.a.newProgress("", s.quiet)
	defer pr.fail()
	for _, w := range files {
		if le, ok := local[w.id]; ok && le.Path == w.rel && le.Hash == w.node.Hash {
			continue
		}
		p := s.abs(w.rel)
		if _, err := os.Lstat(p); err == nil {
			// Something unknown is in the way.
			if err := s.setAside(w.rel); err != nil {
				return err
			}
		}
		if h, ok := staged[w.id]; ok && h == w.node.Hash {
			if err := os.Rename(filepath.Join(stage, w.id), p); err != nil {
				return err
			}
			delete(staged, w.id)
		} else {
			if w.node.VersionID == "" {
				s.res.Skipped = append(s.res.Skipped, w.rel)
				continue
			}
			pr.label = w.rel
			v := client.Version{ID: w.node.VersionID, Size: w.node.Size, BLAKE3: w.node.Hash}
			_, err := s.a.downloadTo(s.c, client.Node{ID: w.id}, v, p, pr.update)
			if err != nil {
				if e, ok := errors.AsType[*client.Error](err); ok && (e.StatusCode == http.StatusNotFound || e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusConflict) {
					s.res.Skipped = append(s.res.Skipped, w.rel)
					continue
				}
				return fmt.Errorf("%s: %w", w.rel, err)
			}
			s.res.Downloaded = append(s.res.Downloaded, w.rel)
		}
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		local[w.id] = &localEntry{Path: w.rel, Type: client.TypeFile, Hash: w.node.Hash, Size: st.Size(), ModTime: st.ModTime().UnixNano()}
	}
	pr.fail()
	return nil
}

// wantedAt finds the wanted node at rel.
func wantedAt(want map[string]wanted, rel string) (wanted, bool) {
	for _, w := range want {
		if w.rel == rel {
			return w, true
		}
	}
	return wanted{}, false
}
