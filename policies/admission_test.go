package policies_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gopkg.in/yaml.v3"

	"github.com/bitvault/bitvault/attest/attestation"
	"github.com/bitvault/bitvault/attest/scan"
	"github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/attest/sign/keyless"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
	"github.com/bitvault/bitvault/internal/testsupport/sigstoretest"
)

const (
	policyFile = "verify-images.yaml"
	// what the shipped policy names (TestPolicyShape keeps these true)
	shippedImages  = "ghcr.io/bitvault/*"
	shippedSubject = "https://github.com/bitvault/bitvault/.github/workflows/release.yml@refs/tags/v*"
	shippedIssuer  = "https://token.actions.githubusercontent.com"
	shippedRekor   = "https://rekor.sigstore.dev"
	repository     = "bitvault/bitvault" // buildDefinition.externalParameters.repository
	// release/attest.BuildType
	buildType = "https://github.com/bitvault/bitvault/release/buildtypes/bvrelease/v1"
)

// releaseTrust is who signs the release images in these tests and how a policy names them.
type releaseTrust struct {
	Signer sign.Signer
	Roots  []byte // PEM CA roots: the policy's keyless roots
	Issuer string // the certificates' OIDC issuer
	// Subject is the keyless subject (Kyverno wildcards allowed) that admits Signer;
	// OtherRef names the same workflow at another ref (refs/tags/v9.*), which must not.
	Subject, OtherRef string
	// BuilderID is runDetails.builder.id of the provenance this signer's release writes, and
	// BuilderPattern the condition value that admits it.
	BuilderID, BuilderPattern string
	// RekorURL and RekorKey (PEM) are the transparency log the signatures are in: the policy
	// checks each signature's Rekor bundle against RekorKey, offline.
	RekorURL string
	RekorKey []byte
}

// newReleaseTrust is the one place that says who signs: the release workflow on tag v1.2.3,
// keyless — the GitHub Actions token, Fulcio and Rekor of sigstoretest (a CA from
// sigstore-go's pkg/testing/ca issuing GitHub-shaped certificates) — so the policy's
// subject is the shipped one and its transparency-log check is real.
func newReleaseTrust(t *testing.T) releaseTrust {
	t.Helper()
	w := sigstoretest.Workflow{Repository: repository, Ref: "refs/tags/v1.2.3", SHA: strings.Repeat("ab", 20),
		WorkflowPath: ".github/workflows/release.yml", EventName: "push", RunID: "1"}
	ss := sigstoretest.New(t, w)
	ss.Env(t)
	s, err := keyless.FromEnv(context.Background(), keyless.Config{FulcioURL: ss.FulcioURL, RekorURL: ss.RekorURL, TrustedRoot: ss.TrustedRoot(), IgnoreSCT: true})
	if err != nil {
		t.Fatal(err)
	}
	return releaseTrust{
		Signer: s, Roots: ss.RootPEM(), Issuer: sigstoretest.GitHubIssuer,
		Subject: shippedSubject, OtherRef: atRef(w.Identity(), "refs/tags/v9.*"),
		// release/attest.BuilderID() in GitHub Actions: the workflow identity
		BuilderID: w.Identity(), BuilderPattern: "https://github.com/" + repository + "/.github/workflows/release.yml@refs/tags/v*",
		RekorURL: ss.RekorURL, RekorKey: ss.RekorPublicKeyPEM(),
	}
}

// atRef is identity at another git ref: the part after the last "@" replaced (a workflow
// identity …/release.yml@refs/tags/v1.2.3), or "@ref" appended (the dry-run identity).
func atRef(identity, ref string) string {
	if i := strings.LastIndex(identity, "@"); i > 0 && strings.HasPrefix(identity[i+1:], "refs/") {
		return identity[:i+1] + ref
	}
	return identity + "@" + ref
}

// kyvernoBinary returns the pinned Kyverno CLI, or skips (fails with BITVAULT_REQUIRE_TOOLS=1).
func kyvernoBinary(t *testing.T) string {
	t.Helper()
	bin, err := scan.FindKyverno()
	if err == nil {
		return bin
	}
	if os.Getenv("BITVAULT_REQUIRE_TOOLS") == "1" {
		t.Fatal("BITVAULT_REQUIRE_TOOLS=1 but " + err.Error())
	}
	t.Skip("skipping: " + err.Error())
	return ""
}

func loadPolicy(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(policyFile)
	if err != nil {
		t.Fatal(err)
	}
	var p map[string]any
	if err := yaml.Unmarshal(b, &p); err != nil {
		t.Fatalf("%s: %v", policyFile, err)
	}
	return p
}

