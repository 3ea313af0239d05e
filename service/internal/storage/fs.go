package storage

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bitvault/bitvault/service/internal/platform/apierror"
)

// BlobsPath is where FS.Handler is mounted: presigned URLs of the filesystem backend are
// <public URL>/v1/blobs/<key>?….
const BlobsPath = "/v1/blobs/"

// MinFSKeyLen is the minimum length of the filesystem backend's URL-signing key.
const MinFSKeyLen = 32

// Query parameters of the filesystem backend's presigned URLs.
const (
	fsParamMethod   = "X-Bv-Method"
	fsParamExpires  = "X-Bv-Expires"
	fsParamSize     = "X-Bv-Size"
	fsParamSHA256   = "X-Bv-Sha256"
	fsParamFilename = "X-Bv-Filename"
	fsParamSig      = "X-Bv-Signature"
)

// FS is the filesystem backend: objects are files under a directory (keys are paths below
// it), uploads and downloads go through bitvaultd's own /v1/blobs/ endpoint (Handler) with
// HMAC-signed, expiring URLs. Writes go to a temporary file renamed into place, so a reader
// never sees a partial object.
type FS struct {
	dir  string
	base *url.URL
	key  []byte
	now  func() time.Time
}

// NewFS returns the filesystem backend storing under dir (created if missing), whose
// presigned URLs start with publicURL (how clients reach bitvaultd, e.g.
// http://localhost:8080), signed with key (at least MinFSKeyLen bytes).
func NewFS(dir, publicURL string, key []byte) (*FS, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("storage: directory %q must be absolute", dir)
	}
	u, err := parsePublicURL(publicURL)
	if err != nil {
		return nil, err
	}
	if len(key) < MinFSKeyLen {
		return nil, fmt.Errorf("storage: URL-signing key has %d bytes, want at least %d", len(key), MinFSKeyLen)
	}
	if err := os.MkdirAll(filepath.Join(dir, ".tmp"), 0o700); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return &FS{dir: filepath.Clean(dir), base: u, key: key, now: time.Now}, nil
}

// parsePublicURL accepts http(s)://host[:port][/prefix].
func parsePublicURL(publicURL string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(publicURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("storage: public URL %q: want http(s)://host[:port][/prefix]", publicURL)
	}
	return u, nil
}

// SetClock replaces the clock that presigning and Handler use (tests).
func (f *FS) SetClock(now func() time.Time) { f.now = now }

// Backend implements ObjectStore.
func (f *FS) Backend() string { return "fs" }

func (f *FS) path(key string) string { return filepath.Join(f.dir, filepath.FromSlash(key)) }

