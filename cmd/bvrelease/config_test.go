package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitvault/bitvault/release/config"
)

func TestConfigCommand(t *testing.T) {
	app := map[string]string{"app/Dockerfile": goodDockerfile}
	with := func(files map[string]string) map[string]string {
		for k, v := range app {
			files[k] = v
		}
		return files
	}
	tests := []struct {
		name   string
		files  map[string]string
		args   []string
		code   int
		want   []string
		unwant []string
	}{
		{"validate good", with(map[string]string{"bvrelease.yaml": cfg}), []string{"config", "validate"}, 0, []string{"bvrelease.yaml: valid"}, nil},
		{"validate other file", with(map[string]string{"release.yaml": cfg}), []string{"config", "validate", "--config", "release.yaml"}, 0, []string{"release.yaml: valid"}, nil},
		{"validate unknown field", with(map[string]string{"bvrelease.yaml": strings.Replace(cfg, "context: app", "contxt: app", 1)}),
			[]string{"config", "validate"}, exitUsage, []string{"bvrelease.yaml:6:5: contxt: unknown field; known fields here: build_args, context"}, nil},
		{"validate reports every error", with(map[string]string{"bvrelease.yaml": strings.Replace(cfg, "mode: upstream", "mode: offline", 1) + "platforms: [linux/sparc]\n"}),
			[]string{"config", "validate"}, exitUsage, []string{"bvrelease.yaml:9:13: platforms[0]: \"linux/sparc\"", "bvrelease.yaml:8:3: bases.mode: \"offline\""}, []string{"does not match pattern"}},
		{"validate schema-only rule", with(map[string]string{"bvrelease.yaml": cfg + "gitops:\n  repo: o/r\n"}),
			[]string{"config", "validate"}, exitUsage, []string{"bvrelease.yaml:9:1: gitops.environments: missing property 'environments'"}, nil},
		{"validate scalar of the wrong kind", with(map[string]string{"bvrelease.yaml": cfg + "policy:\n  provenance: [cosign]\n"}),
			[]string{"config", "validate"}, exitUsage, []string{"bvrelease.yaml:10:16: policy.provenance[0]: value must be one of 'bvrelease', 'slsa-github-generator'"}, nil},
		{"validate missing file", map[string]string{"README": "x"}, []string{"config", "validate"}, exitUsage, []string{"no release configuration"}, nil},
		{"show yaml", with(map[string]string{"bvrelease.yaml": cfg}), []string{"config", "show"}, 0,
			[]string{"version: 1\n", "platforms:\n  - linux/amd64\n  - linux/arm64\n", "dockerfile: app/Dockerfile\n", "mode: upstream\n", "lock: bases.lock.json\n",
				"fulcio: https://fulcio.sigstore.dev\n", "output: policies\n"}, []string{"gitops", "cli:"}},
		{"show json", with(map[string]string{"bvrelease.yaml": cfg}), []string{"config", "show", "-o", "json"}, 0,
			[]string{`"registry": "registry.example/t"`, `"provenance": [`}, nil},
		{"show bad format", with(map[string]string{"bvrelease.yaml": cfg}), []string{"config", "show", "-o", "toml"}, exitUsage, []string{"use yaml or json"}, nil},
		{"show bad config", with(map[string]string{"bvrelease.yaml": strings.Replace(cfg, "context: app", "contxt: app", 1)}),
			[]string{"config", "show"}, exitUsage, []string{"bvrelease.yaml:6:5: contxt"}, nil},
		{"no subcommand", with(map[string]string{"bvrelease.yaml": cfg}), []string{"config"}, exitUsage, []string{"validate, show or schema"}, nil},
		{"schema", map[string]string{"README": "x"}, []string{"config", "schema"}, 0, []string{`"$id": "` + config.SchemaID + `"`}, nil},
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
			for _, w := range tc.unwant {
				if strings.Contains(out, w) {
					t.Errorf("output contains %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestConfigShowRoundTrip: what show prints is itself a valid configuration
// that loads to the same thing, in both formats.
func TestConfigShowRoundTrip(t *testing.T) {
	dir := repo(t, map[string]string{"bvrelease.yaml": cfg + "gitops:\n  repo: o/r\n  environments: {dev: envs/dev.yaml}\n", "app/Dockerfile": goodDockerfile})
	yml, code := run(t, dir, "config", "show")
	if code != 0 {
		t.Fatalf("show: %s", yml)
	}
	js, code := run(t, dir, "config", "show", "-o", "json")
	if code != 0 {
		t.Fatalf("show -o json: %s", js)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(js), &v); err != nil {
		t.Fatalf("show -o json is not JSON: %v\n%s", err, js)
	}
	for name, content := range map[string]string{"shown.yaml": yml, "shown.json": js} { // JSON is YAML
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, code := run(t, dir, "config", "validate", "--config", name); code != 0 {
			t.Errorf("%s does not validate:\n%s", name, out)
		}
		again, code := run(t, dir, "config", "show", "--config", name)
		if code != 0 || again != yml {
			t.Errorf("%s shows differently:\n%s\nwant:\n%s", name, again, yml)
		}
	}
}