// at walks a decoded YAML document: string keys index maps, ints index lists.
func at(t *testing.T, v any, path ...any) any {
	t.Helper()
	for i, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("%s: %v: not a map", policyFile, path[:i+1])
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("%s: %v: not a list with %d items", policyFile, path[:i+1], k+1)
			}
			v = l[k]
		}
	}
	return v
}

// keylessEntries are every keyless attestor of the first verifyImages entry, image and
// attestation attestors alike.
func keylessEntries(t *testing.T, vi any) []map[string]any {
	t.Helper()
	var sets []any
	sets = append(sets, at(t, vi, "attestors").([]any)...)
	for _, a := range at(t, vi, "attestations").([]any) {
		l, _ := at(t, a, "attestors").([]any)
		if len(l) == 0 {
			t.Fatalf("%s: an attestations entry without attestors", policyFile)
		}
		sets = append(sets, l...)
	}
	var out []map[string]any
	for _, s := range sets {
		for _, e := range at(t, s, "entries").([]any) {
			k, ok := at(t, e, "keyless").(map[string]any)
			if !ok {
				t.Fatalf("%s: attestor entry %v is not keyless", policyFile, e)
			}
			out = append(out, k)
		}
	}
	return out
}

// provenanceConditions are the condition lists of the slsa.dev/provenance/v1 attestation.
func provenanceConditions(t *testing.T, vi any) []any {
	t.Helper()
	for _, a := range at(t, vi, "attestations").([]any) {
		if at(t, a, "type") == attestation.SLSAProvenanceV1 {
			return at(t, a, "conditions", 0, "all").([]any)
		}
	}
	t.Fatalf("%s: no %s attestation", policyFile, attestation.SLSAProvenanceV1)
	return nil
}

// TestPolicyShape pins what the cluster policy requires, the parts testPolicy replaces
// included: ghcr.io/bitvault/* images, keyless by the release workflow on v* tags through
// GitHub's issuer with Sigstore's public Rekor (the SCT checked: no ctlog override), digests
// pinned and verified, required; a SLSA provenance v1 with its own attestors and conditions on
// the builder id and the source repository.
func TestPolicyShape(t *testing.T) {
	p := loadPolicy(t)
	if p["apiVersion"] != "kyverno.io/v1" || p["kind"] != "ClusterPolicy" {
		t.Fatalf("%s: %v %v, want a kyverno.io/v1 ClusterPolicy", policyFile, p["apiVersion"], p["kind"])
	}
	vi := at(t, p, "spec", "rules", 0, "verifyImages", 0)
	for _, c := range []struct {
		path []any
		want any
	}{
		{[]any{"type"}, "Cosign"},
		{[]any{"imageReferences", 0}, shippedImages},
		{[]any{"mutateDigest"}, true},
		{[]any{"verifyDigest"}, true},
		{[]any{"required"}, true},
		{[]any{"failureAction"}, "Enforce"},
	} {
		if got := at(t, vi, c.path...); got != c.want {
			t.Errorf("%s: verifyImages[0].%v = %v, want %v", policyFile, c.path, got, c.want)
		}
	}
	entries := keylessEntries(t, vi)
	if len(entries) < 2 {
		t.Fatalf("%s: %d keyless attestors, want the image's and the provenance's", policyFile, len(entries))
	}
	for _, k := range entries {
		if k["subject"] != shippedSubject || k["issuer"] != shippedIssuer || k["roots"] != nil || k["ctlog"] != nil {
			t.Errorf("%s: keyless attestor %v: want subject %s, issuer %s, Sigstore's roots and CT log", policyFile, k, shippedSubject, shippedIssuer)
		}
		if at(t, k, "rekor", "url") != shippedRekor || at(t, k, "rekor", "ignoreTlog") != nil {
			t.Errorf("%s: keyless attestor rekor %v, want url %s, log checked", policyFile, k["rekor"], shippedRekor)
		}
	}
	conds := provenanceConditions(t, vi)
	want := map[string]string{
		"{{ runDetails.builder.id }}":                         shippedSubject,
		"{{ buildDefinition.externalParameters.repository }}": repository,
	}
	for _, c := range conds {
		k, _ := at(t, c, "key").(string)
		if w, ok := want[k]; ok && at(t, c, "operator") == "Equals" && at(t, c, "value") == w {
			delete(want, k)
		}
	}
	if len(want) > 0 {
		t.Errorf("%s: provenance conditions %v lack %v", policyFile, conds, want)
	}
}

