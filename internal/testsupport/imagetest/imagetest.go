// Package imagetest builds small, deterministic OCI images in memory for
// tests: tar layers from a list of files, and images with a platform set in
// the config.
package imagetest

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one tar entry.
type File struct {
	Name    string
	Type    byte // tar.TypeReg, tar.TypeDir, tar.TypeSymlink, ...
	Mode    int64
	Body    []byte
	Link    string
	ModTime time.Time // zero: the Unix epoch
}

// Dir is a 0755 directory.
func Dir(name string) File { return File{Name: name, Type: tar.TypeDir, Mode: 0o755} }

// Reg is a regular file.
func Reg(name string, mode int64, body []byte) File {
	return File{Name: name, Type: tar.TypeReg, Mode: mode, Body: body}
}

// Symlink is a symbolic link to target.
func Symlink(name, target string) File {
	return File{Name: name, Type: tar.TypeSymlink, Mode: 0o777, Link: target}
}

// NewLayer is an uncompressed-tar OCI layer holding files, in order.
func NewLayer(files ...File) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		mt := f.ModTime
		if mt.IsZero() {
			mt = time.Unix(0, 0)
		}
		h := &tar.Header{Name: f.Name, Typeflag: f.Type, Mode: f.Mode, Linkname: f.Link, ModTime: mt, Format: tar.FormatPAX}
		if f.Type == tar.TypeReg {
			h.Size = int64(len(f.Body))
		}
		if f.Type == tar.TypeDir && !strings.HasSuffix(h.Name, "/") {
			h.Name += "/"
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.Body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// Layer is NewLayer for tests.
func Layer(t testing.TB, files ...File) v1.Layer {
	t.Helper()
	l, err := NewLayer(files...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image is an OCI image of layers whose config says os/arch (e.g. "linux",
// "arm64"); edit may change the config further (nil leaves it).
func Image(t testing.TB, os, arch string, edit func(*v1.ConfigFile), layers ...v1.Layer) v1.Image {
	t.Helper()
	base := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = os, arch
	if edit != nil {
		edit(cf)
	}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}
