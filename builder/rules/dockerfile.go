package rules

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// DockerfileOptions selects what CheckDockerfile looks at.
type DockerfileOptions struct {
	Target string // final stage name, "" = last stage
}

// stage is a parsed build stage with what the rules need resolved.
type stage struct {
	instructions.Stage
	index  int
	line   int
	base   string // BaseName with the global ARG defaults expanded
	parent int    // index of the stage named by FROM, -1 for an image or scratch
}

type dockerfile struct {
	path     string
	src      []byte
	stages   []*stage
	metaArgs []instructions.ArgCommand
	vs       []Violation
}

// CheckDockerfile checks the Dockerfile src (read from path, which is only used
// in messages) against the Dockerfile rules, on the stages the target needs.
// The error is reserved for input that BuildKit itself would reject (it carries
// path:line) and for a target that names no stage.
func CheckDockerfile(path string, src []byte, o DockerfileOptions) ([]Violation, error) {
	d := &dockerfile{path: path, src: src}
	if err := d.parse(); err != nil {
		return nil, err
	}
	final := len(d.stages) - 1
	if o.Target != "" {
		i, ok := instructions.HasStage(d.stagesList(), o.Target)
		if !ok {
			return nil, fmt.Errorf("%s: target stage %q not found; stages are %s", path, o.Target, d.stageNames())
		}
		final = i
	}
	needed := d.closure(final)

	d.checkSyntaxDirective()
	d.checkMetaArgs()
	for _, s := range d.stages {
		if !needed[s.index] {
			continue
		}
		d.checkBase(s)
		d.checkExternalFroms(s)
		d.checkRemoteAdd(s)
		d.checkSecrets(s)
		d.checkBuildPlatform(s, s.index == final)
		d.checkDepsFirst(s)
	}
	f := d.stages[final]
	d.checkMultiStage(f)
	d.checkFinalBase(f)
	d.checkFinalUser(f)
	d.checkHealthcheck(f)
	d.checkFinalRun(f)
	sortDockerfile(d.vs)
	return d.vs, nil
}

func (d *dockerfile) add(rule string, line int, msg, fix string) {
	d.vs = append(d.vs, Violation{Rule: rule, File: d.path, Line: line, Message: msg, Fix: fix})
}

// parse runs BuildKit's parser and instruction parser, node by node so that an
// error carries the line of the instruction that failed.
func (d *dockerfile) parse() error {
	res, err := parser.Parse(bytes.NewReader(d.src))
	if err != nil {
		return d.parseError(err, 0)
	}
	// A linter without a Warn func runs no rules; nil would panic on "# check=" comments.
	lint := linter.New(&linter.Config{})
	for _, n := range res.AST.Children {
		v, err := instructions.ParseInstructionWithLinter(n, lint)
		if err != nil {
			return d.parseError(err, n.StartLine)
		}
		switch c := v.(type) {
		case *instructions.Stage:
			s := &stage{Stage: *c, index: len(d.stages), line: lineOf(c.Location), parent: -1}
			d.stages = append(d.stages, s)
		case *instructions.ArgCommand:
			if len(d.stages) == 0 {
				d.metaArgs = append(d.metaArgs, *c)
				continue
			}
			d.stages[len(d.stages)-1].AddCommand(c)
		case instructions.Command:
			if len(d.stages) == 0 {
				return fmt.Errorf("%s:%d: %s before the first FROM", d.path, n.StartLine, strings.ToUpper(n.Value))
			}
			d.stages[len(d.stages)-1].AddCommand(c)
		default:
			return fmt.Errorf("%s:%d: unexpected %T", d.path, n.StartLine, v)
		}
	}
	if len(d.stages) == 0 {
		return fmt.Errorf("%s: no FROM instruction", d.path)
	}
	d.resolveBases()
	return nil
}

func (d *dockerfile) parseError(err error, line int) error {
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		line = le.Locations[0][0].Start.Line
	}
	if line > 0 {
		return fmt.Errorf("%s:%d: %w", d.path, line, err)
	}
	return fmt.Errorf("%s: %w", d.path, err)
}

func lineOf(r []parser.Range) int {
	if len(r) == 0 {
		return 0
	}
	return r[0].Start.Line
}

func cmdLine(c instructions.Command) int {
	if l, ok := c.(interface{ Location() []parser.Range }); ok {
		return lineOf(l.Location())
	}
	return 0
}

