package bases

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	pathEnv       = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	caBundlePath  = "etc/ssl/certs/ca-certificates.crt"
	nonrootUID    = 65532
	nodeUID       = 1000
	nodeNpmPrefix = "usr/local/lib/node_modules/npm"
)

// needsFor lists the inputs of one stand-in on one platform.
func needsFor(s Standin, p platformInfo) []need {
	deb := func(pkgs ...string) []need {
		var out []need
		for _, pkg := range pkgs {
			out = append(out, need{eco: "deb", pkg: pkg, platform: p.name})
		}
		return out
	}
	node := need{eco: "npm", pkg: "node-linux-" + p.nodeArch, version: s.Node, platform: p.name}
	switch s.Kind {
	case KindGolang:
		return append(deb("base-files", "ca-certificates", "busybox-static"),
			need{eco: "go", pkg: toolchainModule, version: toolchainVersion(s.Go, p.arch), platform: p.name})
	case KindDistrolessStatic:
		return deb("base-files", "netbase", "ca-certificates", "tzdata")
	case KindNode:
		return append(deb("base-files", "ca-certificates", "busybox-static", "libc6", "libgcc-s1", "libstdc++6"),
			node, need{eco: "npm", pkg: "npm", version: s.Npm})
	case KindDistrolessNodejs:
		return append(deb("base-files", "netbase", "ca-certificates", "tzdata", "libc6", "libgcc-s1", "libstdc++6"), node)
	}
	return nil
}

// component is one layer of a stand-in. Layers with the same key are built
// once per Build and shared between stand-ins (and so deduplicated in the
// layout): the glibc layer of node and distroless-nodejs, for example.
type component struct {
	name      string // "base/golang", "busybox", "glibc", ...
	createdBy string // history entry; names the inputs
	uses      []need
	base      bool // the first layer: the only one allowed to hold /bin, /lib ... symlinks
	build     func() (*tree, error)
}

// image is one finished platform image.
type image struct {
	platform platformInfo
	manifest []byte
	config   []byte
	layers   []*memLayer
}

func (b *builder) in(n need) *input { return b.inputs[n.key()] }

func (b *builder) deb(pkg string, p platformInfo) (*debFile, error) {
	in := b.in(need{eco: "deb", pkg: pkg, platform: p.name})
	return b.debs.get(in.file, func() (*debFile, error) { return readDeb(context.Background(), in.file) })
}

func (b *builder) buildImage(ctx context.Context, s Standin, p platformInfo) (*image, error) {
	comps, cfg := b.recipe(s, p)
	img := &image{platform: p}
	var hist []v1.History
	var diffIDs []v1.Hash
	for _, c := range comps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		key := p.name + "|" + c.name + "|" + c.createdBy
		for _, n := range c.uses {
			key += "|" + b.in(n).Digest
		}
		l, err := b.layers.get(key, func() (*memLayer, error) {
			t0 := time.Now()
			t, err := c.build()
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", c.name, err)
			}
			if !c.base {
				for path := range t.m {
					if first, _, _ := strings.Cut(path, "/"); usrMerged(first) != first {
						return nil, fmt.Errorf("layer %s: %s would shadow the merged-/usr symlink /%s", c.name, path, first)
					}
				}
			}
			l, err := t.layer()
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", c.name, err)
			}
			b.logf("%s %s: layer %s: %d entries, %s → %s gzip, %.1fs (%s)", s.Kind, p.name, c.name, l.files, mb(l.rawSize), mb(int64(len(l.gz))), time.Since(t0).Seconds(), l.digest.Hex[:12])
			return l, nil
		})
		if err != nil {
			return nil, err
		}
		img.layers = append(img.layers, l)
		diffIDs = append(diffIDs, l.diffID)
		hist = append(hist, v1.History{Created: v1.Time{Time: epoch}, CreatedBy: c.createdBy})
	}
	cf := v1.ConfigFile{
		Architecture: p.arch,
		OS:           "linux",
		Created:      v1.Time{Time: epoch},
		Config:       cfg,
		RootFS:       v1.RootFS{Type: "layers", DiffIDs: diffIDs},
		History:      hist,
	}
	var err error
	if img.config, err = json.Marshal(cf); err != nil {
		return nil, err
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(img.config)), Digest: sha256Hash(img.config)},
	}
	for _, l := range img.layers {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayer, Size: int64(len(l.gz)), Digest: l.digest})
	}
	if img.manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	return img, nil
}

