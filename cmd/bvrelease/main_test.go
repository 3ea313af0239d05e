package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// repo makes a committed git work tree holding files.
func repo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"commit", "-qm", "test"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@localhost", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@localhost")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	return dir
}

const goodDockerfile = `FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN GOOS=$TARGETOS GOARCH=$TARGETARCH CGO_ENABLED=0 go build -o /out/app .

FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab
COPY --from=build /out/app /app
USER 65532:65532
ENTRYPOINT ["/app"]
`

const cfg = `version: 1
project: t
registry: registry.example/t
artifacts:
  - name: app
    context: app
bases:
  mode: upstream
`

func run(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	wd, _ := os.Getwd()
	os.Chdir(dir)
	defer os.Chdir(wd)
	var out bytes.Buffer
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		out.WriteString(err.Error())
		return out.String(), exitCode(err)
	}
	return out.String(), 0
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		args  []string
		code  int
		want  []string
	}{
		{"clean check", map[string]string{"bvrelease.yaml": cfg, "app/Dockerfile": goodDockerfile}, []string{"check", "--dockerfiles"}, 0, nil},
		{"rule violation", map[string]string{"bvrelease.yaml": cfg, "app/Dockerfile": strings.Replace(goodDockerfile, "golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d", "golang:1.26.8-bookworm", 1)},
			[]string{"check", "--dockerfiles"}, exitViolations, []string{"app/Dockerfile:1: pinned-from"}},
		{"healthcheck", map[string]string{"bvrelease.yaml": cfg, "app/Dockerfile": strings.Replace(goodDockerfile, "USER 65532:65532", "USER 65532:65532\nHEALTHCHECK CMD [\"/app\", \"health\"]", 1)},
			[]string{"check", "--dockerfiles"}, exitViolations, []string{"app/Dockerfile:12: healthcheck"}},
		{"bad config", map[string]string{"bvrelease.yaml": strings.Replace(cfg, "context: app", "contxt: app", 1), "app/Dockerfile": goodDockerfile},
			[]string{"plan"}, exitUsage, []string{"bvrelease.yaml:6", "contxt"}},
		{"missing config", map[string]string{"README": "x"}, []string{"plan"}, exitUsage, []string{"no release configuration"}},
		{"bad flag", map[string]string{"bvrelease.yaml": cfg, "app/Dockerfile": goodDockerfile}, []string{"plan", "--output", "yaml"}, exitUsage, []string{"--output"}},
		{"unknown artifact", map[string]string{"bvrelease.yaml": cfg, "app/Dockerfile": goodDockerfile}, []string{"plan", "--artifact", "nope"}, exitUsage, []string{"no such artifact"}},
		{"plan json", map[string]string{"bvrelease.yaml": cfg, "app/Dockerfile": goodDockerfile}, []string{"plan", "-o", "json"}, 0, []string{`"version": "0.0.0-`, `"used": "upstream"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := run(t, repo(t, tc.files), tc.args...)
			if code != tc.code {
				t.Fatalf("exit code %d, want %d; output:\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output does not contain %q:\n%s", w, out)
				}
			}
		})
	}
}
