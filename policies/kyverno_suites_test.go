package policies_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// kyvernoTest is the part of a kyverno-test.yaml (cli.kyverno.io/v1alpha1 Test) these tests read.
type kyvernoTest struct {
	Policies  []string `yaml:"policies"`
	Resources []string `yaml:"resources"`
	Results   []struct {
		Policy    string   `yaml:"policy"`
		Rule      string   `yaml:"rule"`
		Kind      string   `yaml:"kind"`
		Result    string   `yaml:"result"`
		Resources []string `yaml:"resources"`
	} `yaml:"results"`
}

// suites are the `kyverno test` suites under tests/, by name.
func suites(t *testing.T) map[string]kyvernoTest {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("tests", "*", "kyverno-test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no tests/*/kyverno-test.yaml")
	}
	out := map[string]kyvernoTest{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var kt kyvernoTest
		if err := yaml.Unmarshal(b, &kt); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[filepath.Base(filepath.Dir(f))] = kt
	}
	return out
}

// summaryRE is the last line `kyverno test` prints.
var summaryRE = regexp.MustCompile(`Test Summary: (\d+) tests? passed and (\d+) tests? failed`)

// TestKyvernoSuites runs `kyverno test tests/` — every suite under policies/tests/ — with the
// pinned Kyverno CLI and requires each expected result to hold: the pass and fail counts Kyverno
// reports must be exactly the number of (result, resource) expectations in the suites, all passed.
// A suite is only as good as its expectations, so TestPodSecuritySuiteCoverage checks those.
func TestKyvernoSuites(t *testing.T) {
	bin := kyvernoBinary(t)
	want := 0
	for _, kt := range suites(t) {
		for _, r := range kt.Results {
			want += len(r.Resources)
		}
	}
	code, stdout, stderr := runKyverno(t, bin, "test", "tests/", "--remove-color")
	out := stderr + stdout
	m := summaryRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("kyverno test tests/: exit %d, no test summary:\n%s", code, out)
	}
	passed, _ := strconv.Atoi(m[1])
	failed, _ := strconv.Atoi(m[2])
	t.Logf("kyverno test tests/: exit %d, %d passed, %d failed (%d expected results)", code, passed, failed, want)
	if code != 0 || failed != 0 || passed != want {
		t.Fatalf("kyverno test tests/: exit %d, %d passed and %d failed; want exit 0, all %d expected results passed:\n%s", code, passed, failed, want, out)
	}
	for _, skipped := range []string{"Policies Skipped", "failed to load", "Error:"} {
		if strings.Contains(out, skipped) {
			t.Fatalf("kyverno test tests/: output has %q:\n%s", skipped, out)
		}
	}
}

// TestPodSecuritySuiteCoverage checks the expectations of tests/pod-security against the
// generated pod-security.yaml: the suite tests that very file; every rule of it (in its
// Deployment form, autogen-<rule>) has an expectation for every resource of the suite, passes
// every good-* Deployment and fails at least one bad-* Deployment; and every bad-* Deployment
// fails at least one rule — each of latest tag, tag without digest, root user, privilege
// escalation, writable root filesystem, missing drop ALL and no seccomp among them.
func TestPodSecuritySuiteCoverage(t *testing.T) {
	kt, ok := suites(t)["pod-security"]
	if !ok {
		t.Fatal("no tests/pod-security/kyverno-test.yaml")
	}
	if !slices.Equal(kt.Policies, []string{"../../pod-security.yaml"}) {
		t.Fatalf("tests/pod-security tests %v, want the generated ../../pod-security.yaml", kt.Policies)
	}
	b, err := os.ReadFile("pod-security.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var policy struct {
		Metadata struct{ Name string }
		Spec     struct{ Rules []struct{ Name string } }
	}
	if err := yaml.Unmarshal(b, &policy); err != nil {
		t.Fatal(err)
	}
	var resources []string
	for _, f := range kt.Resources {
		data, err := os.ReadFile(filepath.Join("tests", "pod-security", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---\n") {
			var r struct {
				Kind     string
				Metadata struct{ Name string }
			}
			if err := yaml.Unmarshal([]byte(doc), &r); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if r.Kind != "Deployment" {
				t.Fatalf("%s: %s %s, want Deployments", f, r.Kind, r.Metadata.Name)
			}
			resources = append(resources, r.Metadata.Name)
		}
	}
	// expected[rule][resource] = pass|fail
	expected := map[string]map[string]string{}
	for _, r := range kt.Results {
		if r.Policy != policy.Metadata.Name || r.Kind != "Deployment" {
			t.Errorf("expectation for %s %s, want %s on Deployments", r.Policy, r.Kind, policy.Metadata.Name)
		}
		if expected[r.Rule] == nil {
			expected[r.Rule] = map[string]string{}
		}
		for _, res := range r.Resources {
			if prev, dup := expected[r.Rule][res]; dup {
				t.Errorf("%s: %s expected twice (%s, %s)", r.Rule, res, prev, r.Result)
			}
			expected[r.Rule][res] = r.Result
		}
	}
	failsSomething := map[string]bool{}
	for _, rule := range policy.Spec.Rules {
		name := "autogen-" + rule.Name
		exp := expected[name]
		fails := 0
		for _, res := range resources {
			switch got := exp[res]; {
			case got == "":
				t.Errorf("%s: no expectation for %s", name, res)
			case strings.HasPrefix(res, "good-") && got != "pass":
				t.Errorf("%s: good Deployment %s expected to %s", name, res, got)
			case got == "fail":
				fails++
				failsSomething[res] = true
			}
		}
		if fails == 0 {
			t.Errorf("%s: no Deployment of the suite fails it", name)
		}
		delete(expected, name)
	}
	for rule := range expected {
		t.Errorf("expectations for %s, which pod-security.yaml does not have", rule)
	}
	for _, res := range resources {
		if strings.HasPrefix(res, "bad-") && !failsSomething[res] {
			t.Errorf("bad Deployment %s fails no rule", res)
		}
	}
	for _, bad := range []string{"bad-latest-tag", "bad-tag-without-digest", "bad-root-user", "bad-privilege-escalation", "bad-writable-root-fs", "bad-no-drop-all", "bad-no-seccomp"} {
		if !slices.Contains(resources, bad) {
			t.Errorf("the suite has no %s Deployment", bad)
		}
	}
}
