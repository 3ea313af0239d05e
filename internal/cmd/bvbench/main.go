// Command bvbench measures the release build on this machine and prints a
// table and JSON: a cold build of all images × platforms (empty BuildKit
// state), a resumed run with no change, a forced BuildKit rebuild with no
// change (warm cache), rebuilds after a one-line Go change and after a
// one-line web change, the compressed image sizes, the bare `go build` of
// bitvaultd for both platforms as the baseline for the Go rebuild, and the
// same bitvaultd image built by ko (tools/ko) in the same run.
//
// It works on a scratch copy of the committed tree (git archive HEAD), so the
// repository is never modified. Run it with `go run ./internal/cmd/bvbench`
// (or `go tool mage bench`); it needs what the dry-run needs (root, runc,
// buildkitd from tools/).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sirupsen/logrus"

	attestscan "github.com/bitvault/bitvault/attest/scan"
	"github.com/bitvault/bitvault/builder"
	"github.com/bitvault/bitvault/builder/buildkitd"
	"github.com/bitvault/bitvault/internal/testsupport/sigstoretest"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/pipeline"
	"github.com/bitvault/bitvault/release/publish"
)

type measurement struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Note    string  `json:"note,omitempty"`
}

type size struct {
	Artifact string `json:"artifact"`
	Platform string `json:"platform"`
	Bytes    int64  `json:"bytes"`
}

type report struct {
	Measurements []measurement      `json:"measurements"`
	Sizes        []size             `json:"sizes"`
	Ratios       map[string]float64 `json:"ratios"`
	Targets      map[string]string  `json:"targets"`
}

func main() {
	logrus.SetLevel(logrus.ErrorLevel) // containerd's fs-verity warnings
	jsonOut := flag.String("json", "", "also write the report as JSON to this file")
	keep := flag.Bool("keep", false, "keep the scratch copy")
	flag.Parse()
	if err := run(context.Background(), *jsonOut, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "bvbench:", err)
		os.Exit(1)
	}
}

