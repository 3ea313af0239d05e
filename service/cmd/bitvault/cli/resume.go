package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bitvault/bitvault/service/internal/client"
)

// EnvCacheDir overrides the directory of put's resume records (default
// os.UserCacheDir()/bitvault).
const EnvCacheDir = "BITVAULT_CACHE_DIR"

// resumeRecord is what put keeps on disk while a multipart upload is in progress: the
// client's record, and what it was for (shown by nobody, but useful to whoever looks).
// Remote is the target path put was given; records written before it was part of the key
// have none.
type resumeRecord struct {
	client.ResumeRecord
	Server    string    `json:"server"`
	Remote    string    `json:"remote,omitempty"`
	Local     string    `json:"local"`
	ModTime   time.Time `json:"mod_time"`
	CreatedAt time.Time `json:"created_at"`
}

// fileResume is a client.ResumeStore in one file under <cache>/uploads, named after the
// target (server and remote path), the local file's absolute path, its size and its
// modification time: a file that changed gets another record, so its stale upload is never
// resumed with other bytes, and uploads of one file to two remote paths have a record each.
type fileResume struct {
	path    string
	server  string
	remote  string
	local   string
	modTime time.Time
}

// uploadsDir is where the resume records live.
func (a *app) uploadsDir() (string, error) {
	dir := a.env.getenv(EnvCacheDir)
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("no directory for resume records: %v (set %s, or use --no-resume)", err, EnvCacheDir)
		}
		dir = filepath.Join(base, "bitvault")
	}
	return filepath.Join(dir, "uploads"), nil
}

// newFileResume returns the resume store of local (st is its stat) uploaded to remote on
// server.
func (a *app) newFileResume(server, remote, local string, st fs.FileInfo) (*fileResume, error) {
	dir, err := a.uploadsDir()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(local)
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	for _, s := range []string{server, remote, abs, strconv.FormatInt(st.Size(), 10), strconv.FormatInt(st.ModTime().UnixNano(), 10)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	name := hex.EncodeToString(h.Sum(nil))[:32] + ".json"
	return &fileResume{path: filepath.Join(dir, name), server: server, remote: remote, local: abs, modTime: st.ModTime()}, nil
}

// Load implements client.ResumeStore; an unreadable record counts as none.
func (f *fileResume) Load() (*client.ResumeRecord, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("resume record: %w", err)
	}
	var r resumeRecord
	if err := json.Unmarshal(b, &r); err != nil || r.UploadID == "" {
		return nil, nil
	}
	return &r.ResumeRecord, nil
}

// Save implements client.ResumeStore: the record is private (0600 in a 0700 directory) and
// replaced atomically.
func (f *fileResume) Save(rec client.ResumeRecord) error {
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(resumeRecord{ResumeRecord: rec, Server: f.server, Remote: f.remote, Local: f.local, ModTime: f.modTime, CreatedAt: time.Now().UTC()}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".record-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), f.path)
}

// Clear implements client.ResumeStore.
func (f *fileResume) Clear() error {
	if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Stale returns the other records of the same local file to the same target: records made
// when the file had another size or modification time, whose uploads can never be resumed
// (their content is not the file's any more), and the file's records from before the remote
// path was part of the key (never loaded again). Records of the file's uploads to other
// remote paths are not stale. Unreadable records are skipped.
func (f *fileResume) Stale() ([]*fileResume, []client.ResumeRecord) {
	entries, err := os.ReadDir(filepath.Dir(f.path))
	if err != nil {
		return nil, nil
	}
	var stores []*fileResume
	var recs []client.ResumeRecord
	for _, e := range entries {
		path := filepath.Join(filepath.Dir(f.path), e.Name())
		if !e.Type().IsRegular() || filepath.Ext(e.Name()) != ".json" || path == f.path {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var r resumeRecord
		if json.Unmarshal(b, &r) != nil || r.UploadID == "" || r.Server != f.server || r.Local != f.local || r.Remote != "" && r.Remote != f.remote {
			continue
		}
		stores = append(stores, &fileResume{path: path, server: r.Server, remote: r.Remote, local: r.Local, modTime: r.ModTime})
		recs = append(recs, r.ResumeRecord)
	}
	return stores, recs
}

// discardResume drops the resume records put will not resume: the file's own record with
// --no-resume (all), and the records of the file as it was before it changed. Their uploads
// are cancelled on the server, so that they stop holding quota and staged parts until they
// expire; best effort: a failure is a warning, the record goes anyway (the upload expires).
func (a *app) discardResume(c *client.Client, resume *fileResume, all bool) error {
	stores, recs := resume.Stale()
	if all {
		rec, err := resume.Load()
		if err != nil {
			return err
		}
		if rec != nil {
			stores, recs = append(stores, resume), append(recs, *rec)
		}
	}
	for i, f := range stores {
		err := c.CancelUpload(a.ctx, recs[i].UploadID)
		switch {
		case err == nil, client.IsNotFound(err), client.IsCode(err, client.CodeConflict):
			// Cancelled, or gone or finished already: nothing left to cancel.
		default:
			fmt.Fprintf(a.stderr, "bitvault put: warning: the previous upload %s of %s was not cancelled: %v (it expires on its own)\n", recs[i].UploadID, recs[i].Path, err)
		}
		if err := f.Clear(); err != nil {
			return err
		}
	}
	return nil
}
