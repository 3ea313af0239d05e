package bases

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// These tests download real inputs (Debian archive, Go module proxy, npm
// registry) into a persistent cache: $BITVAULT_CACHE_DIR/bases, default
// ~/.cache/bitvault/bases. The first run takes a few minutes, reruns less.

const (
	testGo   = "1.26.8"
	testNode = "22.23.3"
	testNpm  = "10.9.9"
)

var testSpec = Spec{
	Debian: Debian{Suite: "bookworm"},
	Standins: []Standin{
		{Ref: "golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d", Kind: KindGolang, Go: testGo},
		{Ref: "gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab", Kind: KindDistrolessStatic},
		{Ref: "node:22-bookworm-slim@sha256:83f487e0a63425e5b4d146fb5e5be574bcbe1b7b843d3ebafdd95eaf7767a7e5", Kind: KindNode, Node: testNode, Npm: testNpm},
		{Ref: "gcr.io/distroless/nodejs22-debian12:nonroot@sha256:13593b7570658e8477de39e2f4a1dd25db2f836d68a0ba771251572d23bb4f8e", Kind: KindDistrolessNodejs, Node: testNode},
	},
}

var bothPlatforms = []string{"linux/amd64", "linux/arm64"}

func testCacheDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BITVAULT_CACHE_DIR")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(home, ".cache", "bitvault")
	}
	return filepath.Join(dir, "bases")
}

func needTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (Debian host with Go): %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (apt-get with APT::Sandbox::User=root)")
	}
}

