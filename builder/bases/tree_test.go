package bases

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"testing"
)

func TestCleanPathAndUsrMerge(t *testing.T) {
	for _, tc := range []struct{ in, clean, merged string }{
		{"./lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libc.so.6"},
		{"/bin/busybox", "bin/busybox", "usr/bin/busybox"},
		{"./lib64/", "lib64", "usr/lib64"},
		{"sbin", "sbin", "usr/sbin"},
		{"usr/lib/os-release", "usr/lib/os-release", "usr/lib/os-release"},
		{"./libexec/x", "libexec/x", "libexec/x"},
		{"etc//passwd", "etc/passwd", "etc/passwd"},
		{"./", "", ""},
	} {
		c, err := cleanPath(tc.in)
		if err != nil || c != tc.clean {
			t.Errorf("cleanPath(%q) = %q, %v; want %q", tc.in, c, err, tc.clean)
		}
		if c != "" {
			if m := usrMerged(c); m != tc.merged {
				t.Errorf("usrMerged(%q) = %q, want %q", c, m, tc.merged)
			}
		}
	}
	if _, err := cleanPath("../etc/passwd"); err == nil {
		t.Error("cleanPath accepted a path escaping the root")
	}
}

func TestRelPath(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"usr/lib", "usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1", "aarch64-linux-gnu/ld-linux-aarch64.so.1"},
		{"etc", "usr/lib/os-release", "../usr/lib/os-release"},
		{"usr/local/bin", "usr/local/lib/node_modules/npm/bin/npm-cli.js", "../lib/node_modules/npm/bin/npm-cli.js"},
		{"", "usr/bin", "usr/bin"},
	} {
		if got := relPath(tc.from, tc.to); got != tc.want {
			t.Errorf("relPath(%q, %q) = %q, want %q", tc.from, tc.to, got, tc.want)
		}
	}
}

// A relative symlink shipped under /lib must still point at the same file
// once moved to /usr/lib, and a hardlink to a dropped doc becomes a copy.
func TestDebInstallRewrites(t *testing.T) {
	d := &debFile{Package: "x", control: []byte("Package: x\n")}
	add := func(name string, typ byte, link string, data string) {
		d.entries = append(d.entries, debEntry{name: name, hdr: &tar.Header{Name: "./" + name, Typeflag: typ, Linkname: link, Mode: 0o644}, data: []byte(data)})
	}
	add("lib", tar.TypeDir, "", "")
	add("lib/aarch64-linux-gnu/ld.so", tar.TypeReg, "", "ELF")
	add("lib/ld.so", tar.TypeSymlink, "aarch64-linux-gnu/ld.so", "")
	add("lib/up", tar.TypeSymlink, "../usr/share/x", "")
	add("lib64/ld", tar.TypeSymlink, "/lib/aarch64-linux-gnu/ld.so", "")
	add("usr/share/doc/x/README", tar.TypeReg, "", "docs")
	add("usr/share/x", tar.TypeLink, "./usr/share/doc/x/README", "")
	add("usr/lib/hard", tar.TypeLink, "./lib/aarch64-linux-gnu/ld.so", "")
	tr := newTree()
	if err := d.install(tr, nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"usr/lib/ld.so":           "aarch64-linux-gnu/ld.so",
		"usr/lib/up":              "../share/x",
		"usr/lib64/ld":            "/lib/aarch64-linux-gnu/ld.so",
		"usr/lib/hard":            "usr/lib/aarch64-linux-gnu/ld.so",
		"usr/share/x":             "",
		"var/lib/dpkg/status.d/x": "",
	}
	for p, link := range want {
		e, ok := tr.m[p]
		if !ok {
			t.Errorf("%s missing", p)
			continue
		}
		if e.link != link {
			t.Errorf("%s -> %q, want %q", p, e.link, link)
		}
	}
	if string(tr.m["usr/share/x"].data) != "docs" || tr.m["usr/share/x"].typ != tar.TypeReg {
		t.Errorf("hardlink to a dropped doc did not become a copy")
	}
	for p := range tr.m {
		if p == "lib" || p == "lib64" || p == "usr/share/doc/x/README" {
			t.Errorf("%s should not be in the tree", p)
		}
	}
}