func (d *dockerfile) stagesList() []instructions.Stage {
	l := make([]instructions.Stage, len(d.stages))
	for i, s := range d.stages {
		l[i] = s.Stage
	}
	return l
}

func (d *dockerfile) stageNames() string {
	var names []string
	for _, s := range d.stages {
		if s.Name != "" {
			names = append(names, s.Name)
		}
	}
	if len(names) == 0 {
		return "unnamed"
	}
	return strings.Join(names, ", ")
}

// resolveBases expands global ARG defaults in every FROM and links each stage
// to an earlier stage it is built on, the way BuildKit does.
func (d *dockerfile) resolveBases() {
	var env []string
	for _, a := range d.metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				env = append(env, kv.Key+"="+*kv.Value)
			}
		}
	}
	lex := shell.NewLex('\\')
	for _, s := range d.stages {
		s.base = s.BaseName
		if strings.Contains(s.BaseName, "$") {
			if r, err := lex.ProcessWordWithMatches(s.BaseName, shell.EnvsFromSlice(env)); err == nil && len(r.Unmatched) == 0 {
				s.base = r.Result
			}
		}
		s.parent = d.stageIndex(s.base, s.index)
	}
}

// stageIndex returns the index of the stage called name defined before stage
// before, or -1.
func (d *dockerfile) stageIndex(name string, before int) int {
	for i := range before {
		if d.stages[i].Name != "" && strings.EqualFold(d.stages[i].Name, name) {
			return i
		}
	}
	return -1
}

// fromStage resolves a COPY --from / RUN --mount from= value: a stage name or a
// stage index. It returns -1 for an image reference.
func (d *dockerfile) fromStage(from string, current int) int {
	if n, err := strconv.Atoi(from); err == nil {
		if n >= 0 && n < current {
			return n
		}
		return -1
	}
	for i, s := range d.stages {
		if s.Name != "" && strings.EqualFold(s.Name, from) && i != current {
			return i
		}
	}
	return -1
}

// externalRef is an image a stage reads besides its FROM: COPY --from=<image>
// or RUN --mount=from=<image>.
type externalRef struct {
	ref, what string
	line      int
}

// stageDeps returns the stages s reads from and the images it reads that are not stages.
func (d *dockerfile) stageDeps(s *stage) (deps []int, ext []externalRef) {
	if s.parent >= 0 {
		deps = append(deps, s.parent)
	}
	for _, c := range s.Commands {
		switch c := c.(type) {
		case *instructions.CopyCommand:
			if c.From == "" {
				continue
			}
			if i := d.fromStage(c.From, s.index); i >= 0 {
				deps = append(deps, i)
			} else {
				ext = append(ext, externalRef{c.From, "COPY --from=" + c.From, cmdLine(c)})
			}
		case *instructions.RunCommand:
			for _, m := range instructions.GetMounts(c) {
				if m.From == "" {
					continue
				}
				if i := d.fromStage(m.From, s.index); i >= 0 {
					deps = append(deps, i)
				} else {
					ext = append(ext, externalRef{m.From, "RUN --mount=from=" + m.From, cmdLine(c)})
				}
			}
		}
	}
	return deps, ext
}

// closure is the set of stages the build of stage final needs.
func (d *dockerfile) closure(final int) map[int]bool {
	need := map[int]bool{}
	var visit func(int)
	visit = func(i int) {
		if need[i] {
			return
		}
		need[i] = true
		deps, _ := d.stageDeps(d.stages[i])
		for _, j := range deps {
			visit(j)
		}
	}
	visit(final)
	return need
}

// root follows FROM <stage> links to the image a stage is ultimately built on.
func (d *dockerfile) root(s *stage) *stage {
	for s.parent >= 0 {
		s = d.stages[s.parent]
	}
	return s
}

func stageLabel(s *stage) string {
	if s.Name != "" {
		return fmt.Sprintf("stage %q", s.Name)
	}
	return fmt.Sprintf("stage %d", s.index)
}

// --- syntax-directive --------------------------------------------------------

func (d *dockerfile) checkSyntaxDirective() {
	if syntax, _, loc, ok := parser.DetectSyntax(d.src); ok {
		d.add(RuleSyntaxDirective, lineOf(loc),
			fmt.Sprintf("the syntax directive asks BuildKit to pull the frontend image %s, and the build is offline", syntax),
			"delete the '# syntax=' line; the built-in Dockerfile frontend is used")
	}
}