func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// recipe returns the layers and the config of stand-in s on platform p.
func (b *builder) recipe(s Standin, p platformInfo) ([]component, v1.Config) {
	debN := func(pkg string) need { return need{eco: "deb", pkg: pkg, platform: p.name} }
	ver := func(pkg string) string { return pkg + " " + b.in(debN(pkg)).Version }
	nodeN := need{eco: "npm", pkg: "node-linux-" + p.nodeArch, version: s.Node, platform: p.name}

	busybox := func() component {
		return component{
			name:      "busybox",
			createdBy: "bvrelease bases: " + ver("busybox-static") + ": /bin/busybox and a link per applet",
			uses:      []need{debN("busybox-static")},
			build:     func() (*tree, error) { return b.busyboxLayer(p) },
		}
	}
	glibc := func() component {
		return component{
			name:      "glibc",
			createdBy: "bvrelease bases: " + ver("libc6") + ", " + ver("libgcc-s1") + ", " + ver("libstdc++6"),
			uses:      []need{debN("libc6"), debN("libgcc-s1"), debN("libstdc++6")},
			build: func() (*tree, error) {
				t := newTree()
				for _, pkg := range []string{"libc6", "libgcc-s1", "libstdc++6"} {
					d, err := b.deb(pkg, p)
					if err != nil {
						return nil, err
					}
					if err := d.install(t, nil); err != nil {
						return nil, err
					}
				}
				return t, nil
			},
		}
	}
	nodeAt := func(dest string) component {
		return component{
			name:      "node:" + dest,
			createdBy: fmt.Sprintf("bvrelease bases: Node.js %s at /%s (npm %s@%s)", s.Node, dest, nodeN.pkg, s.Node),
			uses:      []need{nodeN},
			build: func() (*tree, error) {
				files, err := b.npmFiles(nodeN)
				if err != nil {
					return nil, err
				}
				t := newTree()
				for _, f := range files {
					if f.rel == "bin/node" {
						t.file(dest, 0o755, f.data)
					}
				}
				if !t.has(dest) {
					return nil, fmt.Errorf("%s@%s has no package/bin/node", nodeN.pkg, s.Node)
				}
				return t, nil
			},
		}
	}

	switch s.Kind {
	case KindGolang:
		goN := need{eco: "go", pkg: toolchainModule, version: toolchainVersion(s.Go, p.arch), platform: p.name}
		return []component{
				b.debianBase(p, "golang", []string{"root:x:0:0:root:/root:/bin/sh", "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"},
					[]string{"root:x:0:", "nogroup:x:65534:"}, nil),
				busybox(),
				{
					name:      "go",
					createdBy: fmt.Sprintf("bvrelease bases: go%s toolchain at /usr/local/go (%s@%s %s)", s.Go, toolchainModule, goN.version, b.in(goN).Digest),
					uses:      []need{goN},
					build: func() (*tree, error) {
						t := newTree()
						if err := installToolchain(t, b.in(goN).file, goN.version); err != nil {
							return nil, err
						}
						for _, d := range []string{"go", "go/src", "go/bin"} {
							t.dir(d, 0o1777, 0, 0) // as upstream: chmod -R 1777 "$GOPATH"
						}
						return t, nil
					},
				},
			}, v1.Config{
				Env: []string{
					"PATH=/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
					"GOLANG_VERSION=" + s.Go,
					"GOTOOLCHAIN=local",
					"GOPATH=/go",
				},
				WorkingDir: "/go",
				Cmd:        []string{"/bin/sh"},
			}

	case KindNode:
		npmN := need{eco: "npm", pkg: "npm", version: s.Npm}
		return []component{
				b.debianBase(p, "node",
					[]string{"root:x:0:0:root:/root:/bin/sh", "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin", "node:x:1000:1000::/home/node:/bin/sh"},
					[]string{"root:x:0:", "nogroup:x:65534:", "node:x:1000:"},
					func(t *tree) { t.dir("home/node", 0o755, nodeUID, nodeUID) }),
				busybox(),
				glibc(),
				nodeAt("usr/local/bin/node"),
				{
					name:      "npm",
					createdBy: fmt.Sprintf("bvrelease bases: npm %s at /%s", s.Npm, nodeNpmPrefix),
					uses:      []need{npmN},
					build: func() (*tree, error) {
						files, err := b.npmFiles(npmN)
						if err != nil {
							return nil, err
						}
						t := newTree()
						for _, f := range files {
							t.file(nodeNpmPrefix+"/"+f.rel, f.mode, f.data)
						}
						for _, cli := range []string{"npm", "npx"} {
							js := nodeNpmPrefix + "/bin/" + cli + "-cli.js"
							e, ok := t.m[js]
							if !ok {
								return nil, fmt.Errorf("npm@%s has no bin/%s-cli.js", s.Npm, cli)
							}
							e.mode = 0o755
							t.symlink("usr/local/bin/"+cli, "../lib/node_modules/npm/bin/"+cli+"-cli.js")
						}
						return t, nil
					},
				},
			}, v1.Config{
				Env: []string{pathEnv, "NODE_VERSION=" + s.Node},
				Cmd: []string{"node"},
			}

	case KindDistrolessStatic:
		return []component{b.distrolessBase(p)}, distrolessConfig(nil)

	case KindDistrolessNodejs:
		return []component{b.distrolessBase(p), glibc(), nodeAt("nodejs/bin/node")},
			distrolessConfig([]string{"/nodejs/bin/node"})
	}
	return nil, v1.Config{}
}