func readLayer(t *testing.T, l *memLayer) []*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var hs []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hs
		}
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
}

func TestLayerDeterministic(t *testing.T) {
	mk := func(reverse bool) *memLayer {
		tr := newTree()
		ops := []func(){
			func() { tr.file("usr/bin/z", 0o755, []byte("z")) },
			func() { tr.file("a-b", 0o644, []byte("ab")) },
			func() { tr.dir("tmp", 0o1777, 0, 0) },
			func() { tr.symlink("bin", "usr/bin") },
			func() { tr.put("usr/bin/a", &entry{typ: tar.TypeLink, link: "usr/bin/z"}) },
			func() { tr.dir("home/nonroot", 0o700, 65532, 65532) },
		}
		if reverse {
			for i := len(ops) - 1; i >= 0; i-- {
				ops[i]()
			}
		} else {
			for _, op := range ops {
				op()
			}
		}
		l, err := tr.layer()
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	a, b := mk(false), mk(true)
	if a.digest != b.digest || a.diffID != b.diffID {
		t.Fatalf("insertion order changed the layer: %s vs %s", a.digest, b.digest)
	}
	// gzip header: no name, mtime 0.
	zr, err := gzip.NewReader(bytes.NewReader(a.gz))
	if err != nil {
		t.Fatal(err)
	}
	if zr.Name != "" || !zr.ModTime.IsZero() && zr.ModTime.Unix() != 0 {
		t.Errorf("gzip header has name %q, mtime %v", zr.Name, zr.ModTime)
	}
	if a.gz[4]|a.gz[5]|a.gz[6]|a.gz[7] != 0 || a.gz[3]&0x08 != 0 {
		t.Errorf("gzip header carries an mtime or a name: % x", a.gz[:10])
	}
	hs := readLayer(t, a)
	var names []string
	for _, h := range hs {
		names = append(names, h.Name)
		if h.ModTime.Unix() != 0 || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || h.Uname != "" || h.Gname != "" || len(h.PAXRecords) != 0 {
			t.Errorf("%s: non-normalised header %+v", h.Name, h)
		}
	}
	want := []string{"a-b", "bin", "home/", "home/nonroot/", "tmp/", "usr/", "usr/bin/", "usr/bin/a", "usr/bin/z"}
	if len(names) != len(want) {
		t.Fatalf("entries %q, want %q", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("entries %q, want %q", names, want)
		}
	}
	// the hardlink group is written under its first name: a is the file, z links to it
	if hs[7].Typeflag != tar.TypeReg || hs[7].Size != 1 || hs[8].Typeflag != tar.TypeLink || hs[8].Linkname != "usr/bin/a" {
		t.Errorf("hardlink group written wrongly: %+v / %+v", hs[7], hs[8])
	}
	if hs[4].Mode != 0o1777 || hs[3].Uid != 65532 || hs[3].Mode != 0o700 {
		t.Errorf("modes/owners lost: tmp %o, home/nonroot %o %d", hs[4].Mode, hs[3].Mode, hs[3].Uid)
	}
}

func TestLayerRejectsFileBelowSymlink(t *testing.T) {
	tr := newTree()
	tr.symlink("lib", "usr/lib")
	tr.file("lib/x", 0o644, nil)
	if _, err := tr.layer(); err == nil {
		t.Fatal("a file below a symlink in the same layer was accepted")
	}
}

func TestIntegrity(t *testing.T) {
	// echo -n hello | openssl dgst -sha512 -binary | base64
	if got := integrityOf([]byte("hello")); got != "sha512-m3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw==" {
		t.Errorf("integrityOf = %s", got)
	}
}