// --- pinned-from / latest-tag ------------------------------------------------

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// checkRef checks that an image reference is pinned by digest and names no
// latest tag. what is the instruction text used in the message ("FROM x").
func (d *dockerfile) checkRef(ref, what string, line int) {
	if strings.Contains(ref, "$") {
		d.add(RulePinnedFrom, line,
			fmt.Sprintf("%s uses a variable with no default, so the base cannot be verified", what),
			"give the ARG a default that is pinned: ARG BASE=<image>:<tag>@sha256:<digest>")
		return
	}
	name, digest, hasDigest := strings.Cut(ref, "@")
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
	}
	switch {
	case tag == "latest":
		d.add(RuleLatestTag, line,
			fmt.Sprintf("%s names the floating tag latest", what),
			fmt.Sprintf("name the version and pin it: %s:<version>@sha256:<digest>", strings.Replace(what, ref, name, 1)))
	case !hasDigest && tag == "":
		d.add(RulePinnedFrom, line,
			fmt.Sprintf("%s has neither tag nor digest (it means whatever latest is today)", what),
			fmt.Sprintf("pin it: %s:<version>@sha256:<digest>", what))
	case !hasDigest:
		d.add(RulePinnedFrom, line,
			fmt.Sprintf("%s is not pinned by digest", what),
			fmt.Sprintf("pin it: %s@sha256:<digest>", what))
	case !digestRE.MatchString(digest):
		d.add(RulePinnedFrom, line,
			fmt.Sprintf("%s has a malformed digest %q", what, digest),
			"pin it with the full digest: @sha256:<64 hex digits>")
	}
}

func isScratch(ref string) bool { return strings.EqualFold(ref, "scratch") }

func (d *dockerfile) checkBase(s *stage) {
	if s.parent >= 0 || isScratch(s.base) {
		return
	}
	what := "FROM " + s.BaseName
	if s.base != s.BaseName {
		what = fmt.Sprintf("FROM %s (= %s)", s.BaseName, s.base)
	}
	d.checkRef(s.base, what, s.line)
}

func (d *dockerfile) checkExternalFroms(s *stage) {
	_, ext := d.stageDeps(s)
	for _, e := range ext {
		d.checkRef(e.ref, e.what, e.line)
	}
}

// --- remote-add --------------------------------------------------------------

func isRemote(src string) bool {
	l := strings.ToLower(src)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://") ||
		strings.HasPrefix(l, "git@") || strings.HasPrefix(l, "git://") || strings.HasPrefix(l, "ssh://")
}

func (d *dockerfile) checkRemoteAdd(s *stage) {
	for _, c := range s.Commands {
		add, ok := c.(*instructions.AddCommand)
		if !ok {
			continue
		}
		for _, src := range add.SourcePaths {
			if isRemote(src) {
				d.add(RuleRemoteAdd, cmdLine(c),
					fmt.Sprintf("ADD %s fetches a remote input at build time: unpinned, and impossible offline", src),
					"vendor the file into the build context (or a pinned base/stage) and COPY it")
				break
			}
		}
	}
}

// --- build-secret ------------------------------------------------------------

const secretFix = "pass secrets with RUN --mount=type=secret,id=<id> (bvrelease --secret), never ARG, ENV or command text"

func (d *dockerfile) checkArgEnv(kind, key, value string, hasValue bool, line int) bool {
	if isSecretName(key) {
		msg := fmt.Sprintf("%s %s looks like a secret: its value is stored in the image config, history or provenance", kind, key)
		d.add(RuleBuildSecret, line, msg, secretFix)
		return true
	}
	if hasValue {
		if w := secretValue(value); w != "" {
			d.add(RuleBuildSecret, line, fmt.Sprintf("%s %s holds %s", kind, key, w), secretFix)
			return true
		}
	}
	return false
}

func (d *dockerfile) checkMetaArgs() {
	for _, a := range d.metaArgs {
		for _, kv := range a.Args {
			if d.checkArgEnv("ARG", kv.Key, kv.ValueString(), kv.Value != nil, lineOf(a.Location())) {
				break
			}
		}
	}
}

