package bases

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/bitvault/bitvault/internal/atomicfile"
)

// apt drives the host's apt-get/apt-cache against private state directories
// (one per architecture under CacheDir/apt/<arch>): the host's sources and
// keyrings are used, its lists, package cache, dpkg status and architecture
// configuration are never touched.
type apt struct {
	dir string // CacheDir/apt

	mu      sync.Mutex
	updated map[string]bool // arch -> lists refreshed during this Build
}

type debInfo struct {
	Package, Version, SHA256, URL string
}

func (a *apt) opts(arch string) []string {
	d := filepath.Join(a.dir, arch)
	return []string{
		"-q",
		"-oAPT::Architecture=" + arch,
		"-oAPT::Architectures=" + arch,
		"-oDir::State::Lists=" + filepath.Join(d, "lists"),
		"-oDir::State::status=" + filepath.Join(d, "status"),
		"-oDir::Cache=" + filepath.Join(d, "cache"),
		"-oDir::Cache::Archives=" + filepath.Join(d, "archives"),
		"-oAPT::Sandbox::User=root",
		"-oAcquire::Languages=none",
		"-oAcquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
	}
}

// lockArch serialises apt runs on one architecture's state directory across
// processes (apt itself fails instead of waiting).
func (a *apt) lockArch(arch string) (func(), error) {
	d := filepath.Join(a.dir, arch)
	for _, sub := range []string{"lists/partial", "cache", "archives/partial"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(d, "status")); err != nil {
		if err := os.WriteFile(filepath.Join(d, "status"), nil, 0o644); err != nil {
			return nil, err
		}
	}
	return flock(filepath.Join(a.dir, arch+".lock"))
}

func run(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("%s: not found on PATH (bases needs Debian's apt and dpkg-deb)", name)
		}
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args[len(args)-min(len(args), 2):], " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// update refreshes the package lists of arch once per Build and checks that
// the host's sources serve suite.
func (a *apt) update(ctx context.Context, arch, suite string) error {
	a.mu.Lock()
	done := a.updated[arch]
	a.mu.Unlock()
	if done {
		return nil
	}
	unlock, err := a.lockArch(arch)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := run(ctx, a.dir, "apt-get", append(a.opts(arch), "update")...); err != nil {
		return fmt.Errorf("apt-get update (%s): %w", arch, err)
	}
	suites, err := listSuites(filepath.Join(a.dir, arch, "lists"))
	if err != nil {
		return err
	}
	if !suites[suite] {
		var have []string
		for s := range suites {
			have = append(have, s)
		}
		sort.Strings(have)
		return fmt.Errorf("the host's apt sources serve suites %v, not %q: fix bases.debian.suite or the host's /etc/apt/sources.list.d", have, suite)
	}
	a.mu.Lock()
	a.updated[arch] = true
	a.mu.Unlock()
	return nil
}

// listSuites reads the Codename/Suite fields of the fetched Release files.
func listSuites(lists string) (map[string]bool, error) {
	files, err := filepath.Glob(filepath.Join(lists, "*Release"))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			line := sc.Text() // checksum lines start with a space and never match
			for _, k := range []string{"Codename: ", "Suite: "} {
				if v, ok := strings.CutPrefix(line, k); ok {
					out[strings.TrimSpace(v)] = true
				}
			}
		}
	}
	return out, nil
}

