package bases

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// epoch is the one timestamp that appears anywhere in a stand-in: every tar
// entry's mtime, the config's `created` and every history entry.
var epoch = time.Unix(0, 0).UTC()

// gzipLevel is fixed so the compressed bytes (and so the layer digests) only
// depend on the tar stream and the Go release's compress/flate.
const gzipLevel = gzip.DefaultCompression

// entry is one file system object of a layer.
type entry struct {
	typ      byte  // tar.TypeReg, tar.TypeDir, tar.TypeSymlink or tar.TypeLink
	mode     int64 // permission bits including setuid/setgid/sticky
	uid, gid int
	link     string // symlink target as written, or hardlink target path (clean, root-relative)
	data     []byte
}

// tree is the in-memory content of one layer, keyed by clean root-relative
// path ("usr/bin/busybox"). Adding the same path twice replaces the entry.
type tree struct {
	m map[string]*entry
}

func newTree() *tree { return &tree{m: map[string]*entry{}} }

// cleanPath turns "./usr/bin/", "/usr/bin" and "usr//bin" into "usr/bin".
// It returns "" for the root and an error for paths escaping it.
func cleanPath(p string) (string, error) {
	p = strings.TrimPrefix(p, "./")
	p = strings.TrimLeft(p, "/")
	if p == "" || p == "." {
		return "", nil
	}
	c := path.Clean(p)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("path %q escapes the root", p)
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

func (t *tree) put(p string, e *entry) {
	c, err := cleanPath(p)
	if err != nil || c == "" {
		panic(fmt.Sprintf("bases: internal error: bad path %q", p))
	}
	t.m[c] = e
}

func (t *tree) dir(p string, mode int64, uid, gid int) {
	t.put(p, &entry{typ: tar.TypeDir, mode: mode, uid: uid, gid: gid})
}

func (t *tree) file(p string, mode int64, data []byte) {
	t.put(p, &entry{typ: tar.TypeReg, mode: mode, data: data})
}

func (t *tree) symlink(p, target string) {
	t.put(p, &entry{typ: tar.TypeSymlink, mode: 0o777, link: target})
}

// has reports whether p exists in this tree.
func (t *tree) has(p string) bool {
	c, _ := cleanPath(p)
	_, ok := t.m[c]
	return ok
}

// memLayer is a finished, gzip-compressed layer held in memory. It
// implements v1.Layer.
type memLayer struct {
	gz      []byte
	digest  v1.Hash
	diffID  v1.Hash
	rawSize int64
	files   int
}

func (l *memLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *memLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *memLayer) Size() (int64, error)                { return int64(len(l.gz)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.gz)), nil
}
func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	zr, err := gzip.NewReader(bytes.NewReader(l.gz))
	if err != nil {
		return nil, err
	}
	return zr, nil
}

var _ v1.Layer = (*memLayer)(nil)