// checkSecrets reports at most one violation per instruction.
func (d *dockerfile) checkSecrets(s *stage) {
	for _, c := range s.Commands {
		line := cmdLine(c)
		switch c := c.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				if d.checkArgEnv("ARG", kv.Key, kv.ValueString(), kv.Value != nil, line) {
					break
				}
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				if d.checkArgEnv("ENV", kv.Key, kv.Value, true, line) {
					break
				}
			}
		default:
			text := c.(fmt.Stringer).String()
			switch c := c.(type) {
			case *instructions.RunCommand:
				for _, f := range c.Files {
					text += "\n" + f.Data
				}
			case *instructions.CopyCommand:
				for _, f := range c.SourceContents {
					text += "\n" + f.Data
				}
			case *instructions.AddCommand:
				for _, f := range c.SourceContents {
					text += "\n" + f.Data
				}
			}
			if w := secretInText(text); w != "" {
				d.add(RuleBuildSecret, line, fmt.Sprintf("%s %s, which is stored in the image history", strings.ToUpper(c.Name()), w), secretFix)
			}
		}
	}
}

// --- build-platform ----------------------------------------------------------

var buildPlatformRE = regexp.MustCompile(`^\$(BUILDPLATFORM|\{BUILDPLATFORM\})$`)

// effectivePlatform is the --platform of a stage, inherited through FROM <stage>.
func (d *dockerfile) effectivePlatform(s *stage) string {
	for ; ; s = d.stages[s.parent] {
		if s.Platform != "" || s.parent < 0 {
			return strings.TrimSpace(s.Platform)
		}
	}
}

func (d *dockerfile) checkBuildPlatform(s *stage, final bool) {
	if final {
		if plat := d.effectivePlatform(s); plat != "" {
			d.add(RuleBuildPlatform, s.line,
				fmt.Sprintf("final %s is built for --platform=%s: every platform's image would get that platform's base", stageLabel(s), plat),
				"drop --platform from the final stage (and the stages it is built FROM); BuildKit builds it once per target platform")
		}
		return
	}
	var run instructions.Command
	for _, c := range s.Commands {
		if _, ok := c.(*instructions.RunCommand); ok {
			run = c
			break
		}
	}
	if run == nil || buildPlatformRE.MatchString(d.effectivePlatform(s)) {
		return
	}
	plat := d.effectivePlatform(s)
	msg := fmt.Sprintf("%s runs commands (line %d) on the target platform: the builders have no emulation", stageLabel(s), cmdLine(run))
	if plat != "" {
		msg = fmt.Sprintf("%s runs commands (line %d) with --platform=%s instead of the build platform: the builders have no emulation", stageLabel(s), cmdLine(run), plat)
	}
	d.add(RuleBuildPlatform, s.line, msg,
		fmt.Sprintf("FROM --platform=$BUILDPLATFORM %s AS %s and cross-compile for $TARGETOS/$TARGETARCH (GOOS=$TARGETOS GOARCH=$TARGETARCH)", s.BaseName, orName(s)))
}

func orName(s *stage) string {
	if s.Name != "" {
		return s.Name
	}
	return "build"
}

// --- deps-first --------------------------------------------------------------

type ecosystem struct {
	name       string
	build      func(cmd string) bool
	resolve    *regexp.Regexp
	manifests  []string // files that must be copied before resolve; any of lockfiles
	lockfiles  []string
	resolveCmd string
}

var ecosystems = []ecosystem{
	{
		name:       "go",
		build:      goBuilds,
		resolve:    regexp.MustCompile(`\bgo\s+mod\s+download\b`),
		manifests:  []string{"go.mod"},
		resolveCmd: "COPY go.mod go.sum ./ then RUN go mod download",
	},
	{
		name:       "node",
		build:      regexp.MustCompile(`\b(npm|pnpm|yarn)\s+(run\s+)?build\b|\bnext\s+build\b`).MatchString,
		resolve:    regexp.MustCompile(`\b(npm\s+(ci|install|i)|yarn\s+install|yarn\s+--(frozen-lockfile|immutable)|pnpm\s+(install|i))\b`),
		manifests:  []string{"package.json"},
		lockfiles:  []string{"package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml"},
		resolveCmd: "COPY package.json package-lock.json ./ then RUN npm ci",
	},
}

var (
	goBuildRE   = regexp.MustCompile(`\bgo\s+build\b`)
	goInstallRE = regexp.MustCompile(`\bgo\s+install\b[^;&|\n]*`)
)

