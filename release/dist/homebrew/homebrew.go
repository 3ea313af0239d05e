// Package homebrew renders the Homebrew formula of a CLI release: one class
// whose on_macos / on_linux blocks pick the archive for the machine's CPU
// (Hardware::CPU.arm? / intel?) by its GitHub Release download URL and SHA-256,
// installs the binary and tests `<name> version`. Only the targets that were
// built appear; windows archives never do.
package homebrew

import (
	"bytes"
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"text/template"
)

//go:embed formula.rb.tmpl
var formulaTemplate string

var tmpl = template.Must(template.New("formula").Funcs(template.FuncMap{"ruby": rubyString}).Parse(formulaTemplate))

// Archive is one built archive.
type Archive struct {
	OS, Arch string // darwin/linux × amd64/arm64; others are ignored
	File     string // archive file name, e.g. bitvault_1.2.3_darwin_arm64.tar.gz
	SHA256   string // hex
}

// Formula is what the formula says.
type Formula struct {
	Name        string // the binary, e.g. bitvault; the class is its CamelCase
	Version     string // e.g. 1.2.3
	Description string
	Homepage    string
	License     string // SPDX expression, e.g. Apache-2.0
	// Repository is owner/name of the GitHub Release the archives are downloaded from.
	Repository string
	Archives   []Archive
}

// URL is an archive's download URL on the release of tag v<version>.
func URL(repository, version, file string) string {
	return "https://github.com/" + repository + "/releases/download/v" + version + "/" + file
}

var (
	nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._+-]*$`)
	repoRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
	hexRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// ClassName is Homebrew's class for a formula name: bitvault → Bitvault,
// bitvault-cli → BitvaultCli.
func ClassName(name string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return strings.ReplaceAll(b.String(), "+", "x")
}

type variant struct {
	URL, SHA256 string
}

type view struct {
	Formula
	Class                                  string
	MacARM, MacIntel, LinuxARM, LinuxIntel *variant
}

// Render returns the formula (Ruby source).
func Render(f Formula) ([]byte, error) {
	if !nameRE.MatchString(f.Name) {
		return nil, fmt.Errorf("homebrew: name %q is not a formula name", f.Name)
	}
	if !repoRE.MatchString(f.Repository) {
		return nil, fmt.Errorf("homebrew: repository %q: want owner/name (cli.github_release)", f.Repository)
	}
	if f.Version == "" || strings.ContainsAny(f.Version, " /\"") {
		return nil, fmt.Errorf("homebrew: version %q", f.Version)
	}
	v := view{Formula: f, Class: ClassName(f.Name)}
	slots := map[string]**variant{"darwin/arm64": &v.MacARM, "darwin/amd64": &v.MacIntel, "linux/arm64": &v.LinuxARM, "linux/amd64": &v.LinuxIntel}
	archives := slices.Clone(f.Archives)
	for _, a := range archives {
		slot, ok := slots[a.OS+"/"+a.Arch]
		if !ok {
			continue
		}
		if !hexRE.MatchString(a.SHA256) {
			return nil, fmt.Errorf("homebrew: %s: sha256 %q", a.File, a.SHA256)
		}
		if *slot != nil {
			return nil, fmt.Errorf("homebrew: two archives for %s/%s", a.OS, a.Arch)
		}
		*slot = &variant{URL: URL(f.Repository, f.Version, a.File), SHA256: a.SHA256}
	}
	if v.MacARM == nil && v.MacIntel == nil && v.LinuxARM == nil && v.LinuxIntel == nil {
		return nil, fmt.Errorf("homebrew: no darwin or linux amd64/arm64 archive to install")
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// rubyString quotes s as a Ruby double-quoted string literal.
func rubyString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `#`, `\#`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