func sh(dir string, env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func run(ctx context.Context, jsonOut string, keep bool) error {
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bvbench-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(work)
	}
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "bvbench: "+f+"\n", a...) }
	logf("scratch copy of HEAD in %s", work)
	if err := sh(repo, nil, "sh", "-c", "git archive HEAD | tar -x -C "+work); err != nil {
		return err
	}
	gitEnv := []string{"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@localhost", "GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@localhost"}
	if err := sh(work, gitEnv, "sh", "-c", "git init -q && git add -A && git commit -qm bench && echo bench > BENCH-UNTRACKED"); err != nil {
		return err
	}
	// The untracked file keeps the tree dirty from the start, so the version
	// (and with it the VERSION build argument) is the same for every build below.
	cfg, err := config.Load(filepath.Join(work, config.FileName))
	if err != nil {
		return err
	}
	state := filepath.Join(work, ".buildkit-state")
	d, err := buildkitd.Connect(ctx, buildkitd.Options{StateDir: state, Log: os.Stderr})
	if err != nil {
		return err
	}
	defer d.Close()

	rep := report{Ratios: map[string]float64{}, Targets: map[string]string{}}
	build := func(label, note string, only ...string) (*release.Release, error) {
		r := release.New(cfg, filepath.Join(work, "dist"), release.Options{BasesMode: config.BasesStandin, Progress: "quiet", Log: io.Discard, Only: only})
		r.Daemon = d
		start := time.Now()
		err := pipeline.Run(ctx, r, pipeline.Build()...)
		secs := time.Since(start).Seconds()
		r.Daemon = nil
		r.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		for _, s := range r.Record.Stages {
			if s.Name == "bases" {
				note = strings.TrimSpace(fmt.Sprintf("%s (bases stage %.1fs)", note, s.Seconds))
			}
		}
		rep.Measurements = append(rep.Measurements, measurement{label, secs, note})
		logf("%-40s %6.1fs %s", label, secs, note)
		return r, nil
	}
	forget := func() { os.Remove(filepath.Join(work, "dist", "release.json")) }

	r, err := build("cold build, all images × 2 platforms", "empty BuildKit state")
	if err != nil {
		return err
	}
	for _, a := range r.Record.Artifacts {
		for _, m := range a.Manifests {
			rep.Sizes = append(rep.Sizes, size{a.Name, m.Platform, m.ImageSize})
		}
	}
	if err := chain(ctx, cfg, work, d, &rep, logf); err != nil {
		logf("attestation chain: %v", err)
		rep.Measurements = append(rep.Measurements, measurement{"attestation chain", 0, "not measured: " + firstLine(err.Error())})
	}
	if _, err := build("no change, resumed", "inputs unchanged: build skipped"); err != nil {
		return err
	}
	forget()
	if _, err := build("no change, BuildKit rebuild (warm)", "record removed, BuildKit cache warm"); err != nil {
		return err
	}

	// One-line Go change: bitvaultd only, versus bare go build of both platforms.
	mainGo := filepath.Join(work, "service", "cmd", "bitvaultd", "main.go")
	goCacheEnv := []string{"CGO_ENABLED=0"}
	bare := func() (float64, error) {
		start := time.Now()
		for _, arch := range []string{"amd64", "arm64"} {
			if err := sh(filepath.Join(work, "service"), append(goCacheEnv, "GOOS=linux", "GOARCH="+arch), "go", "build", "-trimpath", "-ldflags=-s -w -buildid=", "-o", filepath.Join(work, "bare-"+arch), "./cmd/bitvaultd"); err != nil {
				return 0, err
			}
		}
		return time.Since(start).Seconds(), nil
	}
	if _, err := bare(); err != nil { // warm the host's build cache
		return err
	}
	// Median of three edits each, so one noisy run does not decide the ratio.
	const rounds = 3
	var image, plain []float64
	for i := range rounds {
		if err := appendLine(mainGo, fmt.Sprintf("\nvar benchEditImage%d = %d\n", i, i)); err != nil {
			return err
		}
		start := time.Now()
		if _, err := build(fmt.Sprintf("one-line Go change, bitvaultd #%d", i+1), "", "bitvaultd"); err != nil {
			return err
		}
		image = append(image, time.Since(start).Seconds())
		if err := appendLine(mainGo, fmt.Sprintf("var benchEditBare%d = %d\n", i, i)); err != nil {
			return err
		}
		secs, err := bare()
		if err != nil {
			return err
		}
		plain = append(plain, secs)
	}
	rep.Measurements = rep.Measurements[:len(rep.Measurements)-rounds]
	rep.Measurements = append(rep.Measurements,
		measurement{"one-line Go change, bitvaultd", median(image), fmt.Sprintf("median of %d: %v", rounds, rounded(image))},
		measurement{"bare go build bitvaultd, 2 platforms", median(plain), fmt.Sprintf("host, warm cache, after a one-line change; median of %d: %v", rounds, rounded(plain))})
	logf("%-40s %6.1fs", "bare go build bitvaultd, 2 platforms", median(plain))
	if err := appendLine(mainGo, "var benchEdit3 = \"three\"\n"); err != nil {
		return err
	}
	if _, err := build("one-line Go change, all images", ""); err != nil {
		return err
	}
	page := filepath.Join(work, "service", "web", "app", "page.js")
	if err := appendLine(page, "\n// bench edit\n"); err != nil {
		return err
	}
	if _, err := build("one-line web change, all images", ""); err != nil {
		return err
	}

	// ko, same binary, same base (the distroless stand-in served by an embedded registry).
	if err := kobench(ctx, work, &rep, logf); err != nil {
		logf("ko: %v", err)
		rep.Measurements = append(rep.Measurements, measurement{"ko build bitvaultd, 2 platforms", 0, "not measured: " + firstLine(err.Error())})
	}

	m := map[string]float64{}
	for _, x := range rep.Measurements {
		m[x.Name] = x.Seconds
	}
	if b := m["bare go build bitvaultd, 2 platforms"]; b > 0 {
		rep.Ratios["go-change rebuild / bare go build"] = m["one-line Go change, bitvaultd"] / b
	}
	if k := m["ko build bitvaultd, 2 platforms"]; k > 0 {
		rep.Ratios["go-change rebuild / ko build"] = m["one-line Go change, bitvaultd"] / k
	}
	rep.Targets["warm no-change rebuild"] = fmt.Sprintf("< 10s: resumed %.1fs, BuildKit %.1fs", m["no change, resumed"], m["no change, BuildKit rebuild (warm)"])
	rep.Targets["go change vs bare go build"] = fmt.Sprintf("< 2x: %.2fx", rep.Ratios["go-change rebuild / bare go build"])
	print(os.Stdout, rep)
	if jsonOut != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		return os.WriteFile(jsonOut, append(data, '\n'), 0o644)
	}
	return nil
}

