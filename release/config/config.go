// Package config loads and validates bvrelease.yaml, the release configuration.
//
// Errors name the file, the line and column (where known) and the field, and
// say how to fix it:
//
//	bvrelease.yaml:14:5: artifacts[1].dockerfile: service/Dockerfil does not exist; fix the path (relative to the repository root)
//
// Unknown fields are errors, so a typo never silently disables a setting.
// schema.json is the same rules as a JSON Schema (for editors, for
// `bvrelease config validate` and for docs/bvrelease-yaml.md).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/bitvault/bitvault/builder/bases"
)

// FileName is the conventional name of the configuration at the repository root.
const FileName = "bvrelease.yaml"

// Config is the whole of bvrelease.yaml.
type Config struct {
	Version   int        `yaml:"version"`
	Project   string     `yaml:"project"`
	Registry  string     `yaml:"registry"`
	Platforms []string   `yaml:"platforms"`
	Artifacts []Artifact `yaml:"artifacts"`
	Secrets   []Secret   `yaml:"secrets,omitempty"`
	Bases     Bases      `yaml:"bases"`
	Signing   Signing    `yaml:"signing,omitempty"`
	CLI       *CLI       `yaml:"cli,omitempty"`
	GitOps    *GitOps    `yaml:"gitops,omitempty"`
	Policy    Policy     `yaml:"policy,omitempty"`

	// Path is the file the configuration was read from; Root is its directory,
	// against which every relative path in it is resolved.
	Path string `yaml:"-"`
	Root string `yaml:"-"`
}

// Artifact is one image: a Dockerfile target built for every platform.
type Artifact struct {
	Name       string            `yaml:"name"`
	Context    string            `yaml:"context"`
	Dockerfile string            `yaml:"dockerfile"`
	Target     string            `yaml:"target,omitempty"`
	BuildArgs  map[string]string `yaml:"build_args,omitempty"`

	line, col int
}

// Secret is a build secret handed to BuildKit's secret provider under ID,
// read from an environment variable or a file. It reaches a build only through
// `RUN --mount=type=secret,id=<ID>`, never as a build argument.
type Secret struct {
	ID   string `yaml:"id"`
	Env  string `yaml:"env,omitempty"`
	File string `yaml:"file,omitempty"`

	line, col int
}

// Signing says who signs a release and whom verification trusts: the verify
// stage, `bvrelease verify` and the cluster's admission policy all require
// this identity (exactly, or matching IdentityRegexp) and OIDC Issuer.
// Keyless signing (GitHub Actions) gets its certificate from Fulcio and logs
// in Rekor; TrustedRoot is a Sigstore trusted_root.json naming both (empty:
// Sigstore's public-good instance, fetched through its TUF repository).
type Signing struct {
	Identity       string `yaml:"identity,omitempty"`
	IdentityRegexp string `yaml:"identity_regexp,omitempty"`
	Issuer         string `yaml:"issuer,omitempty"`
	Fulcio         string `yaml:"fulcio,omitempty"`
	Rekor          string `yaml:"rekor,omitempty"`
	TrustedRoot    string `yaml:"trusted_root,omitempty"`
}

// CLI is a command-line program distributed as signed archives: built with
// CGO_ENABLED=0 -trimpath for every target, archived deterministically
// (.tar.gz; .zip for windows), listed in checksums.txt, each archive and the
// checksums signed (a Sigstore bundle beside each), an SBOM per archive, a
// Homebrew formula, and uploaded to a GitHub Release.
type CLI struct {
	Name    string   `yaml:"name"`              // binary and archive name, e.g. bitvault
	Module  string   `yaml:"module"`            // directory of the Go module that holds it, e.g. service
	Main    string   `yaml:"main"`              // package to build, relative to module, e.g. ./cmd/bitvault
	Targets []string `yaml:"targets,omitempty"` // GOOS/GOARCH; default linux, darwin, windows × amd64, arm64
	// VersionVar is the -X variable the version is stamped into (default main.version).
	VersionVar string   `yaml:"version_var,omitempty"`
	Homebrew   Homebrew `yaml:"homebrew,omitempty"`
	// GitHubRelease is owner/repo of the GitHub Release the archives are uploaded to.
	GitHubRelease string `yaml:"github_release,omitempty"`
}