// policyOpts are what testPolicy puts in place of the shipped policy's cluster specifics.
type policyOpts struct {
	images         string // imageReferences pattern
	subject        string
	issuer         string
	roots          []byte
	builderPattern string
	rekorURL       string
	rekorKey       []byte // empty: the log is not checked
}

// testPolicy is verify-images.yaml for the test registry: the image pattern, the keyless
// subject, issuer and roots (+ rekor ignoreTlog and ctlog ignoreSCT: no Sigstore services
// offline, and none is contacted) and the builder id condition replaced; everything else as shipped.
func testPolicy(t *testing.T, dir string, o policyOpts) string {
	t.Helper()
	p := loadPolicy(t)
	vi := at(t, p, "spec", "rules", 0, "verifyImages", 0).(map[string]any)
	vi["imageReferences"] = []any{o.images}
	for _, k := range keylessEntries(t, vi) {
		k["subject"], k["issuer"], k["roots"] = o.subject, o.issuer, string(o.roots)
		if len(o.rekorKey) > 0 {
			k["rekor"] = map[string]any{"url": o.rekorURL, "pubkey": string(o.rekorKey)}
		} else {
			// Kyverno 1.19 refuses a rekor without url ("An URL is required"), even ignoring the log.
			k["rekor"] = map[string]any{"url": shippedRekor, "ignoreTlog": true}
		}
		k["ctlog"] = map[string]any{"ignoreSCT": true}
	}
	replaced := false
	for _, c := range provenanceConditions(t, vi) {
		if m := c.(map[string]any); m["key"] == "{{ runDetails.builder.id }}" {
			m["value"], replaced = o.builderPattern, true
		}
	}
	if !replaced {
		t.Fatalf("%s: no runDetails.builder.id condition", policyFile)
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

const deploymentYAML = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: bitvaultd
  namespace: bitvault
spec:
  replicas: 1
  selector:
    matchLabels: {app: bitvaultd}
  template:
    metadata:
      labels: {app: bitvaultd}
    spec:
      containers:
        - name: bitvaultd
          image: %s
`

// report is what `kyverno apply --policy-report` prints on stdout: one result per rule and
// resource, and their counts.
type report struct {
	Results []struct {
		Message string `yaml:"message"`
		Policy  string `yaml:"policy"`
		Rule    string `yaml:"rule"`
		Result  string `yaml:"result"`
	} `yaml:"results"`
	Summary struct {
		Pass  int `yaml:"pass"`
		Fail  int `yaml:"fail"`
		Warn  int `yaml:"warn"`
		Error int `yaml:"error"`
		Skip  int `yaml:"skip"`
	} `yaml:"summary"`
}

// runKyverno runs the Kyverno CLI offline (no cluster; HOME, DOCKER_CONFIG and TUF_ROOT fresh
// temp dirs) and returns its exit status, stdout and stderr.
func runKyverno(t *testing.T, bin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(dir, "home"),
		"DOCKER_CONFIG=" + filepath.Join(dir, "docker"),
		"TUF_ROOT=" + filepath.Join(dir, "tuf"),
		"TMPDIR=" + dir,
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("kyverno %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("kyverno %s: timed out\n%s%s", strings.Join(args, " "), errOut.String(), out.String())
	}
	return code, out.String(), errOut.String()
}

// deployment writes a Deployment of image into a temp dir and returns its path. (kyverno
// splits --resource on commas: t.TempDir paths have none, subtest names must not either.)
func deployment(t *testing.T, image string) string {
	t.Helper()
	res := filepath.Join(t.TempDir(), "deployment.yaml")
	if err := os.WriteFile(res, fmt.Appendf(nil, deploymentYAML, image), 0o644); err != nil {
		t.Fatal(err)
	}
	return res
}

// kyvernoApply runs `kyverno apply POLICY --resource DEPLOYMENT --registry --policy-report` on
// a Deployment of image and returns its exit status, its report and its whole output.
func kyvernoApply(t *testing.T, bin, policy, image string) (int, report, string) {
	t.Helper()
	args := []string{"apply", policy, "--resource", deployment(t, image), "--registry", "--policy-report"}
	code, stdout, stderr := runKyverno(t, bin, args...)
	all := stderr + stdout
	// the report follows kyverno's warnings (ClusterPolicy deprecated) on stdout
	if i := strings.Index(stdout, "apiVersion: "); i >= 0 {
		stdout = stdout[i:]
	}
	var r report
	if err := yaml.Unmarshal([]byte(stdout), &r); err != nil || len(r.Results) == 0 {
		t.Fatalf("kyverno %s: exit %d, no policy report with results (%v):\n%s", strings.Join(args, " "), code, err, all)
	}
	return code, r, all
}

// TestShippedPolicyLoads gives Kyverno the policy exactly as shipped, with a Deployment of an
// image it does not cover (so nothing is fetched): Kyverno must accept the policy (it skips
// an invalid one and counts an error: a keyless rekor without url was one) and generate the
// Deployment, StatefulSet… and CronJob rules from the Pod rule.
func TestShippedPolicyLoads(t *testing.T) {
	bin := kyvernoBinary(t)
	img := "registry.example/other/app@sha256:" + strings.Repeat("0", 64)
	code, stdout, stderr := runKyverno(t, bin, "apply", policyFile, "--resource", deployment(t, img))
	out := stderr + stdout
	if code != 0 || strings.Contains(out, "Policies Skipped") || !strings.Contains(out, "pass: 0, fail: 0, warn: 0, error: 0") {
		t.Fatalf("kyverno apply %s: exit %d; want the policy loaded, nothing failed:\n%s", policyFile, code, out)
	}
	if !strings.Contains(out, "Applying 3 policy rule(s) to 1 resource(s)") {
		t.Fatalf("kyverno apply %s: want the Pod rule and its two generated rules applied:\n%s", policyFile, out)
	}
}

func pushImage(t *testing.T, repo name.Repository) name.Digest {
	t.Helper()
	return registrytest.Push(t, repo, 2).Index
}

func digestOf(t *testing.T, ref name.Digest) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(ref.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// release signs ref and, with builderID and repo, attaches its SLSA provenance the way
// bvrelease's sign and attest stages do (release/attest.Provenance's fields).
func release(t *testing.T, ref name.Digest, tr releaseTrust, attest bool, builderID, repo string) {
	t.Helper()
	ctx := context.Background()
	if err := sign.SignImage(ctx, ref, tr.Signer); err != nil {
		t.Fatal(err)
	}
	if !attest {
		return
	}
	start := time.Now().UTC().Truncate(time.Second)
	pred := attestation.Provenance{
		BuildType: buildType,
		ExternalParameters: map[string]any{
			"repository": repo, "ref": "refs/tags/v1.2.3", "workflow": "bitvault/bitvault/.github/workflows/release.yml@refs/tags/v1.2.3",
			"artifact": "bitvaultd", "target": "bitvaultd", "dockerfile": "Dockerfile", "platforms": []string{"linux/amd64", "linux/arm64"}, "version": "v1.2.3",
		},
		InternalParameters: map[string]any{"SOURCE_DATE_EPOCH": 1700000000, "dryRun": false},
		ResolvedDependencies: []attestation.Resource{{
			URI: "git+https://github.com/" + repo + "@" + strings.Repeat("a", 40), Digest: map[string]string{"gitCommit": strings.Repeat("a", 40)}, Name: "source",
		}},
		BuilderID:    builderID,
		InvocationID: "https://github.com/bitvault/bitvault/actions/runs/1/attempts/1",
		StartedOn:    start,
		FinishedOn:   start.Add(time.Minute),
	}.Predicate()
	st, err := attestation.Statement(ref.Context().String(), digestOf(t, ref), attestation.SLSAProvenanceV1, pred)
	if err != nil {
		t.Fatal(err)
	}
	if err := attestation.Attach(ctx, ref, st, tr.Signer); err != nil {
		t.Fatal(err)
	}
}

// TestKyvernoAdmission runs the real Kyverno CLI (scan.KyvernoVersion) on verify-images.yaml,
// made to trust the test signer (testPolicy), against a Deployment of an image in an in-process
// registry (plain http on 127.0.0.1), and judges each case by kyverno's exit status and its
// pass/fail counts (its --policy-report). Admitted: an image signed and attested as a release,
// by digest and by tag, both verified as the released digest (what mutateDigest pins the tag
// to; the CLI does not print the Deployment verifyImages patched). Refused: an unsigned image; a policy
// expecting another subject; a policy for another ref of the workflow; a signed image without
// provenance; a provenance from another repository; a provenance from another builder; the
// release's repository with the digest of another (unsigned) image, also behind the release's
// tag.
func TestKyvernoAdmission(t *testing.T) {
	bin := kyvernoBinary(t)
	tr := newReleaseTrust(t)
	host := registrytest.Start(t)
	repo, err := name.NewRepository(host + "/bitvault/bitvaultd")
	if err != nil {
		t.Fatal(err)
	}

	released := pushImage(t, repo)
	release(t, released, tr, true, tr.BuilderID, repository)
	tag := repo.Tag("v1.2.3")
	desc, err := remote.Get(released)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(tag, desc); err != nil { // the release tag → the released index
		t.Fatal(err)
	}
	unsigned := pushImage(t, repo)
	notAttested := pushImage(t, repo)
	release(t, notAttested, tr, false, "", "")
	otherRepo := pushImage(t, repo)
	release(t, otherRepo, tr, true, tr.BuilderID, "evil/bitvault")
	otherBuilder := pushImage(t, repo)
	release(t, otherBuilder, tr, true, "https://github.com/evil/bitvault/.github/workflows/release.yml@refs/tags/v1.2.3", repository)

	otherLogKey := sigstoretest.New(t, sigstoretest.Workflow{}).RekorPublicKeyPEM()
	trusted := policyOpts{images: host + "/bitvault/*", subject: tr.Subject, issuer: tr.Issuer, roots: tr.Roots, builderPattern: tr.BuilderPattern, rekorURL: tr.RekorURL, rekorKey: tr.RekorKey}
	with := func(edit func(o *policyOpts)) policyOpts { o := trusted; edit(&o); return o }
	for _, tc := range []struct {
		name   string
		policy policyOpts
		image  string
		admit  bool
		// admitted: the image (by digest) whose attestations Kyverno verified; refused: in its output
		want string
	}{
		{"released by digest", trusted, released.String(), true, released.String()},
		{"released by tag", trusted, tag.String(), true, released.String()},
		{"unsigned", trusted, unsigned.String(), false, "no signatures found"},
		{"wrong identity", with(func(o *policyOpts) {
			o.subject = "https://github.com/evil/bitvault/.github/workflows/release.yml@refs/tags/v*"
		}), released.String(), false, "subject mismatch"},
		{"wrong ref", with(func(o *policyOpts) { o.subject = tr.OtherRef }), released.String(), false, "subject mismatch"},
		{"transparency log not trusted", with(func(o *policyOpts) { o.rekorKey = otherLogKey }), released.String(), false, "no matching signatures"},
		{"signed without provenance", trusted, notAttested.String(), false, "image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: no matching attestations"},
		{"provenance from another repository", trusted, otherRepo.String(), false, "attestation checks failed for " + otherRepo.String()},
		{"provenance from another builder", trusted, otherBuilder.String(), false, "attestation checks failed for " + otherBuilder.String()},
		{"digest swapped", trusted, repo.Digest(unsigned.DigestStr()).String(), false, "no signatures found"},
		{"digest swapped behind the release tag", trusted, tag.String() + "@" + unsigned.DigestStr(), false, "no signatures found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			policy := testPolicy(t, t.TempDir(), tc.policy)
			code, r, out := kyvernoApply(t, bin, policy, tc.image)
			n := r.Summary
			t.Logf("kyverno apply %s: exit %d, %+v", tc.image, code, n)
			var msgs []string // the report's messages, unwrapped
			for _, res := range r.Results {
				if res.Policy != "bitvault-verify-images" || res.Rule != "autogen-verify-bitvault-release" {
					t.Errorf("result of %s/%s, want the Deployment rule Kyverno generates from the Pod rule", res.Policy, res.Rule)
				}
				msgs = append(msgs, res.Result+": "+res.Message)
			}
			messages := strings.Join(msgs, "\n") + "\n"
			t.Logf("kyverno:\n%s", messages)
			if tc.admit {
				if code != 0 || n.Pass < 1 || n.Fail != 0 || n.Error != 0 {
					t.Fatalf("kyverno apply: exit %d, %+v; want exit 0, pass >= 1, no fail or error:\n%s", code, n, out)
				}
				if !strings.Contains(messages, "pass: verified image attestations for "+tc.want+"\n") {
					t.Fatalf("kyverno admitted, but not having verified the attestations of %s:\n%s", tc.want, out)
				}
				return
			}
			if code != 1 || n.Fail < 1 || n.Pass != 0 || n.Error != 0 {
				t.Fatalf("kyverno apply: exit %d, %+v; want exit 1, fail >= 1, pass 0, no error:\n%s", code, n, out)
			}
			if !strings.Contains(messages, "fail: ") || !strings.Contains(messages, tc.want) {
				t.Fatalf("kyverno apply refused, but its output lacks %q:\n%s", tc.want, out)
			}
		})
	}
}