func distrolessConfig(entrypoint []string) v1.Config {
	return v1.Config{
		Env:        []string{pathEnv, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		User:       fmt.Sprint(nonrootUID),
		WorkingDir: "/home/nonroot",
		Entrypoint: entrypoint,
	}
}

// skeleton is the start of every first layer: the merged-/usr symlinks
// (bin → usr/bin, sbin → usr/sbin, lib → usr/lib and, on amd64,
// lib64 → usr/lib64), their targets, and the usual top-level directories.
func skeleton(p platformInfo) *tree {
	t := newTree()
	merged := []string{"bin", "sbin", "lib"}
	if p.arch == "amd64" {
		merged = append(merged, "lib64")
	}
	for _, d := range merged {
		t.symlink(d, "usr/"+d)
		t.dir("usr/"+d, 0o755, 0, 0)
	}
	t.dir("etc", 0o755, 0, 0)
	t.dir("home", 0o755, 0, 0)
	t.dir("root", 0o700, 0, 0)
	t.dir("tmp", 0o1777, 0, 0)
	t.dir("var/tmp", 0o1777, 0, 0)
	t.dir("usr/local/bin", 0o755, 0, 0)
	t.dir("var/lib/dpkg/status.d", 0o755, 0, 0)
	return t
}

const nsswitch = `# /etc/nsswitch.conf (bvrelease bases stand-in)
passwd:         files
group:          files
shadow:         files
gshadow:        files

hosts:          files dns
networks:       files

protocols:      files
services:       files
ethers:         files
rpc:            files
`

// osRelease installs /etc/debian_version and os-release from base-files, so
// scanners recognise the Debian release the packages come from.
func (b *builder) osRelease(t *tree, p platformInfo) error {
	d, err := b.deb("base-files", p)
	if err != nil {
		return err
	}
	return d.install(t, func(path string) bool {
		return path == "etc/debian_version" || path == "etc/os-release" || path == "usr/lib/os-release"
	})
}

// caCertificates installs the CA bundle built from Debian's ca-certificates
// the way update-ca-certificates does: every certificate under
// /usr/share/ca-certificates, in byte order of its path, each ending in a
// newline, concatenated.
func (b *builder) caCertificates(t *tree, p platformInfo) error {
	d, err := b.deb("ca-certificates", p)
	if err != nil {
		return err
	}
	bundle, n, err := caBundle(d)
	if err != nil {
		return err
	}
	if n < 50 {
		return fmt.Errorf("ca-certificates %s: only %d certificates", d.Version, n)
	}
	t.file(caBundlePath, 0o644, bundle)
	t.file("var/lib/dpkg/status.d/ca-certificates", 0o644, d.control)
	return nil
}

func caBundle(d *debFile) ([]byte, int, error) {
	type cert struct {
		rel  string
		data []byte
	}
	var certs []cert
	for _, e := range d.entries {
		rel, ok := strings.CutPrefix(e.name, "usr/share/ca-certificates/")
		if !ok || !strings.HasSuffix(rel, ".crt") {
			continue
		}
		if e.hdr.Typeflag != '0' {
			return nil, 0, fmt.Errorf("ca-certificates: %s is not a regular file", e.name)
		}
		certs = append(certs, cert{rel, e.data})
	}
	sort.Slice(certs, func(i, j int) bool { return certs[i].rel < certs[j].rel })
	var buf bytes.Buffer
	for _, c := range certs {
		buf.Write(c.data)
		if len(c.data) > 0 && c.data[len(c.data)-1] != '\n' {
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes(), len(certs), nil
}

// debianBase is the first layer of the Debian-like build stages (golang,
// node): skeleton, users, os-release and the CA bundle.
func (b *builder) debianBase(p platformInfo, kind string, passwd, group []string, extra func(*tree)) component {
	debN := func(pkg string) need { return need{eco: "deb", pkg: pkg, platform: p.name} }
	return component{
		name:      "base/" + kind,
		createdBy: fmt.Sprintf("bvrelease bases: root file system, users (%s), os-release from base-files %s, CA bundle from ca-certificates %s", usersOf(passwd), b.in(debN("base-files")).Version, b.in(debN("ca-certificates")).Version),
		uses:      []need{debN("base-files"), debN("ca-certificates")},
		base:      true,
		build: func() (*tree, error) {
			t := skeleton(p)
			t.file("etc/passwd", 0o644, []byte(strings.Join(passwd, "\n")+"\n"))
			t.file("etc/group", 0o644, []byte(strings.Join(group, "\n")+"\n"))
			t.file("etc/nsswitch.conf", 0o644, []byte(nsswitch))
			if extra != nil {
				extra(t)
			}
			if err := b.osRelease(t, p); err != nil {
				return nil, err
			}
			if err := b.caCertificates(t, p); err != nil {
				return nil, err
			}
			return t, nil
		},
	}
}

// distrolessBase mirrors gcr.io/distroless/static-debian12:nonroot: files
// only — users root, nobody, nonroot (65532), the CA bundle, tzdata's
// zoneinfo, netbase's /etc/services et al., os-release, /tmp, /home/nonroot.
func (b *builder) distrolessBase(p platformInfo) component {
	debN := func(pkg string) need { return need{eco: "deb", pkg: pkg, platform: p.name} }
	var vers []string
	for _, pkg := range []string{"base-files", "netbase", "ca-certificates", "tzdata"} {
		vers = append(vers, pkg+" "+b.in(debN(pkg)).Version)
	}
	return component{
		name:      "base/distroless",
		createdBy: "bvrelease bases: distroless static (nonroot 65532): " + strings.Join(vers, ", "),
		uses:      []need{debN("base-files"), debN("netbase"), debN("ca-certificates"), debN("tzdata")},
		base:      true,
		build: func() (*tree, error) {
			t := skeleton(p)
			t.file("etc/passwd", 0o644, []byte(
				"root:x:0:0:root:/root:/sbin/nologin\n"+
					"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"+
					"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"))
			t.file("etc/group", 0o644, []byte(
				"root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n"))
			t.file("etc/nsswitch.conf", 0o644, []byte(nsswitch))
			t.dir("home/nonroot", 0o700, nonrootUID, nonrootUID)
			if err := b.osRelease(t, p); err != nil {
				return nil, err
			}
			if err := b.caCertificates(t, p); err != nil {
				return nil, err
			}
			for _, pkg := range []string{"netbase", "tzdata"} {
				d, err := b.deb(pkg, p)
				if err != nil {
					return nil, err
				}
				if err := d.install(t, func(path string) bool {
					return strings.HasPrefix(path, "etc/") || strings.HasPrefix(path, "usr/share/zoneinfo/")
				}); err != nil {
					return nil, err
				}
			}
			if !t.has("usr/share/zoneinfo/UTC") || !t.has("etc/services") {
				return nil, fmt.Errorf("distroless base: tzdata or netbase content missing")
			}
			return t, nil
		},
	}
}

func usersOf(passwd []string) string {
	var names []string
	for _, l := range passwd {
		n, _, _ := strings.Cut(l, ":")
		names = append(names, n)
	}
	return strings.Join(names, ", ")
}

// excludedApplets are busybox applets not linked: package-manager look-alikes
// (the stand-ins have no package manager) and busybox itself.
var excludedApplets = map[string]bool{"busybox": true, "dpkg": true, "dpkg-deb": true, "rpm": true, "rpm2cpio": true}

// busyboxLayer installs /bin/busybox (merged: /usr/bin/busybox) and a
// relative symlink /usr/bin/<applet> → busybox for each applet compiled in.
// The applet list is read from the binary's applet name table, so it is the
// same on every platform and needs no emulation to build arm64 on amd64.
func (b *builder) busyboxLayer(p platformInfo) (*tree, error) {
	d, err := b.deb("busybox-static", p)
	if err != nil {
		return nil, err
	}
	t := newTree()
	if err := d.install(t, func(path string) bool { return path == "usr/bin/busybox" }); err != nil {
		return nil, err
	}
	bin, ok := t.m["usr/bin/busybox"]
	if !ok {
		return nil, fmt.Errorf("busybox-static %s: no /bin/busybox", d.Version)
	}
	applets, err := busyboxApplets(bin.data)
	if err != nil {
		return nil, fmt.Errorf("busybox-static %s: %w", d.Version, err)
	}
	for _, a := range applets {
		if !excludedApplets[a] {
			t.symlink("usr/bin/"+a, "busybox")
		}
	}
	return t, nil
}

var appletNameRE = regexp.MustCompile(`^[a-z0-9_.\[\]-]+$`)

// busyboxApplets reads busybox's applet_names table: NUL-separated, sorted
// names starting "[", "[[", terminated by an empty string.
func busyboxApplets(bin []byte) ([]string, error) {
	marker := []byte("\x00[\x00[[\x00")
	i := bytes.Index(bin, marker)
	if i < 0 || bytes.Count(bin, marker) != 1 {
		return nil, fmt.Errorf("applet name table not found")
	}
	rest := bin[i+1:]
	var names []string
	for {
		j := bytes.IndexByte(rest, 0)
		if j <= 0 {
			break
		}
		n := string(rest[:j])
		if !appletNameRE.MatchString(n) {
			break
		}
		names = append(names, n)
		rest = rest[j+1:]
	}
	if !sort.StringsAreSorted(names) || len(names) < 50 {
		return nil, fmt.Errorf("applet name table looks wrong (%d names)", len(names))
	}
	for _, must := range []string{"sh", "ls", "env", "wget", "tar"} {
		if i := sort.SearchStrings(names, must); i == len(names) || names[i] != must {
			return nil, fmt.Errorf("applet %s missing from the applet table", must)
		}
	}
	return names, nil
}

func (b *builder) npmFiles(n need) ([]npmFile, error) {
	in := b.in(n)
	return b.npms.get(in.file, func() ([]npmFile, error) { return readNpmTarball(in.file) })
}

func sha256Hash(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b))
	return h
}