// fixture: every kind for both platforms, built once per test binary with
// UpdateLock into a temporary lock and layout.
type fixture struct {
	dir, layout, lock string
	built             []Built
	log               string
	took              time.Duration
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func builtAll(t *testing.T) *fixture {
	t.Helper()
	needTools(t)
	if testing.Short() {
		t.Skip("downloads and builds the stand-ins; skipped with -short")
	}
	fixOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bases-test-")
		if err != nil {
			fixErr = err
			return
		}
		f := &fixture{dir: dir, layout: filepath.Join(dir, "layout1"), lock: filepath.Join(dir, "bases.lock.json")}
		var log bytes.Buffer
		start := time.Now()
		f.built, fixErr = Build(context.Background(), Options{
			Spec: testSpec, Platforms: bothPlatforms, LayoutDir: f.layout,
			CacheDir: testCacheDir(t), LockFile: f.lock, UpdateLock: true, Log: &log,
		})
		f.took, f.log = time.Since(start), log.String()
		fix = f
	})
	if fixErr != nil {
		t.Fatalf("Build: %v\n%s", fixErr, fix.log)
	}
	return fix
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fix != nil {
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

func TestBuildAllKindsBothPlatforms(t *testing.T) {
	f := builtAll(t)
	t.Logf("first build (UpdateLock) %.1fs\n%s", f.took.Seconds(), f.log)
	if len(f.built) != len(testSpec.Standins) {
		t.Fatalf("built %d stand-ins, want %d", len(f.built), len(testSpec.Standins))
	}
	p, err := layout.FromPath(f.layout)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range f.built {
		s := testSpec.Standins[i]
		t.Run(s.Kind, func(t *testing.T) {
			if b.Ref != s.Ref || b.Kind != s.Kind {
				t.Fatalf("Built %+v for %+v", b, s)
			}
			root, err := p.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			idx, err := root.ImageIndex(b.Digest)
			if err != nil {
				t.Fatal(err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if im.Annotations[annotationRef] != s.Ref || !strings.HasPrefix(im.Annotations[annotationInputs], "sha256:") {
				t.Errorf("index annotations %v", im.Annotations)
			}
			if len(im.Manifests) != 2 {
				t.Fatalf("index has %d manifests, want 2", len(im.Manifests))
			}
			for j, want := range []string{"amd64", "arm64"} {
				d := im.Manifests[j]
				if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != want {
					t.Fatalf("manifest %d platform %+v, want linux/%s", j, d.Platform, want)
				}
				img, err := idx.Image(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if cf.OS != "linux" || cf.Architecture != want {
					t.Errorf("%s config os/arch %s/%s", want, cf.OS, cf.Architecture)
				}
				if !cf.Created.Time.Equal(epoch) {
					t.Errorf("%s config created %v", want, cf.Created)
				}
				for _, h := range cf.History {
					if !h.Created.Time.Equal(epoch) {
						t.Errorf("%s history created %v", want, h.Created)
					}
				}
				ls, _ := img.Layers()
				if len(ls) != len(cf.History) || len(ls) != len(cf.RootFS.DiffIDs) {
					t.Errorf("%d layers, %d history entries, %d diff IDs", len(ls), len(cf.History), len(cf.RootFS.DiffIDs))
				}
				// the arm64 image really carries arm64 binaries
				if s.Kind == KindNode || s.Kind == KindGolang {
					bin := map[string]string{KindNode: "usr/local/bin/node", KindGolang: "usr/local/go/bin/go"}[s.Kind]
					if m := elfMachine(t, img, bin); m != map[string]uint16{"amd64": 62, "arm64": 183}[want] {
						t.Errorf("%s: %s has ELF machine %d", want, bin, m)
					}
				}
			}
			if len(b.Inputs) == 0 || len(b.Platforms) != 2 {
				t.Errorf("Built inputs %d platforms %v", len(b.Inputs), b.Platforms)
			}
		})
	}

	// The lock lists every input with a digest and a source.
	l, err := readLock(f.lock)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range l.Inputs {
		if in.Version == "" || in.Digest == "" || in.Source == "" {
			t.Errorf("incomplete lock entry %+v", in)
		}
	}

	// Same inputs, fresh layout, the lock (no UpdateLock): identical digests.
	var log2 bytes.Buffer
	start := time.Now()
	layout2 := filepath.Join(f.dir, "layout2")
	again, err := Build(context.Background(), Options{
		Spec: testSpec, Platforms: bothPlatforms, LayoutDir: layout2,
		CacheDir: testCacheDir(t), LockFile: f.lock, Log: &log2,
	})
	if err != nil {
		t.Fatalf("second build: %v\n%s", err, log2.String())
	}
	t.Logf("second build (locked, fresh layout, warm cache) %.1fs", time.Since(start).Seconds())
	for i := range again {
		if again[i].Digest != f.built[i].Digest {
			t.Errorf("%s: digest %s on rebuild, %s before", again[i].Kind, again[i].Digest, f.built[i].Digest)
		}
	}
	if strings.Contains(log2.String(), "(downloaded") {
		t.Errorf("second build downloaded inputs despite the cache:\n%s", log2.String())
	}

	// Same layout again: nothing rebuilt.
	var log3 bytes.Buffer
	start = time.Now()
	third, err := Build(context.Background(), Options{
		Spec: testSpec, Platforms: bothPlatforms, LayoutDir: layout2,
		CacheDir: testCacheDir(t), LockFile: f.lock, Log: &log3,
	})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	t.Logf("third build (up to date) %s", took)
	if n := strings.Count(log3.String(), "up to date"); n != len(testSpec.Standins) {
		t.Errorf("rerun rebuilt something (%d up to date):\n%s", n, log3.String())
	}
	for i := range third {
		if third[i].Digest != f.built[i].Digest {
			t.Errorf("%s: rerun digest differs", third[i].Kind)
		}
	}
	if took > 10*time.Second {
		t.Errorf("up-to-date rerun took %s", took)
	}
}

// files applies an image's layers (no whiteouts in stand-ins) and returns
// the final headers and contents by path.
type fsEntry struct {
	hdr  *tar.Header
	data []byte
}

func imageFiles(t *testing.T, img v1.Image) map[string]fsEntry {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]fsEntry{}
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			var data []byte
			if h.Typeflag == tar.TypeReg && h.Size < 1<<20 {
				data, _ = io.ReadAll(tr)
			}
			out[strings.TrimSuffix(h.Name, "/")] = fsEntry{h, data}
		}
		rc.Close()
	}
	return out
}

func platformImage(t *testing.T, layoutDir string, idxDigest v1.Hash, arch string) v1.Image {
	t.Helper()
	p, err := layout.FromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	root, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := root.ImageIndex(idxDigest)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Architecture == arch {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("no %s image in %s", arch, idxDigest)
	return nil
}

func elfMachine(t *testing.T, img v1.Image, file string) uint16 {
	t.Helper()
	ls, _ := img.Layers()
	for _, l := range ls {
		rc, _ := l.Uncompressed()
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Name == file {
				hdr := make([]byte, 20)
				io.ReadFull(tr, hdr)
				rc.Close()
				return uint16(hdr[18]) | uint16(hdr[19])<<8
			}
		}
		rc.Close()
	}
	t.Fatalf("%s not in image", file)
	return 0
}

func builtByKind(t *testing.T, f *fixture, kind string) Built {
	for _, b := range f.built {
		if b.Kind == kind {
			return b
		}
	}
	t.Fatalf("no %s stand-in", kind)
	return Built{}
}

func TestDistrolessKinds(t *testing.T) {
	f := builtAll(t)
	for _, kind := range []string{KindDistrolessStatic, KindDistrolessNodejs} {
		for _, arch := range []string{"amd64", "arm64"} {
			t.Run(kind+"/"+arch, func(t *testing.T) {
				img := platformImage(t, f.layout, builtByKind(t, f, kind).Digest, arch)
				files := imageFiles(t, img)
				for _, bad := range []string{"usr/bin/sh", "usr/bin/bash", "usr/bin/busybox", "usr/bin/dpkg", "usr/bin/apt", "usr/bin/apt-get", "usr/sbin/sh", "var/lib/dpkg/status"} {
					if _, ok := files[bad]; ok {
						t.Errorf("%s is present", bad)
					}
				}
				if bin := files["bin"]; bin.hdr == nil || bin.hdr.Typeflag != tar.TypeSymlink || bin.hdr.Linkname != "usr/bin" {
					t.Errorf("/bin is not the merged-/usr symlink: %+v", bin.hdr)
				}
				for p := range files {
					if strings.HasPrefix(p, "usr/bin/") || strings.HasPrefix(p, "usr/sbin/") {
						t.Errorf("distroless has %s", p)
					}
				}
				passwd := string(files["etc/passwd"].data)
				if !strings.Contains(passwd, "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin") || !strings.HasPrefix(passwd, "root:x:0:0:") {
					t.Errorf("/etc/passwd:\n%s", passwd)
				}
				if !strings.Contains(string(files["etc/group"].data), "nonroot:x:65532:") {
					t.Errorf("/etc/group lacks nonroot")
				}
				ca := files[caBundlePath]
				if ca.hdr == nil || ca.hdr.Size == 0 {
					t.Fatalf("no CA bundle")
				}
				if n := strings.Count(string(ca.data), "-----BEGIN CERTIFICATE-----"); n < 100 {
					t.Errorf("CA bundle has %d certificates", n)
				}
				if e := files["usr/share/zoneinfo/Europe/Berlin"]; e.hdr == nil {
					t.Errorf("no zoneinfo")
				}
				if e := files["tmp"]; e.hdr == nil || e.hdr.Mode != 0o1777 {
					t.Errorf("/tmp: %+v", e.hdr)
				}
				if e := files["home/nonroot"]; e.hdr == nil || e.hdr.Mode != 0o700 || e.hdr.Uid != 65532 || e.hdr.Gid != 65532 {
					t.Errorf("/home/nonroot: %+v", e.hdr)
				}
				if _, ok := files["var/lib/dpkg/status.d/tzdata"]; !ok {
					t.Errorf("no status.d entry for tzdata")
				}
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if cf.Config.User != "65532" || cf.Config.WorkingDir != "/home/nonroot" {
					t.Errorf("config user %q workdir %q", cf.Config.User, cf.Config.WorkingDir)
				}
				if kind == KindDistrolessNodejs {
					if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/nodejs/bin/node" {
						t.Errorf("entrypoint %q", cf.Config.Entrypoint)
					}
					loader := map[string]string{"amd64": "usr/lib64/ld-linux-x86-64.so.2", "arm64": "usr/lib/ld-linux-aarch64.so.1"}[arch]
					if _, ok := files[loader]; !ok {
						t.Errorf("no dynamic loader %s", loader)
					}
					if _, ok := files["lib"]; !ok || files["lib"].hdr.Typeflag != tar.TypeSymlink {
						t.Errorf("/lib is not a symlink")
					}
				}
			})
		}
	}
}