// goBuilds reports whether a command compiles the module in the context:
// go build, or go install of local packages. "go install tool@version"
// ignores go.mod and needs no dependency layer.
func goBuilds(cmd string) bool {
	if goBuildRE.MatchString(cmd) {
		return true
	}
	for _, m := range goInstallRE.FindAllString(cmd, -1) {
		if !strings.Contains(m, "@") {
			return true
		}
	}
	return false
}

var allManifests = []string{"go.mod", "go.sum", "go.work", "go.work.sum", "package.json", "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", ".npmrc", ".yarnrc.yml", "pnpm-workspace.yaml"}

// manifestsIn returns the dependency manifests a COPY source list provides, and
// whether it copies anything else (source code).
func manifestsIn(srcs []string) (provided []string, source bool) {
	for _, src := range srcs {
		base := path.Base(strings.TrimSuffix(src, "/"))
		var hit bool
		for _, m := range allManifests {
			if ok, _ := path.Match(base, m); ok {
				provided = append(provided, m)
				hit = true
			}
		}
		if !hit {
			source = true
		}
	}
	return provided, source
}

func runText(r *instructions.RunCommand) string {
	t := strings.Join(r.CmdLine, " ")
	for _, f := range r.Files {
		t += "\n" + f.Data
	}
	return t
}

// resolves reports whether stage s (or a stage it is built on) resolves the
// dependencies of ecosystem e.
func (d *dockerfile) resolves(s *stage, e ecosystem, seen map[int]bool) bool {
	if seen[s.index] {
		return false
	}
	seen[s.index] = true
	for _, c := range s.Commands {
		if r, ok := c.(*instructions.RunCommand); ok && e.resolve.MatchString(runText(r)) {
			return true
		}
	}
	return s.parent >= 0 && d.resolves(d.stages[s.parent], e, seen)
}

func hasBindMount(r *instructions.RunCommand) bool {
	for _, m := range instructions.GetMounts(r) {
		if m.Type == instructions.MountTypeBind && m.From == "" {
			return true
		}
	}
	return false
}

// checkDepsFirst: in a stage that builds, the dependency manifests must be
// copied and the dependencies resolved before the source is copied in, so a
// source change does not re-download every module.
func (d *dockerfile) checkDepsFirst(s *stage) {
	for _, e := range ecosystems {
		build := -1
		for i, c := range s.Commands {
			if r, ok := c.(*instructions.RunCommand); ok && e.build(runText(r)) {
				build = i
				break
			}
		}
		if build < 0 {
			continue
		}
		resolved := s.parent >= 0 && d.resolves(d.stages[s.parent], e, map[int]bool{})
		have := map[string]bool{}
		source := build
		for i, c := range s.Commands[:build] {
			switch c := c.(type) {
			case *instructions.CopyCommand:
				if c.From != "" {
					if j := d.fromStage(c.From, s.index); j >= 0 && d.resolves(d.stages[j], e, map[int]bool{}) {
						resolved = true
					}
					continue
				}
				provided, src := manifestsIn(c.SourcePaths)
				for _, m := range provided {
					have[m] = true
				}
				if src {
					source = i
				}
			case *instructions.AddCommand:
				if _, src := manifestsIn(c.SourcePaths); src {
					source = i
				}
			case *instructions.RunCommand:
				if e.resolve.MatchString(runText(c)) && (hasBindMount(c) || d.hasManifests(e, have)) {
					resolved = true
				}
			}
			if source < build {
				break
			}
		}
		if resolved {
			continue
		}
		at := s.Commands[source]
		what := fmt.Sprintf("%s copies the source", shorten(at.(fmt.Stringer).String()))
		if source == build {
			what = "the build runs"
		}
		d.add(RuleDepsFirst, cmdLine(at),
			fmt.Sprintf("%s: %s before the %s dependencies are resolved, so every source change re-downloads them", stageLabel(s), what, e.name),
			e.resolveCmd+" before copying the source")
	}
}

func (d *dockerfile) hasManifests(e ecosystem, have map[string]bool) bool {
	for _, m := range e.manifests {
		if !have[m] {
			return false
		}
	}
	if len(e.lockfiles) == 0 {
		return true
	}
	return slices.ContainsFunc(e.lockfiles, func(l string) bool { return have[l] })
}

// --- final stage -------------------------------------------------------------

