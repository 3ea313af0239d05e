package workflows

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"gopkg.in/yaml.v3"
)

// root is the repository root.
var root = filepath.Join("..", "..")

func workflowFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yaml"))
	files = append(files, more...)
	slices.Sort(files)
	for _, want := range []string{"ci.yml", "promote.yml", "release.yml"} {
		if !slices.Contains(files, filepath.Join(root, ".github", "workflows", want)) {
			t.Errorf(".github/workflows/%s is missing", want)
		}
	}
	return files
}

func actionFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, ".github", "actions", "*", "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestActionlint runs actionlint v1.7.12 (with shellcheck on the run:
// scripts when it is installed) on every workflow.
func TestActionlint(t *testing.T) {
	files := workflowFiles(t)
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	opts := &actionlint.LinterOptions{WorkingDir: abs}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		opts.Shellcheck = sc
	} else {
		t.Log("shellcheck not installed: run: scripts are not shellchecked")
	}
	var out bytes.Buffer
	l, err := actionlint.NewLinter(&out, opts)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		p, _ := filepath.Abs(f)
		paths = append(paths, p)
	}
	errs, err := l.LintFiles(paths, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("actionlint: %s", e)
	}
}

// TestActionlintCatches: the linter as configured here does report problems
// (a needs: naming no job, a misspelt context, a shell script error).
func TestActionlintCatches(t *testing.T) {
	l, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.Lint("bad.yml", []byte(`on: push
jobs:
  a:
    needs: nope
    runs-on: ubuntu-24.04
    steps:
      - run: echo ${{ github.evnt.name }}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range errs {
		kinds = append(kinds, e.Kind)
	}
	for _, want := range []string{"job-needs", "expression"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("actionlint did not report %s; got %v", want, errs)
		}
	}
}

// TestWorkflowRules applies this repository's rules to every workflow and
// local action.
func TestWorkflowRules(t *testing.T) {
	for _, f := range workflowFiles(t) {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range checkWorkflow(src) {
			t.Errorf("%s: %s", rel(f), p)
		}
		for _, p := range checkUses(src) {
			t.Errorf("%s: %s", rel(f), p)
		}
	}
	actions := actionFiles(t)
	if len(actions) == 0 {
		t.Error("no local actions found in .github/actions")
	}
	for _, f := range actions {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range checkUses(src) {
			t.Errorf("%s: %s", rel(f), p)
		}
	}
}

func rel(p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(r)
}

var (
	// owner/repo[/path]@<commit SHA>
	pinnedRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@]+)?@[0-9a-f]{40}$`)
	// the release a pin stands for, in the line's comment
	releaseCommentRE = regexp.MustCompile(`^#\s*v\d+\.\d+\.\d+\b`)
	// slsa-github-generator's reusable workflows: by release tag only
	slsaRE = regexp.MustCompile(`^slsa-framework/slsa-github-generator/\.github/workflows/[A-Za-z0-9_.-]+\.ya?ml@v\d+\.\d+\.\d+$`)
	// container actions: by digest
	dockerRE = regexp.MustCompile(`^docker://[^@]+@sha256:[0-9a-f]{64}$`)
	// commands that sign (keylessly) and push: a release, or a publish that is not a dry-run
	signsRE  = regexp.MustCompile(`\bbvrelease (release|publish)\b`)
	dryRunRE = regexp.MustCompile(`--dry-run\b(=true)?`)
	// expressions an attacker can choose, which must reach a script through env, never inline
	untrustedRE = regexp.MustCompile(`\$\{\{[^}]*\b(github\.event\.|inputs\.|github\.head_ref)`)
)

// checkUses checks every `uses:` in a workflow or action: a local path, a
// slsa-github-generator reusable workflow by tag, a container by digest, or
// an action pinned by a 40-hex commit SHA with its release in a comment
// (`# vX.Y.Z`).
func checkUses(src []byte) []string {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return []string{err.Error()}
	}
	var problems []string
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == "uses" && v.Kind == yaml.ScalarNode {
					if p := checkUse(v); p != "" {
						problems = append(problems, fmt.Sprintf("line %d: uses: %s: %s", v.Line, v.Value, p))
					}
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	return problems
}

func checkUse(v *yaml.Node) string {
	u := v.Value
	switch {
	case strings.HasPrefix(u, "./"):
		return ""
	case strings.HasPrefix(u, "slsa-framework/slsa-github-generator/.github/workflows/"):
		if !slsaRE.MatchString(u) {
			return "slsa-github-generator's reusable workflows must be referenced by release tag (@vX.Y.Z), not by SHA or branch: its builder identity is the tag"
		}
		return ""
	case strings.HasPrefix(u, "docker://"):
		if !dockerRE.MatchString(u) {
			return "pin the container image by digest (docker://image@sha256:...)"
		}
		return ""
	case !pinnedRE.MatchString(u):
		return "pin the action by its full 40-hex commit SHA (owner/repo@<sha> # vX.Y.Z)"
	case !releaseCommentRE.MatchString(v.LineComment):
		return "say which release the SHA is in a comment on the same line: # vX.Y.Z"
	}
	return ""
}

// checkWorkflow checks a workflow's triggers, permissions, concurrency and
// scripts.
func checkWorkflow(src []byte) []string {
	w, errs := actionlint.Parse(src)
	if len(errs) > 0 {
		var out []string
		for _, e := range errs {
			out = append(out, e.Error())
		}
		return out
	}
	var problems []string
	add := func(pos *actionlint.Pos, format string, args ...any) {
		line := 0
		if pos != nil {
			line = pos.Line
		}
		problems = append(problems, fmt.Sprintf("line %d: %s", line, fmt.Sprintf(format, args...)))
	}
	for _, e := range w.On {
		if e.EventName() == "pull_request_target" {
			add(nil, "pull_request_target runs untrusted code with a write token and secrets; use pull_request")
		}
	}
	if p := w.Permissions; p == nil || p.All != nil || len(p.Scopes) != 1 || p.Scopes["contents"] == nil || p.Scopes["contents"].Value.Value != "read" {
		add(posOf(p), "the top-level permissions must be exactly `contents: read`; grant more per job")
	}
	if w.Concurrency == nil || w.Concurrency.Group == nil || w.Concurrency.Group.Value == "" {
		add(nil, "no concurrency group")
	}
	for id, j := range w.Jobs {
		var runs []string
		for _, s := range j.Steps {
			if r, ok := s.Exec.(*actionlint.ExecRun); ok && r.Run != nil {
				runs = append(runs, r.Run.Value)
				if m := untrustedRE.FindString(r.Run.Value); m != "" {
					add(r.Run.Pos, "job %s: %s…}} inline in a script; pass it through env", id, m)
				}
			}
			if a, ok := s.Exec.(*actionlint.ExecAction); ok && a.Uses != nil && strings.HasPrefix(a.Uses.Value, "actions/checkout@") {
				if in := a.Inputs["persist-credentials"]; in == nil || in.Value == nil || in.Value.Value != "false" {
					add(a.Uses.Pos, "job %s: actions/checkout without persist-credentials: false leaves the token in .git/config", id)
				}
			}
		}
		signs := slices.ContainsFunc(runs, func(r string) bool {
			for _, line := range strings.Split(r, "\n") {
				if signsRE.MatchString(line) && !dryRunRE.MatchString(line) {
					return true
				}
			}
			return false
		})
		if j.WorkflowCall != nil && j.WorkflowCall.Uses != nil && slsaRE.MatchString(j.WorkflowCall.Uses.Value) {
			signs = true
		}
		if j.Permissions != nil && j.Permissions.All != nil {
			add(j.Permissions.Pos, "job %s: permissions: %s; name each scope", id, j.Permissions.All.Value)
		}
		for _, scope := range []string{"id-token", "packages"} {
			if v := scopeValue(j.Permissions, scope); v == "write" && !signs {
				add(j.Permissions.Pos, "job %s: %s: write, but it neither runs `bvrelease release` (or a publish that is not a dry-run) nor calls slsa-github-generator", id, scope)
			}
		}
	}
	return problems
}

func scopeValue(p *actionlint.Permissions, scope string) string {
	if p == nil {
		return ""
	}
	if s := p.Scopes[scope]; s != nil && s.Value != nil {
		return s.Value.Value
	}
	return ""
}

func posOf(p *actionlint.Permissions) *actionlint.Pos {
	if p == nil {
		return nil
	}
	return p.Pos
}

// TestRulesCatchViolations: each rule rejects what it is there to reject.
func TestRulesCatchViolations(t *testing.T) {
	const ok = `name: t
on: pull_request
permissions:
  contents: read
concurrency:
  group: t-${{ github.ref }}
jobs:
  test:
    runs-on: ubuntu-24.04
    steps:
      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2
        with:
          persist-credentials: false
      - uses: ./.github/actions/setup
      - run: go test ./...
  release:
    runs-on: ubuntu-24.04
    permissions:
      contents: read
      id-token: write
      packages: write
    steps:
      - run: go run ./cmd/bvrelease release
  provenance:
    needs: release
    permissions:
      id-token: write
      packages: write
      actions: read
    uses: slsa-framework/slsa-github-generator/.github/workflows/generator_container_slsa3.yml@v2.1.0
    with:
      image: x
      digest: sha256:0
`
	if p := append(checkWorkflow([]byte(ok)), checkUses([]byte(ok))...); len(p) > 0 {
		t.Fatalf("the good workflow is rejected: %v", p)
	}
	tests := []struct {
		name, old, new, want string
	}{
		{"pull_request_target", "on: pull_request", "on: pull_request_target", "pull_request_target runs untrusted code"},
		{"no top-level permissions", "permissions:\n  contents: read\nconcurrency", "concurrency", "top-level permissions must be exactly"},
		{"write-all", "permissions:\n  contents: read\nconcurrency", "permissions: write-all\nconcurrency", "top-level permissions must be exactly"},
		{"more than contents: read", "permissions:\n  contents: read\nconcurrency", "permissions:\n  contents: read\n  id-token: write\nconcurrency", "top-level permissions must be exactly"},
		{"no concurrency", "concurrency:\n  group: t-${{ github.ref }}\n", "", "no concurrency group"},
		{"tag instead of SHA", "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", "actions/checkout@v4", "full 40-hex commit SHA"},
		{"short SHA", "actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 # v4.2.2", "actions/checkout@11bd719 # v4.2.2", "full 40-hex commit SHA"},
		{"SHA without its release", "# v4.2.2", "", "# vX.Y.Z"},
		{"slsa generator by SHA", "generator_container_slsa3.yml@v2.1.0", "generator_container_slsa3.yml@f7dd8c54c2067bafc12ca7a55595d5ee9b75204a", "by release tag"},
		{"slsa generator by branch", "generator_container_slsa3.yml@v2.1.0", "generator_container_slsa3.yml@main", "by release tag"},
		{"docker by tag", "uses: ./.github/actions/setup", "uses: docker://alpine:3", "by digest"},
		{"id-token on a test job", "    runs-on: ubuntu-24.04\n    steps:\n      - uses: actions/checkout", "    runs-on: ubuntu-24.04\n    permissions:\n      id-token: write\n    steps:\n      - uses: actions/checkout", "job test: id-token: write"},
		{"packages on a dry-run", "go run ./cmd/bvrelease release", "go run ./cmd/bvrelease release --dry-run", "job release: packages: write"},
		{"untrusted input inline", "go test ./...", "echo ${{ github.event.pull_request.title }}", "pass it through env"},
		{"checkout keeps the token", "        with:\n          persist-credentials: false\n", "", "persist-credentials: false"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(ok, tc.old) {
				t.Fatalf("the good workflow has no %q", tc.old)
			}
			src := []byte(strings.Replace(ok, tc.old, tc.new, 1))
			problems := append(checkWorkflow(src), checkUses(src)...)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("not caught (want %q); problems: %v", tc.want, problems)
			}
		})
	}
}

