// Package kyvernotest runs the pinned Kyverno CLI (tools/kyverno, scan.KyvernoVersion) in tests,
// offline: `kyverno apply` with its policy report on a Deployment written for the purpose, and
// the generated verify-images policy (policies/verify-images.yaml, release/policy) adapted to a
// test registry on 127.0.0.1 and a test Sigstore (internal/testsupport/sigstoretest): the image
// pattern, the keyless roots and issuer, the Rekor URL and public key, and optionally the
// subject and builder patterns replaced — everything else as generated.
package kyvernotest

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/attest/scan"
	"github.com/bitvault/bitvault/internal/testsupport/tooltest"
)

// Binary returns the pinned Kyverno CLI, or skips the test (fails it with
// BITVAULT_REQUIRE_TOOLS=1) when it has not been built.
func Binary(t testing.TB) string {
	t.Helper()
	return tooltest.Binary(t, scan.FindKyverno)
}

// Run runs a CLI (Kyverno, or another Sigstore tool) offline — no cluster, a sealed
// environment (tooltest.Cmd) — in dir ("": the test's package directory), and returns its
// exit status, stdout and stderr.
func Run(t testing.TB, dir, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return tooltest.Cmd{Dir: dir}.Run(t, bin, args...)
}

// Report is what `kyverno apply --policy-report` prints on stdout: one result per rule and
// resource, and their counts.
type Report struct {
	Results []Result `yaml:"results"`
	Summary Summary  `yaml:"summary"`
}

// Result is one rule's verdict on one resource.
type Result struct {
	Message string `yaml:"message"`
	Policy  string `yaml:"policy"`
	Rule    string `yaml:"rule"`
	Result  string `yaml:"result"` // pass, fail, warn, error, skip
}

// Summary counts the results.
type Summary struct {
	Pass  int `yaml:"pass"`
	Fail  int `yaml:"fail"`
	Warn  int `yaml:"warn"`
	Error int `yaml:"error"`
	Skip  int `yaml:"skip"`
}

// Messages are the results as "result: message" lines, each ending in a newline.
func (r Report) Messages() string {
	var b strings.Builder
	for _, res := range r.Results {
		b.WriteString(res.Result + ": " + res.Message + "\n")
	}
	return b.String()
}

// Apply runs `kyverno apply POLICY --resource RESOURCE --registry --policy-report` (--registry:
// images are read from their registries; one on 127.0.0.1 is spoken to in plain http) and
// returns its exit status (0 admitted, 1 a rule failed), its report and its whole output. A run
// without a report with results fails the test.
func Apply(t testing.TB, bin, policy, resource string) (code int, r Report, output string) {
	t.Helper()
	args := []string{"apply", policy, "--resource", resource, "--registry", "--policy-report"}
	code, stdout, stderr := Run(t, "", bin, args...)
	output = stderr + stdout
	// the report follows kyverno's warnings (ClusterPolicy deprecated) on stdout
	if i := strings.Index(stdout, "apiVersion: "); i >= 0 {
		stdout = stdout[i:]
	}
	if err := yaml.Unmarshal([]byte(stdout), &r); err != nil || len(r.Results) == 0 {
		t.Fatalf("kyverno %s: exit %d, no policy report with results (%v):\n%s", strings.Join(args, " "), code, err, output)
	}
	return code, r, output
}

// deploymentYAML is a Deployment of one container with the securityContext the chart sets —
// what policies/pod-security.yaml requires — so that only the image decides verify-images.
const deploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: bitvault
spec:
  replicas: 1
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
    spec:
      containers:
        - name: %[1]s
          image: %[2]s
          securityContext:
            runAsNonRoot: true
            runAsUser: 65532
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities:
              drop: [ALL]
            seccompProfile:
              type: RuntimeDefault
