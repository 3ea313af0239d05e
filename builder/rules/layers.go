package rules

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// filesystem is what walkLayers learns from an image's layers.
type filesystem struct {
	final     map[string]byte // path (no leading slash) → tar type flag, after whiteouts
	late      []lateFile      // the first maxListed entries with an mtime after the epoch
	lateCount int
	layers    []layerFiles
}

type lateFile struct {
	layer int
	path  string
	mtime time.Time
}

// layerFiles is what one layer adds, for the layer-order heuristic.
type layerFiles struct {
	depTrees map[string]string // project root → the dependency tree path under it
	files    []string          // non-directory entries outside dependency trees
}

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
)

// walkLayers reads every layer once, in order, applying whiteouts as a
// container runtime would.
func walkLayers(layers []v1.Layer, epoch time.Time) (*filesystem, error) {
	fs := &filesystem{final: map[string]byte{}}
	for i, l := range layers {
		if err := fs.readLayer(i, l, epoch); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
	}
	return fs, nil
}

type tarEntry struct {
	path string
	typ  byte
}

func (fs *filesystem) readLayer(idx int, l v1.Layer, epoch time.Time) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var adds []tarEntry
	whiteouts := map[string]bool{}
	opaque := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p := cleanPath(h.Name)
		if p == "" {
			continue
		}
		if h.ModTime.After(epoch) {
			if len(fs.late) < maxListed {
				fs.late = append(fs.late, lateFile{idx, p, h.ModTime})
			}
			fs.lateCount++
		}
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		switch {
		case base == whiteoutOpaque:
			opaque[dir] = true
		case strings.HasPrefix(base, whiteoutPrefix):
			whiteouts[path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix))] = true
		default:
			adds = append(adds, tarEntry{p, h.Typeflag})
		}
	}
	// Whiteouts hide what lower layers hold; this layer's own entries come after.
	if len(whiteouts) > 0 || len(opaque) > 0 {
		for p := range fs.final {
			if hidden(p, whiteouts, opaque) {
				delete(fs.final, p)
			}
		}
	}
	lf := layerFiles{depTrees: map[string]string{}}
	for _, e := range adds {
		fs.final[e.path] = e.typ
		if e.typ == tar.TypeDir {
			continue
		}
		if root, tree, ok := dependencyTree(e.path); ok {
			if _, seen := lf.depTrees[root]; !seen {
				lf.depTrees[root] = tree
			}
			continue
		}
		lf.files = append(lf.files, e.path)
	}
	fs.layers = append(fs.layers, lf)
	return nil
}

// hidden reports whether p is removed by a whiteout of itself or an ancestor,
// or lies below an opaque directory.
func hidden(p string, whiteouts, opaque map[string]bool) bool {
	if whiteouts[p] {
		return true
	}
	for d := p; ; {
		i := strings.LastIndexByte(d, '/')
		if i < 0 {
			return opaque[""]
		}
		d = d[:i]
		if whiteouts[d] || opaque[d] {
			return true
		}
	}
}

func cleanPath(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

var (
	binDirs = []string{"bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "usr/local/sbin", "busybox"}
	shells  = []string{"sh", "bash", "ash", "dash", "zsh", "ksh", "mksh", "busybox"}
	pkgMgrs = []string{"apt", "apt-get", "dpkg", "apk", "yum", "dnf", "microdnf", "rpm", "npm", "npx", "yarn", "pnpm"}
	pipRE   = regexp.MustCompile(`^pip[0-9.]*$`)
	depDirs = []string{"node_modules", "vendor", "site-packages", ".venv"}
	sysDirs = []string{"bin", "boot", "busybox", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "nodejs", "proc", "root", "run", "sbin", "sys", "tmp", "usr", "var"}
)

// forbiddenBinaries lists the shells and package managers of the final
// filesystem: by name on the bin paths, and busybox anywhere.
func (fs *filesystem) forbiddenBinaries() (sh, pm []string) {
	for p, t := range fs.final {
		if t == tar.TypeDir {
			continue
		}
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		onPath := slices.Contains(binDirs, dir)
		switch {
		case base == "busybox" || onPath && slices.Contains(shells, base):
			sh = append(sh, p)
		case onPath && (slices.Contains(pkgMgrs, base) || pipRE.MatchString(base)):
			pm = append(pm, p)
		}
	}
	slices.Sort(sh)
	slices.Sort(pm)
	return sh, pm
}

// dependencyTree reports whether p lies in a dependency tree, with the project
// root that holds the tree ("" for /) and the tree's path.
func dependencyTree(p string) (root, tree string, ok bool) {
	parts := strings.Split(p, "/")
	for i, c := range parts[:len(parts)-1] {
		if slices.Contains(depDirs, c) {
			return strings.Join(parts[:i], "/"), strings.Join(parts[:i+1], "/"), true
		}
	}
	return "", "", false
}

type orderProblem struct {
	app, dep      int
	root, depTree string
	appFiles      []string
}

// layerOrderProblems applies the heuristic documented in the package comment:
// for each project root, the first application-code-only layer that precedes a
// layer adding that root's dependency tree.
func (fs *filesystem) layerOrderProblems() []orderProblem {
	var out []orderProblem
	reported := map[string]bool{}
	for j, dl := range fs.layers {
		for _, root := range sortedKeys(dl.depTrees) {
			if reported[root] {
				continue
			}
			for i := range j {
				if files := fs.layers[i].appFilesUnder(root); len(files) > 0 {
					out = append(out, orderProblem{app: i, dep: j, root: root, depTree: dl.depTrees[root], appFiles: files})
					reported[root] = true
					break
				}
			}
		}
	}
	return out
}

// appFilesUnder returns the files of a layer that only adds application code
// for root, or nil.
func (lf layerFiles) appFilesUnder(root string) []string {
	if len(lf.depTrees) > 0 {
		return nil
	}
	var files []string
	for _, f := range lf.files {
		if root == "" {
			top, _, _ := strings.Cut(f, "/")
			if !slices.Contains(sysDirs, top) {
				files = append(files, f)
			}
		} else if strings.HasPrefix(f, root+"/") {
			files = append(files, f)
		}
	}
	return files
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