// Homebrew says what the generated formula says about the CLI.
type Homebrew struct {
	Description string `yaml:"description,omitempty"`
	Homepage    string `yaml:"homepage,omitempty"`
	License     string `yaml:"license,omitempty"`
}

// GitOps is where promotion opens its pull requests: Repo (owner/name on
// GitHub, or a local path/URL for a plain git remote) at Base, one values file
// per environment, in which each image's digest lives at a key path.
type GitOps struct {
	Repo         string            `yaml:"repo"`
	Base         string            `yaml:"base,omitempty"` // default main
	Environments map[string]string `yaml:"environments"`   // env → values file, e.g. dev: envs/dev/values.dev.yaml
	// Images maps an artifact to the key path of its digest in the values
	// files (default <artifact>.image.digest).
	Images    map[string]string `yaml:"images,omitempty"`
	Reviewers []string          `yaml:"reviewers,omitempty"`
	TokenEnv  string            `yaml:"token_env,omitempty"` // default GITOPS_TOKEN
	// Template is a directory of this repository laid out like the GitOps
	// repository (envs/<env>/values.<env>.yaml): a dry-run promotes against a
	// copy of it, offline, and shows the diff.
	Template string `yaml:"template,omitempty"`
}

// Policy says where `bvrelease policy` writes the admission policies and
// which provenance they accept.
type Policy struct {
	Output string `yaml:"output,omitempty"` // default policies
	// Provenance lists the accepted provenance producers: "bvrelease" (our own
	// signed SLSA v1 provenance) and/or "slsa-github-generator" (its container
	// generator's). Default [bvrelease].
	Provenance []string `yaml:"provenance,omitempty"`
}

// Bases says where base images come from. Mode is one of BasesAuto (upstream
// when the registry answers, stand-ins otherwise), BasesStandin or BasesUpstream.
type Bases struct {
	Mode       string `yaml:"mode"`
	Lock       string `yaml:"lock"`
	bases.Spec `yaml:",inline"`
}

// Base modes.
const (
	BasesAuto     = "auto"
	BasesStandin  = "standin"
	BasesUpstream = "upstream"
)

// Error is a configuration error at a line (and column, both 1-based; 0 when
// unknown) of the file.
type Error struct {
	File   string
	Line   int
	Column int
	Field  string
	Msg    string
}

func (e *Error) Error() string {
	loc := e.File
	switch {
	case e.Line > 0 && e.Column > 0:
		loc = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column)
	case e.Line > 0:
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field == "" {
		return fmt.Sprintf("%s: %s", loc, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
}

func (a *Artifact) UnmarshalYAML(n *yaml.Node) error {
	type plain Artifact
	if err := knownKeys(n, plain{}); err != nil {
		return err
	}
	if err := n.Decode((*plain)(a)); err != nil {
		return err
	}
	a.line, a.col = n.Line, n.Column
	return nil
}

func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	type plain Secret
	if err := knownKeys(n, plain{}); err != nil {
		return err
	}
	if err := n.Decode((*plain)(s)); err != nil {
		return err
	}
	s.line, s.col = n.Line, n.Column
	return nil
}

// knownKeys rejects mapping keys that v's yaml tags do not name. (A custom
// UnmarshalYAML loses the decoder's KnownFields setting, so it checks here.)
func knownKeys(n *yaml.Node, v any) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	known := map[string]bool{}
	t := reflect.TypeOf(v)
	for i := 0; i < t.NumField(); i++ {
		if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" && tag != "-" {
			known[tag] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if !known[k.Value] {
			names := make([]string, 0, len(known))
			for name := range known {
				names = append(names, name)
			}
			slices.Sort(names)
			return &Error{Line: k.Line, Column: k.Column, Field: k.Value, Msg: fmt.Sprintf("unknown field; known fields here: %s", strings.Join(names, ", "))}
		}
	}
	return nil
}