`

// Deployment is a Deployment named name (namespace bitvault) running image as its one container,
// hardened as the chart hardens it (non-root 65532, read-only root filesystem, no privilege
// escalation, every capability dropped, RuntimeDefault seccomp).
func Deployment(name, image string) []byte {
	return fmt.Appendf(nil, deploymentYAML, name, image)
}

// WriteResource writes a resource into a fresh temp dir and returns its path. (kyverno splits
// --resource on commas: t.TempDir paths have none, so subtest names must have none either.)
func WriteResource(t testing.TB, data []byte) string {
	t.Helper()
	if strings.Contains(t.Name(), ",") {
		t.Fatalf("test name %q has a comma: kyverno would split the resource path on it", t.Name())
	}
	p := filepath.Join(t.TempDir(), "resource.yaml")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Load decodes the YAML document in file.
func Load(t testing.TB, file string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := yaml.Unmarshal(b, &p); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return p
}

// At walks a decoded YAML document: string keys index maps, ints index lists; a step that does
// not exist fails the test.
func At(t testing.TB, v any, path ...any) any {
	t.Helper()
	for i, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%v: not a map", path[:i+1])
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%v: not a list with %d items", path[:i+1], k+1)
			}
			v = l[k]
		}
	}
	return v
}

// VerifyImages is the first verifyImages entry of the first rule of a verify-images policy.
func VerifyImages(t testing.TB, policy map[string]any) map[string]any {
	t.Helper()
	vi, ok := At(t, policy, "spec", "rules", 0, "verifyImages", 0).(map[string]any)
	if !ok {
		t.Fatal("spec.rules[0].verifyImages[0] is not a map")
	}
	return vi
}

// KeylessEntries are every keyless attestor of a verifyImages entry, the image's and each
// attestation's alike; an attestation without attestors or an attestor that is not keyless
// fails the test.
func KeylessEntries(t testing.TB, vi any) []map[string]any {
	t.Helper()
	var sets []any
	sets = append(sets, At(t, vi, "attestors").([]any)...)
	for _, a := range At(t, vi, "attestations").([]any) {
		l, _ := At(t, a, "attestors").([]any)
		if len(l) == 0 {
			t.Fatal("verifyImages: an attestations entry without attestors")
		}
		sets = append(sets, l...)
	}
	var out []map[string]any
	for _, s := range sets {
		for _, e := range At(t, s, "entries").([]any) {
			k, ok := At(t, e, "keyless").(map[string]any)
			if !ok {
				t.Fatalf("verifyImages: attestor entry %v is not keyless", e)
			}
			out = append(out, k)
		}
	}
	return out
}

// ProvenanceConditions are the "all" conditions of the SLSA provenance v1 attestation of a
// verifyImages entry.
func ProvenanceConditions(t testing.TB, vi any) []any {
	t.Helper()
	for _, a := range At(t, vi, "attestations").([]any) {
		if At(t, a, "type") == attestation.SLSAProvenanceV1 {
			return At(t, a, "conditions", 0, "all").([]any)
		}
	}
	t.Fatalf("verifyImages: no %s attestation", attestation.SLSAProvenanceV1)
	return nil
}

// BuilderIDField is the provenance field the builder condition matches.
const BuilderIDField = "runDetails.builder.id"

// BuilderCondition is the key of the provenance condition on the builder id: JMESPath's
// regex_match of pattern (Kyverno conditions have no regex operator).
func BuilderCondition(pattern string) string {
	return fmt.Sprintf("{{ regex_match('%s', %s) }}", pattern, BuilderIDField)
}

var builderConditionRE = regexp.MustCompile(`^\{\{ regex_match\('.*', ` + regexp.QuoteMeta(BuilderIDField) + `\) \}\}$`)

// PublicRekor is the transparency log a generated policy names.
const PublicRekor = "https://rekor.sigstore.dev"

// Trust is what Policy puts in place of a generated policy's cluster specifics.
type Trust struct {
	Images        string // the imageReferences pattern, e.g. 127.0.0.1:5000/bitvault/*
	SubjectRegExp string // every keyless attestor's subject pattern; "": as generated
	Issuer        string // the certificates' OIDC issuer
	Roots         []byte // PEM CA roots (sigstoretest's RootPEM)
	// BuilderPattern replaces the pattern of the provenance's builder id condition; "": as
	// generated.
	BuilderPattern string
	// RekorURL and RekorKey (PEM) are the transparency log the signatures are in: Kyverno checks
	// each signature's Rekor bundle against RekorKey, offline. No key: the log is not checked.
	RekorURL string
	RekorKey []byte
}

// Policy writes the verify-images policy in source, made to trust tr, as dir/policy.yaml and
// returns its path: the image pattern, every keyless attestor's issuer, roots and Rekor (URL
// and public key; the SCT not checked, ctlog ignoreSCT: there is no CT log offline), and
// optionally the subject and builder patterns replaced; everything else as in source.
func Policy(t testing.TB, source, dir string, tr Trust) string {
	t.Helper()
	p := Load(t, source)
	vi := VerifyImages(t, p)
	vi["imageReferences"] = []any{tr.Images}
	for _, k := range KeylessEntries(t, vi) {
		if tr.SubjectRegExp != "" {
			k["subjectRegExp"] = tr.SubjectRegExp
		}
		k["issuer"], k["roots"] = tr.Issuer, string(tr.Roots)
		if len(tr.RekorKey) > 0 {
			k["rekor"] = map[string]any{"url": tr.RekorURL, "pubkey": string(tr.RekorKey)}
		} else {
			// Kyverno 1.19 refuses a rekor without url ("An URL is required"), even ignoring the log.
			rekor, _ := k["rekor"].(map[string]any)
			url, _ := rekor["url"].(string)
			k["rekor"] = map[string]any{"url": cmp.Or(url, PublicRekor), "ignoreTlog": true}
		}
		k["ctlog"] = map[string]any{"ignoreSCT": true}
	}
	if tr.BuilderPattern != "" {
		replaced := false
		for _, c := range ProvenanceConditions(t, vi) {
			if m, _ := c.(map[string]any); m != nil && builderConditionRE.MatchString(fmt.Sprint(m["key"])) {
				m["key"], replaced = BuilderCondition(tr.BuilderPattern), true
			}
		}
		if !replaced {
			t.Fatalf("%s: no condition on %s", source, BuilderIDField)
		}
	}
	b, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}
