package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `version: 1
project: bitvault
registry: ghcr.io/bitvault
platforms: [linux/amd64, linux/arm64]
artifacts:
  - name: app
    context: svc
    dockerfile: svc/Dockerfile
    target: app
secrets:
  - id: token
    env: APP_TOKEN
bases:
  mode: standin
  standins:
    - ref: golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d
      kind: golang
      go: 1.26.8
`

func writeRepo(t *testing.T, cfg string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "svc"), 0o755)
	os.WriteFile(filepath.Join(dir, "svc", "Dockerfile"), []byte("FROM scratch\n"), 0o644)
	p := filepath.Join(dir, FileName)
	os.WriteFile(p, []byte(cfg), 0o644)
	return p
}

func TestLoadGood(t *testing.T) {
	c, err := Load(writeRepo(t, good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Artifacts[0].Target != "app" || c.Bases.Mode != BasesStandin || c.Bases.Lock != "bases.lock.json" {
		t.Errorf("unexpected config: %+v", c)
	}
	if len(c.Bases.Standins) != 1 || c.Bases.Standins[0].Go != "1.26.8" {
		t.Errorf("stand-ins not read: %+v", c.Bases.Standins)
	}
	if c.Repository(c.Artifacts[0]) != "ghcr.io/bitvault/app" {
		t.Errorf("repository = %s", c.Repository(c.Artifacts[0]))
	}
	vals, err := c.SecretValues(func(k string) string { return map[string]string{"APP_TOKEN": "s3cr3t"}[k] })
	if err != nil || string(vals["token"]) != "s3cr3t" {
		t.Errorf("secret values = %v, %v", vals, err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  string // the good config with one edit
		want []string
	}{
		{"missing file", "", []string{"no release configuration", "--config"}},
		{"empty file", "\n", []string{"the file is empty"}},
		{"malformed yaml", strings.Replace(good, "project: bitvault", "project: [bitvault", 1), []string{"bvrelease.yaml:1:", "did not find expected"}},
		{"unknown field", strings.Replace(good, "    target: app", "    targte: app", 1), []string{"bvrelease.yaml:9:5: targte: unknown field", "target"}},
		{"wrong type", strings.Replace(good, "version: 1", "version: one", 1), []string{"bvrelease.yaml:1:"}},
		{"unknown top-level field", strings.Replace(good, "project: bitvault", "projekt: bitvault", 1), []string{"bvrelease.yaml:2:", "projekt", "not found"}},
		{"missing registry", strings.Replace(good, "registry: ghcr.io/bitvault\n", "", 1), []string{"registry: missing"}},
		{"bad platform", strings.Replace(good, "linux/arm64]", "linux/sparc]", 1), []string{"platforms[1]", "linux/sparc"}},
		{"missing context", strings.Replace(good, "    context: svc\n", "", 1), []string{"bvrelease.yaml:6:5: artifacts[0].context: missing"}},
		{"dockerfile not found", strings.Replace(good, "svc/Dockerfile", "svc/Dockerfil", 1), []string{"bvrelease.yaml:6:5: artifacts[0].dockerfile", "svc/Dockerfil does not exist"}},
		{"latest as a name", strings.Replace(good, "name: app", "name: latest", 1), []string{"'latest' is never"}},
		{"secret as build arg", strings.Replace(good, "    target: app", "    target: app\n    build_args:\n      NPM_TOKEN: abc", 1), []string{"build_args.NPM_TOKEN", "--mount=type=secret"}},
		{"secret with two sources", strings.Replace(good, "    env: APP_TOKEN", "    env: APP_TOKEN\n    file: token.txt", 1), []string{"bvrelease.yaml:11:5: secrets[0]", "exactly one"}},
		{"signing identity without issuer", good + "signing:\n  identity_regexp: ^https://github\\.com/bitvault/\n", []string{"signing.issuer: missing"}},
		{"signing identity twice", good + "signing:\n  identity: a\n  identity_regexp: b\n  issuer: c\n", []string{"identity or identity_regexp, not both"}},
		{"signing bad regexp", good + "signing:\n  identity_regexp: '(unclosed'\n  issuer: c\n", []string{"signing.identity_regexp", "missing closing )"}},
		{"signing unknown key", good + "signing:\n  identiy: a\n", []string{"identiy", "not found"}},
		{"bad bases mode", strings.Replace(good, "mode: standin", "mode: offline", 1), []string{"bases.mode", "offline"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p string
			if tc.cfg == "" {
				p = filepath.Join(t.TempDir(), FileName)
			} else {
				p = writeRepo(t, tc.cfg)
			}
			_, err := Load(p)
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			msg := strings.ReplaceAll(err.Error(), filepath.Dir(p)+"/", "")
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not contain %q", msg, w)
				}
			}
		})
	}
}

// TestLoadErrorPositions: errors say file:line:col wherever the field is in
// the file — unknown fields, values that do not fit, and fields the
// validation rejects (a missing field: the section it belongs in).
func TestLoadErrorPositions(t *testing.T) {
	tests := []struct {
		name, cfg, want string
	}{
		{"unknown top-level field", strings.Replace(good, "project: bitvault", "projekt: bitvault", 1), "bvrelease.yaml:2:1: field projekt not found"},
		{"wrong type", strings.Replace(good, "version: 1", "version: one", 1), "bvrelease.yaml:1:10: cannot unmarshal !!str `one` into int"},
		{"unknown nested field", strings.Replace(good, "    target: app", "    targte: app", 1), "bvrelease.yaml:9:5: targte: unknown field"},
		{"bad platform", strings.Replace(good, "linux/arm64]", "linux/sparc]", 1), "bvrelease.yaml:4:26: platforms[1]: \"linux/sparc\" is not a supported platform"},
		{"bad bases mode", strings.Replace(good, "mode: standin", "mode: offline", 1), "bvrelease.yaml:14:3: bases.mode: \"offline\" is not one of"},
		{"unsupported version", strings.Replace(good, "version: 1", "version: 3", 1), "bvrelease.yaml:1:1: version: unsupported version 3"},
		{"missing issuer: the section", good + "signing:\n  identity: a\n", "bvrelease.yaml:19:1: signing.issuer: missing"},
		{"bad regexp", good + "signing:\n  identity_regexp: '(x'\n  issuer: c\n", "bvrelease.yaml:20:3: signing.identity_regexp: error parsing regexp"},
		{"no artifacts", "version: 1\nregistry: r.example/x\nartifacts: []\n", "bvrelease.yaml:3:1: artifacts: no artifacts"},
		{"missing registry: no position", strings.Replace(good, "registry: ghcr.io/bitvault\n", "", 1), "bvrelease.yaml: registry: missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeRepo(t, tc.cfg)
			_, err := Load(p)
			if err == nil {
				t.Fatal("loaded, want an error")
			}
			if msg := strings.ReplaceAll(err.Error(), filepath.Dir(p)+"/", ""); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q does not contain %q", msg, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("not a *config.Error: %T", err)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "f.yaml", Line: 3, Column: 7, Field: "a.b", Msg: "bad"}, "f.yaml:3:7: a.b: bad"},
		{Error{File: "f.yaml", Line: 3, Field: "a.b", Msg: "bad"}, "f.yaml:3: a.b: bad"},
		{Error{File: "f.yaml", Column: 7, Msg: "bad"}, "f.yaml: bad"},
		{Error{File: "f.yaml", Msg: "bad"}, "f.yaml: bad"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
}