// resolve returns the candidate version, sha256 and URL of each package for
// arch (lists must be up to date).
func (a *apt) resolve(ctx context.Context, arch string, pkgs []string) (map[string]debInfo, error) {
	unlock, err := a.lockArch(arch)
	if err != nil {
		return nil, err
	}
	defer unlock()
	out, err := run(ctx, a.dir, "apt-cache", append(append(a.opts(arch), "show", "--no-all-versions"), pkgs...)...)
	if err != nil {
		return nil, fmt.Errorf("apt-cache show (%s): %w", arch, err)
	}
	infos := map[string]debInfo{}
	for _, para := range parseParagraphs(out) {
		p := para["Package"]
		if _, dup := infos[p]; dup || p == "" {
			continue
		}
		infos[p] = debInfo{Package: p, Version: para["Version"], SHA256: para["SHA256"]}
	}
	var withVer []string
	for _, p := range pkgs {
		i, ok := infos[p]
		if !ok || i.Version == "" || i.SHA256 == "" {
			return nil, fmt.Errorf("apt-cache show (%s): no candidate for %s", arch, p)
		}
		withVer = append(withVer, p+"="+i.Version)
	}
	uris, err := a.printURIs(ctx, arch, withVer)
	if err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		i := infos[p]
		u, ok := uris[i.SHA256]
		if !ok {
			return nil, fmt.Errorf("apt-get download --print-uris (%s): no URI for %s=%s with sha256 %s", arch, p, i.Version, i.SHA256)
		}
		i.URL = u
		infos[p] = i
	}
	return infos, nil
}

// printURIs maps sha256 → URL for the given pkg=version list.
func (a *apt) printURIs(ctx context.Context, arch string, pkgVers []string) (map[string]string, error) {
	tmp, err := os.MkdirTemp(a.dir, "uris-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out, err := run(ctx, tmp, "apt-get", append(append(a.opts(arch), "download", "--print-uris"), pkgVers...)...)
	if err != nil {
		return nil, fmt.Errorf("apt-get download --print-uris (%s): %w", arch, err)
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[3], "SHA256:") {
			continue
		}
		m[strings.TrimPrefix(f[3], "SHA256:")] = strings.Trim(f[0], "'")
	}
	return m, nil
}