// extract unpacks an image into dir (stand-ins have no whiteouts).
func extract(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			name := strings.TrimSuffix(h.Name, "/")
			dest := filepath.Join(dir, name)
			if !strings.HasPrefix(dest, dir+"/") {
				t.Fatalf("entry %s escapes", h.Name)
			}
			switch h.Typeflag {
			case tar.TypeDir:
				if err := os.MkdirAll(dest, 0o755); err != nil {
					t.Fatal(err)
				}
				os.Chmod(dest, os.FileMode(h.Mode&0o777)|modeBits(h.Mode))
				os.Lchown(dest, h.Uid, h.Gid)
			case tar.TypeReg:
				os.Remove(dest)
				w, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode&0o777))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := io.Copy(w, tr); err != nil {
					t.Fatal(err)
				}
				w.Close()
				os.Chmod(dest, os.FileMode(h.Mode&0o777)|modeBits(h.Mode))
				os.Lchown(dest, h.Uid, h.Gid)
			case tar.TypeSymlink:
				os.Remove(dest)
				if err := os.Symlink(h.Linkname, dest); err != nil {
					t.Fatal(err)
				}
			case tar.TypeLink:
				os.Remove(dest)
				if err := os.Link(filepath.Join(dir, h.Linkname), dest); err != nil {
					t.Fatal(err)
				}
			}
		}
		rc.Close()
	}
}