func (d *dockerfile) checkMultiStage(f *stage) {
	for _, c := range f.Commands {
		if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" && d.fromStage(cp.From, f.index) >= 0 {
			return
		}
	}
	msg := fmt.Sprintf("final %s copies nothing from a build stage: the toolchain or the unbuilt inputs end up in the image", stageLabel(f))
	if len(d.closure(f.index)) == 1 {
		msg = fmt.Sprintf("final %s is the only stage: build and runtime share one image", stageLabel(f))
	}
	d.add(RuleMultiStage, f.line, msg,
		"build in FROM --platform=$BUILDPLATFORM <toolchain>@sha256:<digest> AS build, then COPY --from=build only the artifacts into a distroless final stage")
}

func (d *dockerfile) checkFinalBase(f *stage) {
	r := d.root(f)
	base := r.base
	if isScratch(base) {
		return
	}
	name, _, _ := strings.Cut(base, "@")
	if strings.HasPrefix(name, "gcr.io/distroless/") {
		if strings.Contains(name[strings.LastIndex(name, "/"):], ":debug") {
			d.add(RuleFinalBase, f.line,
				fmt.Sprintf("final %s is based on %s, a debug variant that ships busybox", stageLabel(f), name),
				"use the :nonroot variant of the same distroless image")
		}
		return
	}
	via := ""
	if r != f {
		via = fmt.Sprintf(" (through %s)", stageLabel(r))
	}
	d.add(RuleFinalBase, f.line,
		fmt.Sprintf("final %s is based on %s%s, which is neither distroless nor scratch", stageLabel(f), name, via),
		"FROM gcr.io/distroless/static-debian12:nonroot@sha256:<digest> (Go), gcr.io/distroless/nodejs22-debian12:nonroot@sha256:<digest> (Node.js) or scratch")
}

func (d *dockerfile) checkFinalUser(f *stage) {
	var user *instructions.UserCommand
	for _, c := range f.Commands {
		if u, ok := c.(*instructions.UserCommand); ok {
			user = u
		}
	}
	const fix = "USER 65532:65532"
	if user == nil {
		d.add(RuleFinalUser, f.line,
			fmt.Sprintf("final %s has no USER: the image runs as whatever user the base sets", stageLabel(f)),
			"add "+fix+" to the final stage")
		return
	}
	if msg := userProblem(user.User); msg != "" {
		d.add(RuleFinalUser, cmdLine(user), "USER "+user.User+" "+msg, "use "+fix)
	}
}

// userProblem explains why a user spec is not UID 65532, or returns "".
func userProblem(u string) string {
	uid, gid, hasGID := strings.Cut(u, ":")
	if uid == "65532" && (!hasGID || gid == "65532") {
		return ""
	}
	n, err := strconv.Atoi(uid)
	switch {
	case uid == "":
		return "is empty: the image runs as root"
	case err != nil:
		return "is a user name, not a numeric UID: the kubelet cannot verify runAsNonRoot for a name"
	case n == 0:
		return "is root"
	case n != 65532:
		return fmt.Sprintf("is UID %d; every image runs as 65532", n)
	default:
		return fmt.Sprintf("has group %q; every image runs as 65532:65532", gid)
	}
}

func (d *dockerfile) checkHealthcheck(f *stage) {
	// The final stage inherits a HEALTHCHECK from any stage it is built FROM.
	for s := f; ; s = d.stages[s.parent] {
		for _, c := range s.Commands {
			if h, ok := c.(*instructions.HealthCheckCommand); ok && !healthcheckNone(h.Health.Test) {
				d.add(RuleHealthcheck, cmdLine(c),
					"HEALTHCHECK in the final image: Kubernetes probes own liveness and readiness",
					"delete it; declare livenessProbe/readinessProbe (/healthz, /readyz) in the Helm chart")
			}
		}
		if s.parent < 0 {
			return
		}
	}
}

func healthcheckNone(test []string) bool {
	return len(test) == 0 || len(test) == 1 && strings.EqualFold(test[0], "NONE")
}

func (d *dockerfile) checkFinalRun(f *stage) {
	for _, c := range f.Commands {
		if _, ok := c.(*instructions.RunCommand); ok {
			d.add(RuleFinalRun, cmdLine(c),
				fmt.Sprintf("final %s runs %s: distroless has no shell, and the final stage only receives artifacts", stageLabel(f), shorten(c.(fmt.Stringer).String())),
				"do the work in a build stage and COPY --from=<stage> the result")
		}
	}
}

// shorten keeps an instruction readable in a one-line message.
func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 60 {
		return string(r[:57]) + "..."
	}
	return s
}