// Load reads and validates the configuration at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, &Error{File: path, Msg: "no release configuration; create it (see README.md, 'bvrelease.yaml') or pass --config"}
	}
	if err != nil {
		return nil, fmt.Errorf("read release configuration: %w", err)
	}
	return Parse(path, data)
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// Parse validates data as the configuration file at path.
func Parse(path string, data []byte) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	c := &Config{Path: path, Root: filepath.Dir(abs)}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		return nil, yamlError(path, data, err)
	}
	c.applyDefaults()
	if err := c.validate(); err != nil {
		var root yaml.Node
		if yaml.Unmarshal(data, &root) == nil {
			locate(err, &root)
		}
		return nil, err
	}
	return c, nil
}

// locate gives every error of err without a line the position of its field in
// the document (or, for a missing field, of the nearest enclosing one).
func locate(err error, doc *yaml.Node) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		ce, ok := e.(*Error)
		if !ok || ce.Line > 0 || ce.Field == "" {
			continue
		}
		if n := nodeAt(doc, fieldPath(ce.Field)); n != nil {
			ce.Line, ce.Column = n.Line, n.Column
		}
	}
}

// fieldPath splits a field as errors name it (artifacts[0].build_args.X)
// into mapping keys and sequence indexes: ["artifacts", "0", "build_args", "X"].
func fieldPath(field string) []string {
	var out []string
	for _, part := range strings.Split(field, ".") {
		for part != "" {
			i := strings.IndexByte(part, '[')
			if i < 0 {
				out = append(out, part)
				break
			}
			if i > 0 {
				out = append(out, part[:i])
			}
			j := strings.IndexByte(part[i:], ']')
			if j < 0 {
				out = append(out, part[i:])
				break
			}
			out = append(out, part[i+1:i+j])
			part = part[i+j+1:]
		}
	}
	return out
}

// nodeAt returns the node at path in doc (the key node for a mapping entry),
// or that of the longest prefix of path present; nil when not even the first
// element is.
func nodeAt(doc *yaml.Node, path []string) *yaml.Node {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	var found *yaml.Node
	for _, p := range path {
		var next, at *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					at, next = n.Content[i], n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			var i int
			if _, err := fmt.Sscanf(p, "%d", &i); err == nil && i >= 0 && i < len(n.Content) {
				at, next = n.Content[i], n.Content[i]
			}
		}
		if next == nil {
			break
		}
		found, n = at, next
	}
	return found
}

// yamlValue is what a yaml.v3 message is about: an unknown field's name or
// a value that does not fit its field.
var yamlValue = regexp.MustCompile("^field (\\S+) not found in type|^cannot unmarshal !!\\w+ `([^`]*)`")

func yamlError(path string, data []byte, err error) error {
	if errors.Is(err, io.EOF) {
		return &Error{File: path, Msg: "the file is empty; it needs at least version, registry, platforms and artifacts"}
	}
	var ce *Error
	if errors.As(err, &ce) {
		ce.File = path
		return ce
	}
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	var out []error
	for _, m := range msgs {
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			var line int
			fmt.Sscanf(sm[1], "%d", &line)
			msg := sm[2]
			if strings.Contains(msg, "not found in type") {
				msg += " (unknown field: check its spelling against docs/bvrelease-yaml.md)"
			}
			out = append(out, &Error{File: path, Line: line, Column: yamlColumn(data, line, sm[2]), Msg: msg})
			continue
		}
		out = append(out, &Error{File: path, Msg: m})
	}
	return errors.Join(out...)
}

// yamlColumn finds the column of what a yaml.v3 message at line is about
// (its messages give only the line); 0 when it cannot tell.
func yamlColumn(data []byte, line int, msg string) int {
	m := yamlValue.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	want := m[1] + m[2]
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return 0
	}
	col := 0
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if col > 0 {
			return
		}
		if n.Kind == yaml.ScalarNode && n.Line == line && n.Value == want {
			col = n.Column
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	return col
}