func modeBits(m int64) os.FileMode {
	var fm os.FileMode
	if m&0o1000 != 0 {
		fm |= os.ModeSticky
	}
	if m&0o2000 != 0 {
		fm |= os.ModeSetgid
	}
	if m&0o4000 != 0 {
		fm |= os.ModeSetuid
	}
	return fm
}

// TestStandinsRun runs the amd64 stand-ins' programs in a chroot of their
// unpacked file system (root; the worker here is amd64 only).
func TestStandinsRun(t *testing.T) {
	f := builtAll(t)
	for _, tool := range []string{"chroot", "unshare", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	rootsDir, roots := t.TempDir(), map[string]string{}
	for _, tc := range []struct {
		kind string
		argv []string
		want string
	}{
		{KindNode, []string{"/usr/local/bin/node", "-e", "console.log(1+1)"}, "2"},
		{KindNode, []string{"/bin/sh", "-c", "npm --version"}, testNpm},
		{KindNode, []string{"/bin/sh", "-c", "echo ok | grep -c ok && ls / >/dev/null && which wget"}, "1\n/usr/bin/wget"},
		{KindGolang, []string{"/usr/local/go/bin/go", "version"}, "go version go" + testGo + " linux/amd64"},
		{KindGolang, []string{"/bin/sh", "-c", "go env GOROOT GOPATH GOTOOLCHAIN"}, "/usr/local/go\n/go\nlocal"},
		// compile and link with the stand-in's own toolchain (pkg/tool exec bits, no cgo without gcc)
		{KindGolang, []string{"/bin/sh", "-c", `mkdir -p /tmp/h && cd /tmp/h && printf 'package main\nfunc main() { println("hi") }\n' >main.go && go mod init h 2>/dev/null && go build -o h . && ./h`}, "hi"},
		{KindDistrolessNodejs, []string{"/nodejs/bin/node", "-e", "console.log(process.version)"}, "v" + testNode},
	} {
		t.Run(tc.kind+"/"+filepath.Base(tc.argv[len(tc.argv)-1]), func(t *testing.T) {
			img := platformImage(t, f.layout, builtByKind(t, f, tc.kind).Digest, "amd64")
			root, ok := roots[tc.kind]
			if !ok {
				root = filepath.Join(rootsDir, tc.kind)
				if err := os.Mkdir(root, 0o755); err != nil {
					t.Fatal(err)
				}
				extract(t, img, root)
				roots[tc.kind] = root
			}
			cf, _ := img.ConfigFile()
			// A container gets /proc and /dev from its runtime; so does this
			// chroot, in a private mount namespace that takes them away again.
			for _, d := range []string{"proc", "dev"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"--mount", "--pid", "--fork", "--mount-proc=" + filepath.Join(root, "proc"),
				"/bin/sh", "-c", `mount --rbind /dev "$0/dev" && exec chroot "$0" "$@"`, root}, tc.argv...)
			cmd := exec.Command("unshare", args...)
			cmd.Env = append(cf.Config.Env, "HOME=/root")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("chroot %v: %v\n%s", tc.argv, err, out)
			}
			if got := strings.TrimSpace(string(out)); got != tc.want {
				t.Errorf("chroot %v printed %q, want %q", tc.argv, got, tc.want)
			}
		})
	}
}

