package config

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/bitvault/bitvault/builder/bases"
)

var update = flag.Bool("update", false, "rewrite docs/bvrelease-yaml.md from schema.json")

func schemaMap(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(schemaJSON))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("schema.json: %v", err)
	}
	return m
}

// TestSchemaMatchesTypes: every yaml field of Config (and of the types in it)
// is a property of the schema at the same place with a matching type and a
// description, and the schema has no property the Go types do not read.
func TestSchemaMatchesTypes(t *testing.T) {
	root := schemaMap(t)
	if root["$schema"] != "https://json-schema.org/draft/2020-12/schema" || root["$id"] != SchemaID {
		t.Errorf("$schema/$id = %v, %v", root["$schema"], root["$id"])
	}
	checkType(t, "", reflect.TypeFor[Config](), root)
}

func checkType(t *testing.T, path string, typ reflect.Type, s map[string]any) {
	t.Helper()
	where := path
	if where == "" {
		where = "(top level)"
	}
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := map[reflect.Kind]string{reflect.Struct: "object", reflect.Map: "object", reflect.Slice: "array",
		reflect.String: "string", reflect.Int: "integer", reflect.Bool: "boolean"}[typ.Kind()]
	if want == "" {
		t.Errorf("%s: Go type %s has no JSON Schema type here; teach this test", where, typ)
		return
	}
	if s["type"] != want {
		t.Errorf("%s: schema type %v, Go type %s wants %q", where, s["type"], typ, want)
		return
	}
	switch typ.Kind() {
	case reflect.Struct:
		if s["additionalProperties"] != false {
			t.Errorf("%s: additionalProperties must be false (unknown fields are errors)", where)
		}
		props, _ := s["properties"].(map[string]any)
		fields := yamlFields(typ)
		for name, ft := range fields {
			p, ok := props[name].(map[string]any)
			if !ok {
				t.Errorf("%s: Go field %q (%s) is missing from schema.json", where, name, ft)
				continue
			}
			if d, _ := p["description"].(string); strings.TrimSpace(d) == "" {
				t.Errorf("%s: %q has no description", where, name)
			}
			checkType(t, join(path, name), ft, p)
		}
		for name := range props {
			if _, ok := fields[name]; !ok {
				t.Errorf("%s: schema property %q is not a field of %s", where, name, typ)
			}
		}
		for _, r := range strs(s["required"]) {
			if _, ok := fields[r]; !ok {
				t.Errorf("%s: required %q is not a field of %s", where, r, typ)
			}
		}
	case reflect.Slice:
		items, ok := s["items"].(map[string]any)
		if !ok {
			t.Errorf("%s: array without items", where)
			return
		}
		checkType(t, path+"[]", typ.Elem(), items)
	case reflect.Map:
		if s["properties"] != nil {
			t.Errorf("%s: a map has no fixed properties", where)
		}
		ap, ok := s["additionalProperties"].(map[string]any)
		if !ok {
			t.Errorf("%s: a map needs additionalProperties describing its values", where)
			return
		}
		checkType(t, path+".*", typ.Elem(), ap)
	}
}