// signature is the HMAC-SHA256 of the canonical request: method, key, expiry and
// constraints, newline-separated.
func (f *FS) signature(method, key, expires, size, sha, filename string) string {
	m := hmac.New(sha256.New, f.key)
	for _, s := range []string{"bitvault-fs-v1", method, key, expires, size, sha, filename} {
		m.Write([]byte(s))
		m.Write([]byte{'\n'})
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (f *FS) presign(method, key, size, sha, filename string, ttl time.Duration) Presigned {
	expires := f.now().Add(ttl).Truncate(time.Second)
	exp := strconv.FormatInt(expires.Unix(), 10)
	q := url.Values{}
	q.Set(fsParamMethod, method)
	q.Set(fsParamExpires, exp)
	if size != "" {
		q.Set(fsParamSize, size)
	}
	if sha != "" {
		q.Set(fsParamSHA256, sha)
	}
	if filename != "" {
		q.Set(fsParamFilename, filename)
	}
	q.Set(fsParamSig, f.signature(method, key, exp, size, sha, filename))
	u := *f.base
	u.Path = f.base.Path + BlobsPath + key
	u.RawQuery = q.Encode()
	return Presigned{Method: method, URL: u.String(), ExpiresAt: expires.UTC()}
}

// PresignPut implements ObjectStore.
func (f *FS) PresignPut(_ context.Context, key string, c PutConstraints, ttl time.Duration) (Presigned, error) {
	if err := checkPut(key, c, ttl); err != nil {
		return Presigned{}, err
	}
	var sha string
	if c.SHA256 != nil {
		sha = hex.EncodeToString(c.SHA256)
	}
	return f.presign(http.MethodPut, key, strconv.FormatInt(c.Size, 10), sha, "", ttl), nil
}

// PresignGet implements ObjectStore.
func (f *FS) PresignGet(_ context.Context, key string, o GetOptions, ttl time.Duration) (Presigned, error) {
	if err := CheckKey(key); err != nil {
		return Presigned{}, err
	}
	if err := checkTTL(ttl); err != nil {
		return Presigned{}, err
	}
	return f.presign(http.MethodGet, key, "", "", o.Filename, ttl), nil
}

// Stat implements ObjectStore.
func (f *FS) Stat(_ context.Context, key string) (ObjectInfo, error) {
	if err := CheckKey(key); err != nil {
		return ObjectInfo{}, err
	}
	fi, err := os.Stat(f.path(key))
	if err != nil {
		return ObjectInfo{}, f.wrap("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, f.wrap("stat", key, fs.ErrNotExist)
	}
	return ObjectInfo{Key: key, Size: fi.Size()}, nil
}

// Open implements ObjectStore.
func (f *FS) Open(_ context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	file, err := os.Open(f.path(key))
	if err != nil {
		return nil, f.wrap("open", key, err)
	}
	if fi, err := file.Stat(); err != nil || !fi.Mode().IsRegular() {
		file.Close()
		return nil, f.wrap("open", key, fs.ErrNotExist)
	}
	return file, nil
}

// Put implements ObjectStore.
func (f *FS) Put(_ context.Context, key string, r io.Reader, size int64) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	_, err := f.write(key, r, size, nil)
	return err
}

// errTooLong and errTooShort are bodies of another size than signed.
var (
	errTooLong  = errors.New("body longer than the signed size")
	errTooShort = errors.New("body shorter than the signed size")
	errChecksum = errors.New("body does not match the signed SHA-256")
)

// write stores exactly size bytes of r at key, through a temporary file; with wantSHA it
// refuses a body with another SHA-256. It returns the body's SHA-256.
func (f *FS) write(key string, r io.Reader, size int64, wantSHA []byte) ([]byte, error) {
	tmp, err := os.CreateTemp(filepath.Join(f.dir, ".tmp"), "put-*")
	if err != nil {
		return nil, fmt.Errorf("storage: put %s: %w", key, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, size+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("storage: put %s: %w", key, err)
	case n > size:
		return nil, fmt.Errorf("storage: put %s: %w", key, errTooLong)
	case n < size:
		return nil, fmt.Errorf("storage: put %s: %w", key, errTooShort)
	}
	sum := h.Sum(nil)
	if wantSHA != nil && !hmac.Equal(sum, wantSHA) {
		return nil, fmt.Errorf("storage: put %s: %w", key, errChecksum)
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("storage: put %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("storage: put %s: %w", key, err)
	}
	if err := f.place(tmp.Name(), key); err != nil {
		return nil, err
	}
	return sum, nil
}

// place renames a finished temporary file to key's path.
func (f *FS) place(tmp, key string) error {
	dst := f.path(key)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return fmt.Errorf("storage: put %s: %w", key, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fmt.Errorf("storage: put %s: %w", key, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("storage: put %s: %w", key, err)
	}
	return nil
}

// Copy implements ObjectStore: a hard link when the filesystem allows it (objects are never
// modified in place), a byte copy otherwise.
func (f *FS) Copy(_ context.Context, src, dst string) error {
	if err := CheckKey(src); err != nil {
		return err
	}
	if err := CheckKey(dst); err != nil {
		return err
	}
	if _, err := os.Stat(f.path(src)); err != nil {
		return f.wrap("copy "+src+" to", dst, err)
	}
	tmp := filepath.Join(f.dir, ".tmp", "copy-"+rand.Text())
	if err := os.Link(f.path(src), tmp); err == nil {
		defer os.Remove(tmp)
		return f.place(tmp, dst)
	}
	in, err := os.Open(f.path(src))
	if err != nil {
		return f.wrap("copy "+src+" to", dst, err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return f.wrap("copy "+src+" to", dst, err)
	}
	_, err = f.write(dst, in, fi.Size(), nil)
	return err
}

// Delete implements ObjectStore.
func (f *FS) Delete(_ context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := os.Remove(f.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: delete %s: %w", key, err)
	}
	return nil
}

// Ping implements ObjectStore: the directory exists and is writable.
func (f *FS) Ping(context.Context) error {
	tmp, err := os.CreateTemp(filepath.Join(f.dir, ".tmp"), "ping-*")
	if err != nil {
		return fmt.Errorf("storage: directory %s: %w", f.dir, err)
	}
	tmp.Close()
	return os.Remove(tmp.Name())
}

func (f *FS) wrap(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: %s %s: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("storage: %s %s: %w", op, key, err)
}

// TransferTimeout bounds one upload or download through Handler (the server's usual 30 s
// read and write timeouts are lifted for these requests).
const TransferTimeout = time.Hour

// Handler serves the presigned URLs: PUT (upload) and GET/HEAD (download, with ranges) of
// BlobsPath + key, after checking the signature, the method and the expiry. Mount it at
// BlobsPath. A refused request answers a JSON error: 403 for a bad or expired signature,
// 400 for a body of the wrong size or checksum, 404 for a missing object.
func (f *FS) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A prefix of the public URL belongs to a proxy in front, which strips it.
		key, ok := strings.CutPrefix(r.URL.Path, BlobsPath)
		if !ok || CheckKey(key) != nil {
			apierror.WriteCode(w, r, apierror.CodeNotFound, "no such blob URL")
			return
		}
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		if method != http.MethodGet && method != http.MethodPut {
			w.Header().Set("Allow", "GET, HEAD, PUT")
			apierror.WriteCode(w, r, apierror.CodeMethodNotAllowed, r.Method+" is not allowed on presigned blob URLs")
			return
		}
		q := r.URL.Query()
		exp, size, sha, filename := q.Get(fsParamExpires), q.Get(fsParamSize), q.Get(fsParamSHA256), q.Get(fsParamFilename)
		want := f.signature(method, key, exp, size, sha, filename)
		if q.Get(fsParamMethod) != method || !hmac.Equal([]byte(q.Get(fsParamSig)), []byte(want)) {
			apierror.WriteCode(w, r, apierror.CodePermissionDenied, "invalid signature for this method and URL")
			return
		}
		expires, err := strconv.ParseInt(exp, 10, 64)
		if err != nil || !f.now().Before(time.Unix(expires, 0)) {
			apierror.WriteCode(w, r, apierror.CodePermissionDenied, "presigned URL expired")
			return
		}
		rc := http.NewResponseController(w)
		deadline := time.Now().Add(TransferTimeout)
		_ = rc.SetReadDeadline(deadline)
		_ = rc.SetWriteDeadline(deadline)
		if method == http.MethodPut {
			f.servePut(w, r, key, size, sha)
			return
		}
		f.serveGet(w, r, key, filename)
	})
}

func (f *FS) servePut(w http.ResponseWriter, r *http.Request, key, sizeParam, shaParam string) {
	size, err := strconv.ParseInt(sizeParam, 10, 64)
	if err != nil || size < 0 {
		apierror.WriteCode(w, r, apierror.CodeInvalidArgument, "presigned URL without a size")
		return
	}
	if r.ContentLength >= 0 && r.ContentLength != size {
		apierror.WriteCode(w, r, apierror.CodeInvalidArgument, fmt.Sprintf("Content-Length %d differs from the signed size %d", r.ContentLength, size))
		return
	}
	var wantSHA []byte
	if shaParam != "" {
		if wantSHA, err = hex.DecodeString(shaParam); err != nil || len(wantSHA) != 32 {
			apierror.WriteCode(w, r, apierror.CodeInvalidArgument, "presigned URL with a malformed SHA-256")
			return
		}
	}
	sum, err := f.write(key, r.Body, size, wantSHA)
	switch {
	case errors.Is(err, errTooLong), errors.Is(err, errTooShort):
		apierror.WriteCode(w, r, apierror.CodeInvalidArgument, fmt.Sprintf("body size differs from the signed size %d", size))
		return
	case errors.Is(err, errChecksum):
		apierror.WriteCode(w, r, apierror.CodeInvalidArgument, "body does not match the signed SHA-256")
		return
	case err != nil:
		apierror.WriteError(w, r, nil, err)
		return
	}
	w.Header().Set("ETag", `"`+hex.EncodeToString(sum)+`"`)
	w.WriteHeader(http.StatusOK)
}

func (f *FS) serveGet(w http.ResponseWriter, r *http.Request, key, filename string) {
	file, err := os.Open(f.path(key))
	if err != nil {
		apierror.WriteCode(w, r, apierror.CodeNotFound, "no such object")
		return
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		apierror.WriteCode(w, r, apierror.CodeNotFound, "no such object")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if filename != "" {
		h.Set("Content-Disposition", contentDisposition(filename))
	}
	http.ServeContent(w, r, "", fi.ModTime(), file)
}