// chain runs the stages after the build — check, sbom, scan (an offline DB
// built from one OSV record), publish to an embedded registry, sign, attest,
// verify, record — on the cold build's images, as CI does: keyless, with the
// token service, Fulcio and Rekor of sigstoretest on 127.0.0.1 (so Rekor
// uploads and transparency-log checks are in the figures, network waits are
// not). It reports each stage, its time per image × platform, and the sum
// against the build.
func chain(ctx context.Context, cfg *config.Config, work string, d *buildkitd.Daemon, rep *report, logf func(string, ...any)) error {
	osv, db := filepath.Join(work, "osv"), filepath.Join(work, "vulndb")
	if err := os.MkdirAll(osv, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(osv, "GO-2022-1059.json"), []byte(osvRecord), 0o644); err != nil {
		return err
	}
	if err := attestscan.BuildDB(ctx, osv, db); err != nil {
		return err
	}
	trusted, stop, err := ciSigstore(work)
	if err != nil {
		return err
	}
	defer stop()
	r := release.New(cfg, filepath.Join(work, "dist"), release.Options{DryRun: true, VulnDB: db, BasesMode: config.BasesStandin, Progress: "quiet", Log: io.Discard,
		Keyless: true, FulcioURL: trusted.FulcioURL, RekorURL: trusted.RekorURL, TrustedRoot: trusted.path})
	r.Daemon = d
	defer func() { r.Daemon = nil; r.Close() }()
	stages := pipeline.Release()
	if err := pipeline.Run(ctx, r, stages[0]); err != nil { // plan
		return err
	}
	var build, total float64
	manifests := 0
	for _, s := range r.Record.Artifacts {
		build += s.BuildSeconds
		manifests += len(s.Manifests)
	}
	for _, st := range stages[3:] { // check, sbom, scan, publish, sign, attest, dist, verify, record, promote
		start := time.Now()
		if err := pipeline.Run(ctx, r, st); err != nil {
			return err
		}
		secs := time.Since(start).Seconds()
		label := "stage " + st.Name() + ", all images × 2 platforms"
		switch st.Name() {
		case "dist", "policy", "promote", "record": // not the image attestation chain: reported on their own
			label = "stage " + st.Name()
		default:
			total += secs
		}
		note := ""
		if manifests > 0 && strings.Contains(label, "×") {
			note = fmt.Sprintf("%.2fs per image × platform", secs/float64(manifests))
		}
		rep.Measurements = append(rep.Measurements, measurement{label, secs, note})
		logf("%-40s %6.1fs %s", label, secs, note)
	}
	rep.Measurements = append(rep.Measurements, measurement{"check→verify chain (keyless), all images", total, fmt.Sprintf("after a cold build whose image solves took %.1fs", build)})
	rep.Targets["attestation chain, 3 images × 2 platforms"] = fmt.Sprintf("%.1fs (target < 60 s and < the build)", total)
	if build > 0 {
		rep.Ratios["check→verify chain / cold image builds"] = total / build
	}
	return nil
}

type sigstore struct {
	FulcioURL, RekorURL, path string
}

// ciSigstore starts sigstoretest's services and sets the environment of a GitHub Actions
// release job (on the version tag bvrelease.yaml's signing identity expects).
func ciSigstore(work string) (sigstore, func(), error) {
	w := sigstoretest.Workflow{Repository: "bitvault/bitvault", Ref: "refs/tags/v0.0.0", SHA: strings.Repeat("0", 40),
		WorkflowPath: ".github/workflows/release.yml", EventName: "push", RunID: "1"}
	ss, err := sigstoretest.Start(w)
	if err != nil {
		return sigstore{}, nil, err
	}
	for k, v := range map[string]string{
		"ACTIONS_ID_TOKEN_REQUEST_URL": ss.TokenRequestURL, "ACTIONS_ID_TOKEN_REQUEST_TOKEN": ss.RequestToken,
		"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": w.Repository, "GITHUB_REF": w.Ref,
		"GITHUB_WORKFLOW_REF": w.Repository + "/" + w.WorkflowPath + "@" + w.Ref, "GITHUB_RUN_ID": w.RunID,
	} {
		os.Setenv(k, v)
	}
	p := filepath.Join(work, "trusted_root.json")
	if err := os.WriteFile(p, ss.TrustedRoot(), 0o644); err != nil {
		ss.Close()
		return sigstore{}, nil, err
	}
	return sigstore{ss.FulcioURL, ss.RekorURL, p}, ss.Close, nil
}

