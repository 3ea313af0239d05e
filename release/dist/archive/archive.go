// Package archive writes release archives whose bytes depend only on the files
// they hold: .tar.gz (linux, darwin) and .zip (windows).
//
// Every entry has the same modification time (the release's SOURCE_DATE_EPOCH,
// the commit time), owner 0:0 with no user or group names, mode 0755 for
// executables and 0644 for everything else whatever the file system says, and
// entries are sorted by name. Files sit at the root of the archive (no
// top-level directory). tar entries are USTAR; the gzip header carries no file
// name, no modification time and OS "unknown"; zip entries are deflated, carry
// the Unix mode and the fixed time (MS-DOS field and the extended-timestamp
// extra field, both from the same UTC time). Compression is Go's own
// (compress/flate at the best level), so the same Go toolchain gives the same
// bytes.
package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Format is an archive format.
type Format string

const (
	TarGz Format = "tar.gz"
	Zip   Format = "zip"
)

// FormatFor is the format used for a GOOS: zip for windows, tar.gz elsewhere.
func FormatFor(goos string) Format {
	if goos == "windows" {
		return Zip
	}
	return TarGz
}

// File is one entry: its name in the archive and where its content is.
type File struct {
	Name       string // slash-separated, relative, e.g. bitvault or README.md
	Source     string // path on disk
	Executable bool   // mode 0755 (else 0644)
}

func (f File) mode() int64 {
	if f.Executable {
		return 0o755
	}
	return 0o644
}

// Result is a written archive.
type Result struct {
	Path   string
	SHA256 string // hex
	Size   int64
}

// Create writes the archive at path (atomically: a temporary file renamed).
func Create(path string, format Format, files []File, mtime time.Time) (*Result, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".archive-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(tmp, h)}
	if err := Write(cw, format, files, mtime); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return nil, err
	}
	return &Result{Path: path, SHA256: hex.EncodeToString(h.Sum(nil)), Size: cw.n}, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Write writes the archive to w.
func Write(w io.Writer, format Format, files []File, mtime time.Time) error {
	if mtime.IsZero() || mtime.Unix() <= 0 {
		return errors.New("no modification time: pass the release's SOURCE_DATE_EPOCH")
	}
	mtime = time.Unix(mtime.Unix(), 0).UTC()
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b File) int { return strings.Compare(a.Name, b.Name) })
	for i, f := range sorted {
		if f.Name == "" || path.IsAbs(f.Name) || path.Clean(f.Name) != f.Name || strings.HasPrefix(f.Name, "../") || f.Name == ".." {
			return fmt.Errorf("entry %q: want a clean relative name", f.Name)
		}
		if i > 0 && sorted[i-1].Name == f.Name {
			return fmt.Errorf("entry %q listed twice", f.Name)
		}
	}
	switch format {
	case TarGz:
		return writeTarGz(w, sorted, mtime)
	case Zip:
		return writeZip(w, sorted, mtime)
	default:
		return fmt.Errorf("archive format %q: want tar.gz or zip", format)
	}
}

func writeTarGz(w io.Writer, files []File, mtime time.Time) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	zw.Header = gzip.Header{OS: 255} // no name, no time, OS unknown
	tw := tar.NewWriter(zw)
	for _, f := range files {
		data, err := os.ReadFile(f.Source)
		if err != nil {
			return err
		}
		hdr := &tar.Header{
			Typeflag: tar.TypeReg, Name: f.Name, Size: int64(len(data)), Mode: f.mode(),
			ModTime: mtime, Uid: 0, Gid: 0, Format: tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("entry %s: %w", f.Name, err)
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

func writeZip(w io.Writer, files []File, mtime time.Time) error {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestCompression)
	})
	for _, f := range files {
		data, err := os.ReadFile(f.Source)
		if err != nil {
			return err
		}
		hdr := &zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: mtime}
		hdr.SetMode(fs.FileMode(f.mode()))
		fw, err := zw.CreateHeader(hdr)
		if err != nil {
			return fmt.Errorf("entry %s: %w", f.Name, err)
		}
		if _, err := fw.Write(data); err != nil {
			return err
		}
	}
	return zw.Close()
}

// Entry is what an archive holds, as read back.
type Entry struct {
	Name    string
	Mode    fs.FileMode // permission bits
	ModTime time.Time
	Uid     int
	Gid     int
	Data    []byte
}

// Read returns the entries of an archive, in archive order, refusing anything
// but regular files with clean relative names.
func Read(file string) ([]Entry, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []Entry
	switch {
	case strings.HasSuffix(file, ".tar.gz"):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, err
			}
			if h.Typeflag != tar.TypeReg {
				return nil, fmt.Errorf("%s: entry %s is not a regular file", filepath.Base(file), h.Name)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				return nil, err
			}
			out = append(out, Entry{Name: h.Name, Mode: fs.FileMode(h.Mode).Perm(), ModTime: h.ModTime, Uid: h.Uid, Gid: h.Gid, Data: b})
		}
	case strings.HasSuffix(file, ".zip"):
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, err
		}
		for _, f := range zr.File {
			if !f.Mode().IsRegular() {
				return nil, fmt.Errorf("%s: entry %s is not a regular file", filepath.Base(file), f.Name)
			}
			rc, err := f.Open()
			if err != nil {
				return nil, err
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return nil, err
			}
			out = append(out, Entry{Name: f.Name, Mode: f.Mode().Perm(), ModTime: f.Modified, Data: b})
		}
	default:
		return nil, fmt.Errorf("%s: not a .tar.gz or .zip", filepath.Base(file))
	}
	for _, e := range out {
		if e.Name == "" || path.IsAbs(e.Name) || path.Clean(e.Name) != e.Name || strings.HasPrefix(e.Name, "../") {
			return nil, fmt.Errorf("%s: entry %q escapes the archive", filepath.Base(file), e.Name)
		}
	}
	return out, nil
}

// Extract writes an archive's files under dir with their modes.
func Extract(file, dir string) error {
	entries, err := Read(file)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(dir, filepath.FromSlash(e.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, e.Data, e.Mode); err != nil {
			return err
		}
	}
	return nil
}
