package api

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// doc parses openapi.yaml into a generic tree.
func doc(t *testing.T) map[string]any {
	t.Helper()
	var d map[string]any
	if err := yaml.Unmarshal(OpenAPI, &d); err != nil {
		t.Fatalf("openapi.yaml is not YAML: %v", err)
	}
	return d
}

func m(v any) map[string]any {
	mm, _ := v.(map[string]any)
	return mm
}

// resolve follows a local $ref ("#/components/...") in d.
func resolve(d map[string]any, ref string) (any, bool) {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, false
	}
	var cur any = d
	for _, seg := range strings.Split(p, "/") {
		seg = strings.ReplaceAll(strings.ReplaceAll(seg, "~1", "/"), "~0", "~")
		next, ok := m(cur)[seg]
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// deref returns v, or what its $ref points to.
func deref(d map[string]any, v any) map[string]any {
	for range 10 {
		ref, ok := m(v)["$ref"].(string)
		if !ok {
			return m(v)
		}
		v, _ = resolve(d, ref)
	}
	return nil
}

func TestDocumentIsOpenAPI31(t *testing.T) {
	d := doc(t)
	v, _ := d["openapi"].(string)
	if !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Errorf("openapi = %q, want 3.1.x", v)
	}
	info := m(d["info"])
	if info["title"] == nil || info["version"] == nil {
		t.Errorf("info needs title and version: %v", info)
	}
	if len(m(d["paths"])) == 0 {
		t.Fatal("no paths")
	}
	parsed, err := Parse(OpenAPI)
	if err != nil || parsed.OpenAPI != v {
		t.Fatalf("Parse: %v, %+v", err, parsed)
	}
	if len(parsed.Routes()) < len(m(d["paths"])) {
		t.Errorf("Routes() = %d routes for %d paths", len(parsed.Routes()), len(m(d["paths"])))
	}
}

// TestReferencesResolve checks that every $ref points into the document, and that every
// component is used.
func TestReferencesResolve(t *testing.T) {
	d := doc(t)
	used := map[string]bool{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case nil:
			t.Errorf("%s: null (a broken flow mapping?)", path)
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if _, ok := resolve(d, ref); !ok {
					t.Errorf("%s: $ref %q does not resolve", path, ref)
				}
				used[ref] = true
			}
			for k, c := range v {
				walk(path+"/"+k, c)
			}
		case []any:
			for _, c := range v {
				walk(path+"[]", c)
			}
		}
	}
	walk("#", d)
	for kind, comps := range m(d["components"]) {
		if kind == "securitySchemes" {
			continue
		}
		for name := range m(comps) {
			if ref := "#/components/" + kind + "/" + name; !used[ref] {
				t.Errorf("%s is never used", ref)
			}
		}
	}
	for name := range m(m(d["components"])["securitySchemes"]) {
		if !strings.Contains(string(OpenAPI), "- "+name+": []") {
			t.Errorf("security scheme %s is never used", name)
		}
	}
}

// TestOperations checks every operation: a unique operationId, the path's parameters
// declared, a success answer, and errors described with the Error schema.
func TestOperations(t *testing.T) {
	d := doc(t)
	errorRef := "#/components/schemas/Error"
	ids := map[string]string{}
	wildcard := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range m(d["paths"]) {
		pi := m(item)
		if !strings.HasPrefix(path, "/") {
			t.Errorf("path %q does not start with /", path)
		}
		ops := 0
		for _, method := range methods {
			op := m(pi[method])
			if op == nil {
				continue
			}
			ops++
			where := strings.ToUpper(method) + " " + path
			id, _ := op["operationId"].(string)
			switch {
			case id == "":
				t.Errorf("%s: no operationId", where)
			case ids[id] != "":
				t.Errorf("%s: operationId %q is %s's too", where, id, ids[id])
			default:
				ids[id] = where
			}
			if op["summary"] == nil {
				t.Errorf("%s: no summary", where)
			}
			// Path parameters: declared at the path or the operation, and in the template.
			declared := map[string]bool{}
			for _, list := range []any{pi["parameters"], op["parameters"]} {
				ps, _ := list.([]any)
				for _, p := range ps {
					p := deref(d, p)
					if p["in"] == "path" {
						declared[p["name"].(string)] = true
						if p["required"] != true {
							t.Errorf("%s: path parameter %v must be required", where, p["name"])
						}
					}
				}
			}
			inTemplate := map[string]bool{}
			for _, w := range wildcard.FindAllStringSubmatch(path, -1) {
				inTemplate[w[1]] = true
				if !declared[w[1]] {
					t.Errorf("%s: path parameter %q is not declared", where, w[1])
				}
			}
			for name := range declared {
				if !inTemplate[name] {
					t.Errorf("%s: parameter %q is not in the path", where, name)
				}
			}
			// Answers.
			responses := m(op["responses"])
			success, errs := false, false
			for code, r := range responses {
				if code[0] == '2' || code[0] == '3' {
					success = true
					continue
				}
				if code[0] != '4' && code[0] != '5' && code != "default" {
					t.Errorf("%s: answer %q", where, code)
					continue
				}
				errs = true
				if !strings.HasPrefix(path, "/v1/") {
					continue // the probes answer their own body
				}
				for ct, media := range m(deref(d, r)["content"]) {
					if ct != "application/json" || !refersTo(d, m(media)["schema"], errorRef) {
						t.Errorf("%s: answer %s is not described with %s", where, code, errorRef)
					}
				}
			}
			if !success {
				t.Errorf("%s: no success answer", where)
			}
			if !errs && strings.HasPrefix(path, "/v1/") {
				t.Errorf("%s: no error answer", where)
			}
			if strings.HasPrefix(path, "/v1/") && responses["default"] == nil {
				t.Errorf("%s: no default (error) answer", where)
			}
		}
		if ops == 0 {
			t.Errorf("path %q has no operation", path)
		}
	}
}

// refersTo reports whether schema is (or is oneOf/allOf including) ref.
func refersTo(d map[string]any, schema any, ref string) bool {
	s := m(schema)
	if s["$ref"] == ref {
		return true
	}
	if r, ok := s["$ref"].(string); ok {
		target, _ := resolve(d, r)
		return refersTo(d, target, ref)
	}
	for _, k := range []string{"oneOf", "allOf", "anyOf"} {
		list, _ := s[k].([]any)
		for _, c := range list {
			if refersTo(d, c, ref) {
				return true
			}
		}
	}
	return false
}

func TestErrorSchema(t *testing.T) {
	d := doc(t)
	e := m(m(m(d["components"])["schemas"])["Error"])
	req, _ := e["required"].([]any)
	for _, f := range []string{"code", "message", "request_id"} {
		if !slices.Contains(req, any(f)) || m(e["properties"])[f] == nil {
			t.Errorf("Error schema: %s must be a required property", f)
		}
	}
}