// layer serialises the tree as a deterministic gzip-compressed tar:
// entries sorted by name (a parent always precedes its children), missing
// parent directories synthesised as 0755 root:root, mtime = epoch, numeric
// ids only, no atime/ctime, no user/group names, USTAR headers (PAX records
// only for names too long for USTAR, which Go writes deterministically).
// Hardlinked files are written once, under the first name in sort order.
func (t *tree) layer() (*memLayer, error) {
	// Synthesise parents and reject entries below a non-directory.
	for p := range t.m {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			e, ok := t.m[d]
			if !ok {
				t.m[d] = &entry{typ: tar.TypeDir, mode: 0o755}
				continue
			}
			if e.typ != tar.TypeDir {
				return nil, fmt.Errorf("layer: %s is below %s, which is not a directory in the same layer", p, d)
			}
		}
	}
	names := make([]string, 0, len(t.m))
	for p := range t.m {
		names = append(names, p)
	}
	sort.Strings(names)

	// Hardlink groups: every TypeLink resolves to a regular file; the group
	// is written as one regular file (the first member by name) plus links.
	linkTo := map[string]string{} // member -> first member of its group
	groups := map[string][]string{}
	for _, p := range names {
		e := t.m[p]
		if e.typ != tar.TypeLink {
			continue
		}
		root, seen := e.link, map[string]bool{p: true}
		for {
			re, ok := t.m[root]
			if !ok {
				return nil, fmt.Errorf("layer: hardlink %s points to missing %s", p, root)
			}
			if re.typ == tar.TypeReg {
				break
			}
			if re.typ != tar.TypeLink || seen[root] {
				return nil, fmt.Errorf("layer: hardlink %s does not resolve to a regular file", p)
			}
			seen[root] = true
			root = re.link
		}
		if _, ok := groups[root]; !ok {
			groups[root] = []string{root}
		}
		groups[root] = append(groups[root], p)
	}
	data := map[string]*entry{} // first member -> entry carrying the content
	for root, members := range groups {
		sort.Strings(members)
		for _, m := range members[1:] {
			linkTo[m] = members[0]
		}
		data[members[0]] = t.m[root]
	}

	var gzbuf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gzbuf, gzipLevel)
	if err != nil {
		return nil, err
	}
	// Header stays zero: no name, no comment, mtime 0, OS "unknown".
	diff := sha256.New()
	tw := tar.NewWriter(io.MultiWriter(zw, diff))
	var raw int64
	for _, p := range names {
		e := t.m[p]
		h := &tar.Header{
			Name:    p,
			Mode:    e.mode & 0o7777,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: epoch,
		}
		switch {
		case linkTo[p] != "":
			h.Typeflag, h.Linkname = tar.TypeLink, linkTo[p]
			if src := data[linkTo[p]]; src != nil && e.typ == tar.TypeLink {
				// a link keeps its own header fields in tar; use the file's
				h.Mode, h.Uid, h.Gid = src.mode&0o7777, src.uid, src.gid
			}
		case data[p] != nil:
			src := data[p]
			h.Typeflag, h.Size = tar.TypeReg, int64(len(src.data))
			h.Mode, h.Uid, h.Gid = src.mode&0o7777, src.uid, src.gid
			e = src
		case e.typ == tar.TypeDir:
			h.Typeflag, h.Name = tar.TypeDir, p+"/"
		case e.typ == tar.TypeSymlink:
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		case e.typ == tar.TypeReg:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		default:
			return nil, fmt.Errorf("layer: %s: unsupported entry type %q", p, e.typ)
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer: %s: %w", p, err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, fmt.Errorf("layer: %s: %w", p, err)
			}
			raw += h.Size
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	l := &memLayer{gz: gzbuf.Bytes(), rawSize: raw, files: len(names)}
	l.diffID = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", diff.Sum(nil))}
	l.digest = v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(l.gz))}
	return l, nil
}

// usrMerged maps a path shipped by a Debian package to its merged-/usr
// location: bin/x → usr/bin/x, sbin, lib, lib32, lib64, libx32 likewise.
// Every stand-in has the top-level symlinks (bin → usr/bin …) in its first
// layer, so no later layer may contain a real /bin or /lib directory.
func usrMerged(p string) string {
	first, rest, _ := strings.Cut(p, "/")
	switch first {
	case "bin", "sbin", "lib", "lib32", "lib64", "libx32":
		if rest == "" {
			return "usr/" + first
		}
		return "usr/" + first + "/" + rest
	}
	return p
}

// relPath returns the relative path from directory fromDir to target, both
// clean and root-relative.
func relPath(fromDir, target string) string {
	split := func(s string) []string {
		if s == "" || s == "." {
			return nil
		}
		return strings.Split(s, "/")
	}
	f, to := split(fromDir), split(target)
	i := 0
	for i < len(f) && i < len(to) && f[i] == to[i] {
		i++
	}
	var parts []string
	for range f[i:] {
		parts = append(parts, "..")
	}
	parts = append(parts, to[i:]...)
	if len(parts) == 0 {
		return "."
	}
	return strings.Join(parts, "/")
}