// TestLock: a lock that does not match the world fails with an error that
// says how to fix it.
func TestLock(t *testing.T) {
	f := builtAll(t)
	orig, err := readLock(f.lock)
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{Debian: testSpec.Debian, Standins: []Standin{testSpec.Standins[1]}} // distroless-static
	for _, tc := range []struct {
		name   string
		edit   func(l *lockFile)
		errHas []string
	}{
		{"tampered sha256", func(l *lockFile) {
			for i, in := range l.Inputs {
				if in.Name == "deb:netbase" && in.Platform == "linux/amd64" {
					l.Inputs[i].Digest = "sha256:" + strings.Repeat("0", 64)
				}
			}
		}, []string{"netbase", "sha256", "--update-lock"}},
		{"missing input", func(l *lockFile) {
			var kept []Input
			for _, in := range l.Inputs {
				if in.Name != "deb:tzdata" {
					kept = append(kept, in)
				}
			}
			l.Inputs = kept
		}, []string{"deb:tzdata (linux/amd64) is not in the lock", "--update-lock"}},
		{"other suite", func(l *lockFile) { l.Debian.Suite = "trixie" }, []string{"trixie", "--update-lock"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := *orig
			l.Inputs = append([]Input(nil), orig.Inputs...)
			tc.edit(&l)
			lockFile := filepath.Join(t.TempDir(), "lock.json")
			b, _ := json.Marshal(l)
			if err := os.WriteFile(lockFile, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Build(context.Background(), Options{
				Spec: spec, Platforms: []string{"linux/amd64"}, LayoutDir: t.TempDir(),
				CacheDir: testCacheDir(t), LockFile: lockFile,
			})
			if err == nil {
				t.Fatal("Build succeeded with a wrong lock")
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
		})
	}
	// Updating the lock for a subset of stand-ins and platforms keeps the
	// other entries.
	t.Run("update subset", func(t *testing.T) {
		lockFile := filepath.Join(t.TempDir(), "lock.json")
		b, _ := os.ReadFile(f.lock)
		if err := os.WriteFile(lockFile, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Build(context.Background(), Options{
			Spec: spec, Platforms: []string{"linux/amd64"}, LayoutDir: t.TempDir(),
			CacheDir: testCacheDir(t), LockFile: lockFile, UpdateLock: true,
		}); err != nil {
			t.Fatal(err)
		}
		after, err := readLock(lockFile)
		if err != nil {
			t.Fatal(err)
		}
		if len(after.Inputs) != len(orig.Inputs) {
			t.Errorf("lock has %d entries after a subset update, %d before", len(after.Inputs), len(orig.Inputs))
		}
	})
	t.Run("no lock", func(t *testing.T) {
		_, err := Build(context.Background(), Options{
			Spec: spec, LayoutDir: t.TempDir(), CacheDir: testCacheDir(t), LockFile: filepath.Join(t.TempDir(), "none.json"),
		})
		if err == nil || !strings.Contains(err.Error(), "--update-lock") {
			t.Errorf("error %v", err)
		}
	})
}

// The applet table parsed from the binary equals `busybox --list`.
func TestBusyboxApplets(t *testing.T) {
	f := builtAll(t)
	img := platformImage(t, f.layout, builtByKind(t, f, KindNode).Digest, "amd64")
	bin := filepath.Join(t.TempDir(), "busybox")
	ls, _ := img.Layers()
	for _, l := range ls {
		rc, _ := l.Uncompressed()
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if h.Name == "usr/bin/busybox" {
				data, _ := io.ReadAll(tr)
				if err := os.WriteFile(bin, data, 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}
		rc.Close()
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := busyboxApplets(data)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--list").Output()
	if err != nil {
		t.Skipf("cannot run busybox here: %v", err)
	}
	listed := strings.Fields(string(out))
	if strings.Join(parsed, " ") != strings.Join(listed, " ") {
		t.Errorf("parsed applets differ from --list:\n%v\n%v", parsed, listed)
	}
}

func TestOptionsValidation(t *testing.T) {
	base := Options{Spec: testSpec, LayoutDir: "l", CacheDir: "c", LockFile: "x"}
	for _, tc := range []struct {
		name string
		edit func(o *Options)
		has  string
	}{
		{"platform", func(o *Options) { o.Platforms = []string{"linux/s390x"} }, "not supported"},
		{"kind", func(o *Options) { o.Spec.Standins = []Standin{{Ref: "x", Kind: "alpine"}} }, "unknown kind"},
		{"go version", func(o *Options) { o.Spec.Standins = []Standin{{Ref: "x", Kind: KindGolang}} }, "needs go"},
		{"npm range", func(o *Options) {
			o.Spec.Standins = []Standin{{Ref: "x", Kind: KindNode, Node: "22.23.3", Npm: "10.x"}}
		}, "exact npm"},
		{"duplicate", func(o *Options) { o.Spec.Standins = []Standin{testSpec.Standins[1], testSpec.Standins[1]} }, "duplicate"},
		{"suite", func(o *Options) { o.Spec.Debian.Suite = "" }, "suite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base
			o.Spec.Standins = append([]Standin(nil), base.Spec.Standins...)
			tc.edit(&o)
			_, err := Build(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.has) {
				t.Errorf("error %v, want %q", err, tc.has)
			}
			if errors.Is(err, errNotLocked) {
				t.Errorf("validation reached the lock")
			}
		})
	}
}