func (c *Config) applyDefaults() {
	if c.Version == 0 {
		c.Version = 1
	}
	if len(c.Platforms) == 0 {
		c.Platforms = []string{"linux/amd64", "linux/arm64"}
	}
	if c.Bases.Mode == "" {
		c.Bases.Mode = BasesAuto
	}
	if c.Bases.Lock == "" {
		c.Bases.Lock = "bases.lock.json"
	}
	if c.Policy.Output == "" {
		c.Policy.Output = "policies"
	}
	if len(c.Policy.Provenance) == 0 {
		c.Policy.Provenance = []string{"bvrelease"}
	}
	if c.CLI != nil {
		if len(c.CLI.Targets) == 0 {
			c.CLI.Targets = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64", "windows/arm64"}
		}
		if c.CLI.VersionVar == "" {
			c.CLI.VersionVar = "main.version"
		}
	}
	if c.GitOps != nil {
		if c.GitOps.Base == "" {
			c.GitOps.Base = "main"
		}
		if c.GitOps.TokenEnv == "" {
			c.GitOps.TokenEnv = "GITOPS_TOKEN"
		}
		if c.GitOps.Images == nil {
			c.GitOps.Images = map[string]string{}
		}
		for _, a := range c.Artifacts {
			if _, ok := c.GitOps.Images[a.Name]; !ok {
				c.GitOps.Images[a.Name] = a.Name + ".image.digest"
			}
		}
	}
	if c.Signing.Fulcio == "" {
		c.Signing.Fulcio = "https://fulcio.sigstore.dev"
	}
	if c.Signing.Rekor == "" {
		c.Signing.Rekor = "https://rekor.sigstore.dev"
	}
	for i := range c.Artifacts {
		a := &c.Artifacts[i]
		if a.Dockerfile == "" && a.Context != "" {
			a.Dockerfile = filepath.ToSlash(filepath.Join(a.Context, "Dockerfile"))
		}
	}
}

var (
	nameRE     = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)
	platformRE = regexp.MustCompile(`^linux/(amd64|arm64|arm/v7|ppc64le|s390x|riscv64)$`)
	secretIDRE = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
)