// TestWorkflowsDoTheirJobs: the commands and wiring the workflows exist for.
func TestWorkflowsDoTheirJobs(t *testing.T) {
	read := func(name string) (*actionlint.Workflow, string) {
		src, err := os.ReadFile(filepath.Join(root, ".github", "workflows", name))
		if err != nil {
			t.Fatal(err)
		}
		w, errs := actionlint.Parse(src)
		if len(errs) > 0 {
			t.Fatalf("%s: %v", name, errs)
		}
		return w, string(src)
	}
	runsOf := func(j *actionlint.Job) string {
		var b strings.Builder
		for _, s := range j.Steps {
			if r, ok := s.Exec.(*actionlint.ExecRun); ok && r.Run != nil {
				b.WriteString(r.Run.Value + "\n")
			}
		}
		return b.String()
	}
	job := func(w *actionlint.Workflow, file, id string) *actionlint.Job {
		j := w.Jobs[id]
		if j == nil {
			t.Fatalf("%s has no job %s", file, id)
		}
		return j
	}

	ci, _ := read("ci.yml")
	if events := eventNames(ci); !slices.Equal(events, []string{"pull_request"}) {
		t.Errorf("ci.yml runs on %v, want pull_request", events)
	}
	for id, want := range map[string]string{
		"test":   "./scripts/test.sh",
		"build":  "go run ./cmd/bvrelease build",
		"scan":   "go run ./cmd/bvrelease publish --dry-run",
		"policy": "go run ./cmd/bvrelease policy --check",
	} {
		if runs := runsOf(job(ci, "ci.yml", id)); !strings.Contains(runs, want) {
			t.Errorf("ci.yml job %s does not run %q", id, want)
		}
	}

	rel, relSrc := read("release.yml")
	if events := eventNames(rel); !slices.Equal(events, []string{"push"}) || !strings.Contains(relSrc, "branches: [main]") || !strings.Contains(relSrc, `tags: ["v*"]`) {
		t.Errorf("release.yml must run on pushes to main and v* tags")
	}
	r := job(rel, "release.yml", "release")
	if !strings.Contains(runsOf(r), "go run ./cmd/bvrelease release") {
		t.Error("release.yml job release does not run bvrelease release")
	}
	for _, o := range []string{"images", "version"} {
		if r.Outputs[o] == nil {
			t.Errorf("release.yml job release has no output %s", o)
		}
	}
	if v := scopeValue(r.Permissions, "id-token"); v != "write" {
		t.Errorf("release.yml job release: id-token %q, keyless signing needs write", v)
	}
	if v := scopeValue(job(rel, "release.yml", "build").Permissions, "id-token"); v != "" {
		t.Errorf("release.yml job build: id-token %q", v)
	}
	prov := job(rel, "release.yml", "provenance")
	if prov.WorkflowCall == nil || !slsaRE.MatchString(prov.WorkflowCall.Uses.Value) || !strings.Contains(prov.WorkflowCall.Uses.Value, "generator_container_slsa3.yml@v2.1.0") {
		t.Error("release.yml job provenance does not call slsa-github-generator's container generator v2.1.0")
	}
	if prov.Strategy == nil || !strings.Contains(relSrc, "fromJSON(needs.release.outputs.images)") {
		t.Error("release.yml job provenance does not run once per image digest of the release job")
	}
	p := job(rel, "release.yml", "promote")
	if runs := runsOf(p); !strings.Contains(runs, "bvrelease promote --env") || !strings.Contains(runs, "--from dist/release.json") {
		t.Error("release.yml job promote does not run bvrelease promote --from dist/release.json")
	}
	if !strings.Contains(relSrc, "startsWith(github.ref, 'refs/tags/v') && 'staging' || 'dev'") || !strings.Contains(relSrc, "secrets.GITOPS_TOKEN") {
		t.Error("release.yml job promote: main → dev, tags → staging, with GITOPS_TOKEN")
	}
	if v := scopeValue(p.Permissions, "contents"); v != "read" || len(p.Permissions.Scopes) != 1 {
		t.Error("release.yml job promote: permissions must be contents: read only")
	}

	pr, _ := read("promote.yml")
	var dispatch *actionlint.WorkflowDispatchEvent
	for _, e := range pr.On {
		if d, ok := e.(*actionlint.WorkflowDispatchEvent); ok {
			dispatch = d
		}
	}
	if dispatch == nil || dispatch.Inputs["env"] == nil || dispatch.Inputs["release"] == nil {
		t.Fatal("promote.yml: workflow_dispatch with inputs env and release")
	}
	if runs := runsOf(job(pr, "promote.yml", "promote")); !strings.Contains(runs, "bvrelease promote --env") {
		t.Error("promote.yml does not run bvrelease promote")
	}
}

func eventNames(w *actionlint.Workflow) []string {
	var out []string
	for _, e := range w.On {
		out = append(out, e.EventName())
	}
	return out
}
