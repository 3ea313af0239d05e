package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/bitvault/bitvault/service/internal/platform/processtest"
)

func TestRun(t *testing.T) {
	plat := runtime.GOOS + "/" + runtime.GOARCH
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stdout     string // substring
		stderr     string // substring
		wantNoOut  bool
		jsonStdout bool
	}{
		{name: "no arguments", args: nil, code: exitUsage, stderr: "Usage:", wantNoOut: true},
		{name: "help", args: []string{"help"}, code: exitOK, stdout: "Commands:"},
		{name: "--help", args: []string{"--help"}, code: exitOK, stdout: "version"},
		{name: "help version", args: []string{"help", "version"}, code: exitOK, stderr: "--output"},
		{name: "version", args: []string{"version"}, code: exitOK, stdout: "bitvault dev (" + runtime.Version() + ", " + plat + ")\n"},
		{name: "version --output text", args: []string{"version", "--output", "text"}, code: exitOK, stdout: "bitvault dev ("},
		{name: "version --output json", args: []string{"version", "--output", "json"}, code: exitOK, jsonStdout: true},
		{name: "version --output=json", args: []string{"version", "--output=json"}, code: exitOK, jsonStdout: true},
		{name: "version -o json", args: []string{"version", "-o", "json"}, code: exitOK, jsonStdout: true},
		{name: "version --output yaml", args: []string{"version", "--output", "yaml"}, code: exitUsage, stderr: `--output "yaml": use text or json`, wantNoOut: true},
		{name: "version extra argument", args: []string{"version", "now"}, code: exitUsage, stderr: `unexpected argument "now"`, wantNoOut: true},
		{name: "version unknown flag", args: []string{"version", "--short"}, code: exitUsage, stderr: "flag provided but not defined", wantNoOut: true},
		{name: "unknown command", args: []string{"frobnicate"}, code: exitUsage, stderr: `unknown command "frobnicate"`, wantNoOut: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(tc.args, &out, &errOut)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tc.stdout) {
				t.Errorf("stdout %q, want it to contain %q", out.String(), tc.stdout)
			}
			if !strings.Contains(errOut.String(), tc.stderr) {
				t.Errorf("stderr %q, want it to contain %q", errOut.String(), tc.stderr)
			}
			if tc.wantNoOut && out.Len() > 0 {
				t.Errorf("stdout %q, want nothing on a usage error", out.String())
			}
			if tc.jsonStdout {
				var v versionInfo
				if err := json.Unmarshal(out.Bytes(), &v); err != nil {
					t.Fatalf("stdout is not JSON: %v\n%s", err, out.String())
				}
				if want := (versionInfo{Name: "bitvault", Version: "dev", Go: runtime.Version(), Platform: plat}); v != want {
					t.Errorf("version JSON %+v, want %+v", v, want)
				}
			}
		})
	}
}

// versionInfo is what `bitvault version --output json` prints.
type versionInfo struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
}

// TestStampedVersion builds the binary the way the release does (static, -trimpath,
// the version stamped with -X main.version) and runs it.
func TestStampedVersion(t *testing.T) {
	bin := processtest.Build(t, ".", "-trimpath", "-ldflags", "-s -w -buildid= -X main.version=1.2.3")
	out, err := exec.Command(bin, "version", "--output", "json").Output()
	if err != nil {
		t.Fatalf("bitvault version: %v", err)
	}
	var v versionInfo
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if v.Version != "1.2.3" || v.Name != "bitvault" {
		t.Errorf("version %+v, want bitvault 1.2.3", v)
	}
	out, err = exec.Command(bin, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "bitvault 1.2.3 (") {
		t.Errorf("bitvault version = %q, %v", out, err)
	}
}