func (c *Config) validate() error {
	var errs []error
	add := func(line, col int, field, format string, args ...any) {
		errs = append(errs, &Error{File: c.Path, Line: line, Column: col, Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if c.Version != 1 {
		add(0, 0, "version", "unsupported version %d; this bvrelease reads version 1", c.Version)
	}
	if c.Registry == "" {
		add(0, 0, "registry", "missing; set the repository prefix images are pushed to, e.g. registry: ghcr.io/bitvault")
	} else if strings.Contains(c.Registry, ":latest") || strings.HasSuffix(c.Registry, "/") {
		add(0, 0, "registry", "%q must be a repository prefix without a tag or trailing slash, e.g. ghcr.io/bitvault", c.Registry)
	}
	if sg := c.Signing; sg.Identity != "" && sg.IdentityRegexp != "" {
		add(0, 0, "signing", "give identity or identity_regexp, not both")
	} else if sg.Identity != "" || sg.IdentityRegexp != "" {
		if sg.Issuer == "" {
			add(0, 0, "signing.issuer", "missing; an identity means nothing without its OIDC issuer, e.g. https://token.actions.githubusercontent.com")
		}
		if _, err := regexp.Compile(sg.IdentityRegexp); err != nil {
			add(0, 0, "signing.identity_regexp", "%v", err)
		}
	} else if sg.Issuer != "" {
		add(0, 0, "signing", "issuer without identity or identity_regexp")
	}
	for i, p := range c.Platforms {
		if !platformRE.MatchString(p) {
			add(0, 0, fmt.Sprintf("platforms[%d]", i), "%q is not a supported platform; use linux/amd64, linux/arm64, ...", p)
		}
	}
	if len(c.Artifacts) == 0 {
		add(0, 0, "artifacts", "no artifacts; list at least one image with name, context and dockerfile")
	}
	seen := map[string]bool{}
	for i, a := range c.Artifacts {
		f := fmt.Sprintf("artifacts[%d]", i)
		switch {
		case a.Name == "":
			add(a.line, a.col, f+".name", "missing; every artifact needs a name (the image repository under the registry)")
		case !nameRE.MatchString(a.Name):
			add(a.line, a.col, f+".name", "%q is not a valid repository name (lower-case letters, digits, '.', '_', '-')", a.Name)
		case a.Name == "latest":
			add(a.line, a.col, f+".name", "'latest' is never a name or a tag here; pick a real name")
		case seen[a.Name]:
			add(a.line, a.col, f+".name", "%q is listed twice; artifact names must be unique", a.Name)
		}
		seen[a.Name] = true
		if a.Context == "" {
			add(a.line, a.col, f+".context", "missing; set the build context directory relative to %s", filepath.Base(c.Path))
		} else if st, err := os.Stat(c.Abs(a.Context)); err != nil || !st.IsDir() {
			add(a.line, a.col, f+".context", "%s is not a directory; fix the path (relative to the repository root)", a.Context)
		}
		if a.Dockerfile != "" {
			if st, err := os.Stat(c.Abs(a.Dockerfile)); err != nil || st.IsDir() {
				add(a.line, a.col, f+".dockerfile", "%s does not exist; fix the path (relative to the repository root)", a.Dockerfile)
			}
		}
		for k := range a.BuildArgs {
			if looksSecret(k) {
				add(a.line, a.col, f+".build_args."+k, "looks like a secret; build arguments end up in the image history: declare it under secrets: and use RUN --mount=type=secret,id=...")
			}
		}
	}
	ids := map[string]bool{}
	for i, s := range c.Secrets {
		f := fmt.Sprintf("secrets[%d]", i)
		if !secretIDRE.MatchString(s.ID) {
			add(s.line, s.col, f+".id", "%q is not a valid secret id (letters, digits, '.', '_', '-')", s.ID)
		}
		if ids[s.ID] {
			add(s.line, s.col, f+".id", "%q is listed twice", s.ID)
		}
		ids[s.ID] = true
		if (s.Env == "") == (s.File == "") {
			add(s.line, s.col, f, "set exactly one of env (an environment variable name) or file (a path)")
		}
	}
	if !slices.Contains([]string{BasesAuto, BasesStandin, BasesUpstream}, c.Bases.Mode) {
		add(0, 0, "bases.mode", "%q is not one of auto, standin, upstream", c.Bases.Mode)
	}
	return errors.Join(errs...)
}

func looksSecret(name string) bool {
	n := strings.ToUpper(name)
	for _, w := range []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "APIKEY", "PRIVATE_KEY", "CREDENTIAL"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// Abs resolves a path from the configuration against its directory.
func (c *Config) Abs(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Root, filepath.FromSlash(p))
}

// Artifact returns the artifact called name.
func (c *Config) Artifact(name string) (Artifact, bool) {
	for _, a := range c.Artifacts {
		if a.Name == name {
			return a, true
		}
	}
	return Artifact{}, false
}

// Repository is the image repository of an artifact, e.g. ghcr.io/bitvault/bitvaultd.
func (c *Config) Repository(a Artifact) string { return c.Registry + "/" + a.Name }

// SecretValues reads every configured secret. A secret whose source is absent
// is left out (the Dockerfile's mount is then expected to be required=false);
// a file that exists but cannot be read is an error.
func (c *Config) SecretValues(getenv func(string) string) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, s := range c.Secrets {
		if s.Env != "" {
			if v := getenv(s.Env); v != "" {
				out[s.ID] = []byte(v)
			}
			continue
		}
		p := s.File
		if strings.HasPrefix(p, "~/") {
			home, _ := os.UserHomeDir()
			p = filepath.Join(home, p[2:])
		}
		data, err := os.ReadFile(c.Abs(p))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", s.ID, err)
		}
		out[s.ID] = data
	}
	return out, nil
}