// download fetches pkg=version for arch into dest and checks its sha256.
func (a *apt) download(ctx context.Context, arch, pkg, version, sha, dest string) error {
	unlock, err := a.lockArch(arch)
	if err != nil {
		return err
	}
	defer unlock()
	tmp, err := os.MkdirTemp(a.dir, "dl-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := run(ctx, tmp, "apt-get", append(a.opts(arch), "download", pkg+"="+version)...); err != nil {
		return fmt.Errorf("%w (the Debian archive keeps only current versions; if %s %s is gone, run 'bvrelease bases --update-lock' to move to the current one)", err, pkg, version)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if len(debs) != 1 {
		return fmt.Errorf("apt-get download %s=%s: expected one .deb, found %d", pkg, version, len(debs))
	}
	got, err := fileSHA256(debs[0])
	if err != nil {
		return err
	}
	if got != sha {
		return fmt.Errorf("%s %s (%s) from the archive has sha256 %s but the lock says %s: the archive or the lock changed; check, then run 'bvrelease bases --update-lock'", pkg, version, arch, got, sha)
	}
	return moveInto(debs[0], dest)
}

func parseParagraphs(b []byte) []map[string]string {
	var out []map[string]string
	cur := map[string]string{}
	last := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			if len(cur) > 0 {
				out = append(out, cur)
				cur = map[string]string{}
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last != "" {
				cur[last] += "\n" + line
			}
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = k
		cur[k] = strings.TrimSpace(v)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

// moveInto renames (or copies) src to dest atomically, creating dest's dir.
func moveInto(src, dest string) error {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	if err := os.Rename(src, dest); err == nil {
		return nil
	}
	return atomicfile.Copy(src, dest, 0o644)
}

// debFile is the content of one .deb: its data tar entries and its control
// file (kept as /var/lib/dpkg/status.d/<package>, as distroless does, so
// SBOM and vulnerability scanners see the Debian packages).
type debFile struct {
	Package, Version, Arch string
	control                []byte
	entries                []debEntry
}

type debEntry struct {
	name string // clean, root-relative, as shipped (not yet usr-merged)
	hdr  *tar.Header
	data []byte
}

func readDeb(ctx context.Context, file string) (*debFile, error) {
	control, err := run(ctx, "", "dpkg-deb", "--info", file, "control")
	if err != nil {
		return nil, err
	}
	fields := parseParagraphs(control)
	if len(fields) == 0 || fields[0]["Package"] == "" {
		return nil, fmt.Errorf("%s: no control paragraph", file)
	}
	data, err := run(ctx, "", "dpkg-deb", "--fsys-tarfile", file)
	if err != nil {
		return nil, err
	}
	d := &debFile{Package: fields[0]["Package"], Version: fields[0]["Version"], Arch: fields[0]["Architecture"], control: control}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		name, err := cleanPath(h.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		if name == "" {
			continue
		}
		e := debEntry{name: name, hdr: h}
		if h.Typeflag == tar.TypeReg {
			if e.data, err = io.ReadAll(tr); err != nil {
				return nil, fmt.Errorf("%s: %s: %w", file, name, err)
			}
		}
		d.entries = append(d.entries, e)
	}
	return d, nil
}

// droppedByDefault: documentation and packaging metadata no stand-in needs.
func droppedByDefault(p string) bool {
	for _, pre := range []string{"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/gdb", "usr/share/gcc"} {
		if p == pre || strings.HasPrefix(p, pre+"/") {
			return true
		}
	}
	return false
}

// install adds the package's files to t: paths normalised and usr-merged,
// docs dropped, keep (if non-nil) selecting which merged paths to take;
// relative symlinks are re-pointed when their own location moved; hardlinks
// to a dropped file become copies. It also writes the status.d entry.
func (d *debFile) install(t *tree, keep func(p string) bool) error {
	byName := map[string]*debEntry{}
	for i := range d.entries {
		byName[d.entries[i].name] = &d.entries[i]
	}
	for _, e := range d.entries {
		p := usrMerged(e.name)
		if droppedByDefault(p) || (keep != nil && !keep(p)) {
			continue
		}
		mode := e.hdr.Mode & 0o7777
		switch e.hdr.Typeflag {
		case tar.TypeDir:
			t.put(p, &entry{typ: tar.TypeDir, mode: mode, uid: e.hdr.Uid, gid: e.hdr.Gid})
		case tar.TypeReg:
			t.put(p, &entry{typ: tar.TypeReg, mode: mode, uid: e.hdr.Uid, gid: e.hdr.Gid, data: e.data})
		case tar.TypeSymlink:
			target := e.hdr.Linkname
			if !strings.HasPrefix(target, "/") && p != e.name {
				abs, err := cleanPath(path.Join(path.Dir(e.name), target))
				if err != nil {
					return fmt.Errorf("%s: %s: %w", d.Package, e.name, err)
				}
				target = relPath(path.Dir(p), usrMerged(abs))
			}
			t.put(p, &entry{typ: tar.TypeSymlink, mode: 0o777, uid: e.hdr.Uid, gid: e.hdr.Gid, link: target})
		case tar.TypeLink:
			tn, err := cleanPath(e.hdr.Linkname)
			if err != nil {
				return fmt.Errorf("%s: %s: %w", d.Package, e.name, err)
			}
			tm := usrMerged(tn)
			if droppedByDefault(tm) || (keep != nil && !keep(tm)) {
				src := byName[tn]
				if src == nil || src.hdr.Typeflag != tar.TypeReg {
					return fmt.Errorf("%s: hardlink %s to %s: target is not a regular file in the package", d.Package, e.name, tn)
				}
				t.put(p, &entry{typ: tar.TypeReg, mode: src.hdr.Mode & 0o7777, uid: src.hdr.Uid, gid: src.hdr.Gid, data: src.data})
				continue
			}
			t.put(p, &entry{typ: tar.TypeLink, link: tm})
		default:
			return fmt.Errorf("%s: %s: unsupported tar entry type %q", d.Package, e.name, e.hdr.Typeflag)
		}
	}
	t.file("var/lib/dpkg/status.d/"+d.Package, 0o644, d.control)
	return nil
}