// osvRecord is GO-2022-1059 (golang.org/x/text < 0.3.8): a real record, so
// the scan runs against a real (small) DB.
const osvRecord = `{"schema_version":"1.3.1","id":"GO-2022-1059","modified":"2023-06-12T18:45:41Z","published":"2022-10-11T17:17:42Z",
"aliases":["CVE-2022-32149"],"summary":"Denial of service via crafted Accept-Language header in golang.org/x/text/language",
"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}],
"affected":[{"package":{"name":"golang.org/x/text","ecosystem":"Go"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"0.3.8"}]}]}],
"database_specific":{"url":"https://pkg.go.dev/vuln/GO-2022-1059"}}`

func kobench(ctx context.Context, work string, rep *report, logf func(string, ...any)) error {
	ko, err := findTool("ko")
	if err != nil {
		return err
	}
	host, stop, err := publish.StartEmbeddedRegistry()
	if err != nil {
		return err
	}
	defer stop()
	lp, err := builder.OpenLayout(filepath.Join(work, "dist", "bases"))
	if err != nil {
		return err
	}
	root, err := lp.ImageIndex()
	if err != nil {
		return err
	}
	im, err := root.IndexManifest()
	if err != nil {
		return err
	}
	var base string
	for _, desc := range im.Manifests {
		if desc.Annotations["dev.bitvault.bases.kind"] != "distroless-static" {
			continue
		}
		idx, err := root.ImageIndex(desc.Digest)
		if err != nil {
			return err
		}
		ref, _ := name.ParseReference(host + "/base/static@" + desc.Digest.String())
		if err := remote.WriteIndex(ref, idx); err != nil {
			return err
		}
		base = ref.String()
	}
	if base == "" {
		return fmt.Errorf("no distroless-static stand-in in dist/bases")
	}
	env := []string{"KO_DOCKER_REPO=" + host + "/ko", "KO_DEFAULTBASEIMAGE=" + base, "CGO_ENABLED=0"}
	start := time.Now()
	if err := sh(filepath.Join(work, "service"), env, ko, "build", "--bare", "--platform=linux/amd64,linux/arm64", "./cmd/bitvaultd"); err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	rep.Measurements = append(rep.Measurements, measurement{"ko build bitvaultd, 2 platforms", secs, "host go cache warm"})
	logf("%-40s %6.1fs", "ko build bitvaultd, 2 platforms", secs)
	return nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func rounded(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = math.Round(x*100) / 100
	}
	return out
}

func findTool(tool string) (string, error) {
	dir := os.Getenv("BITVAULT_TOOLS_DIR")
	if dir == "" {
		c, _ := os.UserCacheDir()
		dir = filepath.Join(c, "bitvault", "tools")
	}
	matches, _ := filepath.Glob(filepath.Join(dir, tool+"-*", tool))
	if len(matches) == 0 {
		return "", fmt.Errorf("%s not built: run 'scripts/tools.sh %s'", tool, tool)
	}
	return matches[len(matches)-1], nil
}

func appendLine(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(text)
	return err
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func print(w io.Writer, rep report) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASUREMENT\tSECONDS\tNOTE")
	for _, m := range rep.Measurements {
		fmt.Fprintf(tw, "%s\t%.1f\t%s\n", m.Name, m.Seconds, m.Note)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "IMAGE\tPLATFORM\tCOMPRESSED")
	for _, s := range rep.Sizes {
		fmt.Fprintf(tw, "%s\t%s\t%.1f MB\n", s.Artifact, s.Platform, float64(s.Bytes)/1e6)
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "RATIO\tVALUE")
	for k, v := range rep.Ratios {
		fmt.Fprintf(tw, "%s\t%.2f\n", k, v)
	}
	for k, v := range rep.Targets {
		fmt.Fprintf(tw, "target: %s\t%s\n", k, v)
	}
	tw.Flush()
}