// yamlFields maps the yaml names of typ's fields (inline structs flattened)
// to their types.
func yamlFields(typ reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < typ.NumField(); i++ {
		f := typ.Field(i)
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if slices.Contains(strings.Split(opts, ","), "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// lookup returns the schema at a dotted path of property names ([] for
// items).
func lookup(t *testing.T, s map[string]any, path string) map[string]any {
	t.Helper()
	for _, p := range strings.Split(path, ".") {
		name, isList := strings.CutSuffix(p, "[]")
		props, _ := s["properties"].(map[string]any)
		next, ok := props[name].(map[string]any)
		if !ok {
			t.Fatalf("schema has no %s", path)
		}
		s = next
		if isList {
			s = s["items"].(map[string]any)
		}
	}
	return s
}

// TestSchemaRulesMatchGo: the patterns and enums of the schema are the ones
// the Go validation uses.
func TestSchemaRulesMatchGo(t *testing.T) {
	s := schemaMap(t)
	for _, tc := range []struct {
		path string
		want string
	}{
		{"project", nameRE.String()},
		{"artifacts[].name", nameRE.String()},
		{"platforms[]", platformRE.String()},
		{"secrets[].id", secretIDRE.String()},
	} {
		if got := fmt.Sprint(lookup(t, s, tc.path)["pattern"]); got != tc.want {
			t.Errorf("%s: pattern %s, Go uses %s", tc.path, got, tc.want)
		}
	}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"bases.mode", []string{BasesAuto, BasesStandin, BasesUpstream}},
		{"bases.standins[].kind", []string{bases.KindGolang, bases.KindDistrolessStatic, bases.KindNode, bases.KindDistrolessNodejs}},
	} {
		if got := strs(lookup(t, s, tc.path)["enum"]); !slices.Equal(got, tc.want) {
			t.Errorf("%s: enum %v, Go knows %v", tc.path, got, tc.want)
		}
	}
}

// TestSchemaDefaults: every default the schema states is what Load applies.
func TestSchemaDefaults(t *testing.T) {
	c, err := Load(writeRepo(t, `registry: ghcr.io/x
artifacts:
  - name: app
    context: svc
signing:
  identity: a
  issuer: b
cli:
  name: x
  module: svc
  main: .
gitops:
  repo: o/r
  environments: {dev: envs/dev.yaml}
`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var shown map[string]any
	if err := yaml.Unmarshal(out, &shown); err != nil {
		t.Fatal(err)
	}
	n := 0
	var walk func(path string, s map[string]any, v any)
	walk = func(path string, s map[string]any, v any) {
		if d, ok := s["default"]; ok {
			n++
			want, _ := json.Marshal(d)
			got, _ := json.Marshal(v)
			if !bytes.Equal(got, want) {
				t.Errorf("%s: schema default %s, Load applies %s", path, want, got)
			}
		}
		props, _ := s["properties"].(map[string]any)
		m, _ := v.(map[string]any)
		for name, p := range props {
			walk(join(path, name), p.(map[string]any), m[name])
		}
	}
	walk("", schemaMap(t), shown)
	if n < 10 {
		t.Errorf("checked only %d defaults", n)
	}
	if c.Artifacts[0].Dockerfile != "svc/Dockerfile" || c.GitOps.Images["app"] != "app.image.digest" {
		t.Errorf("described defaults: dockerfile %q, images %v", c.Artifacts[0].Dockerfile, c.GitOps.Images)
	}
}

// TestRepoConfigMatchesSchema validates the repository's own bvrelease.yaml
// against the schema (santhosh-tekuri/jsonschema, draft 2020-12) and with Load.
func TestRepoConfigMatchesSchema(t *testing.T) {
	p := filepath.Join("..", "..", FileName)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateSchema(p, data); err != nil {
		t.Errorf("%s does not match schema.json:\n%v", p, err)
	}
	if _, err := Load(p); err != nil {
		t.Errorf("Load: %v", err)
	}
}

// TestValidateSchema: violations name file:line:col and the field, and the
// schema agrees with Load where both can judge.
func TestValidateSchema(t *testing.T) {
	tests := []struct {
		name string
		cfg  string
		want []string // nil: valid
		load bool     // Load rejects it too
	}{
		{"good", good, nil, false},
		{"scalars read as Go reads them", strings.Replace(good, "go: 1.26.8", "go: 1.26\n      node: 22", 1), nil, false},
		{"unknown field", strings.Replace(good, "    target: app", "    targte: app", 1),
			[]string{"bvrelease.yaml:9:5: artifacts[0].targte: unknown field; known fields here: build_args, context, dockerfile, name, target"}, true},
		{"unknown top-level field", strings.Replace(good, "project: bitvault", "projekt: bitvault", 1), []string{"bvrelease.yaml:2:1: projekt: unknown field"}, true},
		{"wrong type", strings.Replace(good, "version: 1", "version: one", 1), []string{"bvrelease.yaml:1:1: version: got string, want integer"}, true},
		{"unsupported version", strings.Replace(good, "version: 1", "version: 2", 1), []string{"bvrelease.yaml:1:1: version: value must be 1"}, true},
		{"missing registry", strings.Replace(good, "registry: ghcr.io/bitvault\n", "", 1), []string{"bvrelease.yaml:1:1: registry: missing property 'registry'"}, true},
		{"registry with a tag", strings.Replace(good, "ghcr.io/bitvault", "ghcr.io/bitvault:latest", 1), []string{"bvrelease.yaml:3:1: registry: "}, true},
		{"bad platform", strings.Replace(good, "linux/arm64]", "linux/sparc]", 1), []string{"bvrelease.yaml:4:26: platforms[1]: 'linux/sparc' does not match pattern"}, true},
		{"missing context", strings.Replace(good, "    context: svc\n", "", 1), []string{"bvrelease.yaml:6:5: artifacts[0].context: missing property 'context'"}, true},
		{"latest as a name", strings.Replace(good, "name: app", "name: latest", 1), []string{"bvrelease.yaml:6:5: artifacts[0].name: 'latest' is never"}, true},
		{"no artifacts", "version: 1\nregistry: r.example/x\nartifacts: []\n", []string{"bvrelease.yaml:3:1: artifacts: minItems"}, true},
		{"secret with two sources", strings.Replace(good, "    env: APP_TOKEN", "    env: APP_TOKEN\n    file: token.txt", 1),
			[]string{"bvrelease.yaml:11:5: secrets[0]: set exactly one of env or file, not both"}, true},
		{"secret without a source", strings.Replace(good, "    env: APP_TOKEN\n", "", 1), []string{"bvrelease.yaml:11:5: secrets[0]: set exactly one of env"}, true},
		{"bad bases mode", strings.Replace(good, "mode: standin", "mode: offline", 1), []string{"bvrelease.yaml:14:3: bases.mode: value must be one of"}, true},
		{"bad stand-in kind", strings.Replace(good, "kind: golang", "kind: python", 1), []string{"bvrelease.yaml:17:7: bases.standins[0].kind"}, false},
		{"signing identity without issuer", good + "signing:\n  identity_regexp: ^https://github\\.com/bitvault/\n", []string{"bvrelease.yaml:19:1: signing: properties 'issuer' required"}, true},
		{"signing identity twice", good + "signing:\n  identity: a\n  identity_regexp: b\n  issuer: c\n", []string{"signing: give identity or identity_regexp, not both"}, true},
		{"signing issuer alone", good + "signing:\n  issuer: c\n", []string{"signing: issuer without identity"}, true},
		{"gitops without environments", good + "gitops:\n  repo: o/r\n", []string{"bvrelease.yaml:19:1: gitops.environments: missing property 'environments'"}, false},
		{"bad provenance producer", good + "policy:\n  provenance: [sigstore]\n", []string{"bvrelease.yaml:20:16: policy.provenance[0]"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeRepo(t, tc.cfg)
			err := ValidateSchema(p, []byte(tc.cfg))
			_, lerr := Load(p)
			if tc.want == nil {
				if err != nil {
					t.Errorf("schema: %v", err)
				}
				if lerr != nil {
					t.Errorf("Load: %v", lerr)
				}
				return
			}
			if err == nil {
				t.Fatal("schema accepted it")
			}
			msg := strings.ReplaceAll(err.Error(), filepath.Dir(p)+"/", "")
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("schema error %q does not contain %q", msg, w)
				}
			}
			if tc.load && lerr == nil {
				t.Errorf("Load accepted what the schema rejects")
			}
		})
	}
}

// TestReference: docs/bvrelease-yaml.md is what the schema generates (run
// with -update to rewrite it).
func TestReference(t *testing.T) {
	got, err := Reference()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join("..", "..", filepath.FromSlash(ReferencePath))
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v; generate it with: go test ./release/config -run TestReference -update", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		i := 0
		for i < len(gl) && i < len(wl) && gl[i] == wl[i] {
			i++
		}
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		t.Errorf("%s has drifted from schema.json (first difference at line %d:\n  committed: %s\n  generated: %s)\nregenerate it: go test ./release/config -run TestReference -update", ReferencePath, i+1, w, g)
	}
	for _, section := range []string{"## Top level", "## `artifacts[]`", "## `secrets[]`", "## `bases`", "## `bases.standins[]`", "## `signing`", "## `cli`", "## `cli.homebrew`", "## `gitops`", "## `policy`"} {
		if !bytes.Contains(got, []byte("\n"+section+"\n")) {
			t.Errorf("reference has no section %s", section)
		}
	}
}
