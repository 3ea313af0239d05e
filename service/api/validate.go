package api

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Spec checks JSON bodies against the document's schemas, for tests that record real API
// traffic. It understands the subset of JSON Schema the document uses: $ref, allOf, oneOf,
// type (with null), enum, const, properties, required, additionalProperties and items
// (formats, patterns and bounds are not checked). Objects are closed: a key that no
// properties (of the schema or of its allOf parts) name is an error unless
// additionalProperties allows it, so that an undocumented field is noticed.
type Spec struct {
	root map[string]any
	// paths maps a mux pattern to the document's path.
	paths map[string]string
}

// LoadSpec parses the document for validation.
func LoadSpec(b []byte) (*Spec, error) {
	var root map[string]any
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	d, err := Parse(b)
	if err != nil {
		return nil, err
	}
	s := &Spec{root: root, paths: map[string]string{}}
	for _, r := range d.Routes() {
		s.paths[strings.ReplaceAll(r.Pattern, "...}", "}")] = r.Path
	}
	return s, nil
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// deref resolves $ref chains.
func (s *Spec) deref(v any) map[string]any {
	for range 20 {
		ref, ok := asMap(v)["$ref"].(string)
		if !ok {
			return asMap(v)
		}
		p, _ := strings.CutPrefix(ref, "#/")
		var cur any = s.root
		for _, seg := range strings.Split(p, "/") {
			cur = asMap(cur)[seg]
		}
		v = cur
	}
	return nil
}

// operation finds the operation serving method on a mux pattern.
func (s *Spec) operation(method, pattern string) (map[string]any, error) {
	path, ok := s.paths[strings.ReplaceAll(pattern, "...}", "}")]
	if !ok {
		return nil, fmt.Errorf("%s is not documented", pattern)
	}
	if method == "HEAD" {
		method = "GET"
	}
	op := asMap(asMap(asMap(s.root["paths"])[path])[strings.ToLower(method)])
	if op == nil {
		return nil, fmt.Errorf("%s %s is not documented", method, path)
	}
	return op, nil
}

// jsonSchema returns the application/json schema of a request body or response object, nil
// when it has none.
func (s *Spec) jsonSchema(obj any) any {
	content := asMap(s.deref(obj)["content"])
	if content == nil {
		return nil
	}
	media, ok := content["application/json"]
	if !ok {
		return nil
	}
	return asMap(media)["schema"]
}

// CheckRequest checks a JSON request body of method on a mux pattern.
func (s *Spec) CheckRequest(method, pattern string, body []byte) error {
	op, err := s.operation(method, pattern)
	if err != nil {
		return err
	}
	rb := op["requestBody"]
	if rb == nil {
		if len(strings.TrimSpace(string(body))) > 0 {
			return fmt.Errorf("%s %s: a body, but none is documented", method, pattern)
		}
		return nil
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		if s.deref(rb)["required"] == true {
			return fmt.Errorf("%s %s: no body, but one is required", method, pattern)
		}
		return nil
	}
	schema := s.jsonSchema(rb)
	if schema == nil {
		return nil // not JSON (the blobs' bytes)
	}
	return s.checkJSON(schema, body, method+" "+pattern+" request")
}

// CheckResponse checks a response of method on a mux pattern: its status must be documented
// (or covered by default) and a JSON body must match the schema.
func (s *Spec) CheckResponse(method, pattern string, status int, contentType string, body []byte) error {
	op, err := s.operation(method, pattern)
	if err != nil {
		_, known := s.paths[strings.ReplaceAll(pattern, "...}", "}")]
		if known && status == 405 {
			// A method the path does not serve: the general 405 with an Error body.
			return s.checkJSON(map[string]any{"$ref": "#/components/schemas/Error"}, body, fmt.Sprintf("%s %s %d", method, pattern, status))
		}
		return err
	}
	responses := asMap(op["responses"])
	resp, ok := responses[strconv.Itoa(status)]
	if !ok {
		if status < 400 {
			return fmt.Errorf("%s %s: answer %d is not documented", method, pattern, status)
		}
		if resp, ok = responses["default"]; !ok {
			return fmt.Errorf("%s %s: answer %d is not documented (and no default)", method, pattern, status)
		}
	}
	schema := s.jsonSchema(resp)
	isJSON := strings.HasPrefix(contentType, "application/json")
	switch {
	case schema == nil && isJSON && len(body) > 0:
		return fmt.Errorf("%s %s %d: a JSON body, but none is documented", method, pattern, status)
	case schema == nil || !isJSON || method == "HEAD":
		return nil
	}
	return s.checkJSON(schema, body, fmt.Sprintf("%s %s %d", method, pattern, status))
}

func (s *Spec) checkJSON(schema any, body []byte, what string) error {
	var v any
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return fmt.Errorf("%s: not JSON: %v", what, err)
	}
	if errs := s.validate(schema, v, "$"); len(errs) > 0 {
		return fmt.Errorf("%s: %s", what, strings.Join(errs, "; "))
	}
	return nil
}

// validate checks v against schema and returns the mismatches.
func (s *Spec) validate(schema any, v any, at string) []string {
	sc := s.deref(schema)
	if sc == nil {
		return nil
	}
	var errs []string
	if parts, ok := sc["allOf"].([]any); ok {
		for _, p := range parts {
			errs = append(errs, s.validateOpen(p, v, at)...)
		}
		if obj, ok := v.(map[string]any); ok && !s.allowsExtra(sc) {
			known := s.knownProperties(sc)
			for k := range obj {
				if !known[k] {
					errs = append(errs, fmt.Sprintf("%s.%s is not documented", at, k))
				}
			}
		}
		return errs
	}
	if parts, ok := sc["oneOf"].([]any); ok {
		var all []string
		for _, p := range parts {
			e := s.validate(p, v, at)
			if len(e) == 0 {
				return nil
			}
			all = append(all, e...)
		}
		return []string{fmt.Sprintf("%s matches none of oneOf (%s)", at, strings.Join(all, "; "))}
	}
	if !typeMatches(sc["type"], v) {
		return []string{fmt.Sprintf("%s is %s, want type %v", at, jsonType(v), sc["type"])}
	}
	if c, ok := sc["const"]; ok && fmt.Sprint(c) != fmt.Sprint(v) {
		errs = append(errs, fmt.Sprintf("%s = %v, want %v", at, v, c))
	}
	if enum, ok := sc["enum"].([]any); ok && v != nil {
		if !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
			errs = append(errs, fmt.Sprintf("%s = %v, not one of %v", at, v, enum))
		}
	}
	switch v := v.(type) {
	case map[string]any:
		props := asMap(sc["properties"])
		if req, ok := sc["required"].([]any); ok {
			for _, r := range req {
				if _, ok := v[r.(string)]; !ok {
					errs = append(errs, fmt.Sprintf("%s.%s is required", at, r))
				}
			}
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p, ok := props[k]; ok {
				errs = append(errs, s.validate(p, v[k], at+"."+k)...)
				continue
			}
			switch ap := sc["additionalProperties"].(type) {
			case map[string]any:
				errs = append(errs, s.validate(ap, v[k], at+"."+k)...)
			case bool:
				if !ap {
					errs = append(errs, fmt.Sprintf("%s.%s is not documented", at, k))
				}
			default:
				if props != nil {
					errs = append(errs, fmt.Sprintf("%s.%s is not documented", at, k))
				}
			}
		}
	case []any:
		if items, ok := sc["items"]; ok {
			for i, e := range v {
				errs = append(errs, s.validate(items, e, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	}
	return errs
}

// validateOpen validates an allOf part without its closedness (the whole checks that).
func (s *Spec) validateOpen(schema any, v any, at string) []string {
	sc := s.deref(schema)
	open := map[string]any{}
	for k, val := range sc {
		open[k] = val
	}
	open["additionalProperties"] = true
	return s.validate(open, v, at)
}

// knownProperties are the properties named by a schema and its allOf parts.
func (s *Spec) knownProperties(sc map[string]any) map[string]bool {
	known := map[string]bool{}
	for k := range asMap(sc["properties"]) {
		known[k] = true
	}
	if parts, ok := sc["allOf"].([]any); ok {
		for _, p := range parts {
			for k := range s.knownProperties(s.deref(p)) {
				known[k] = true
			}
		}
	}
	return known
}

func (s *Spec) allowsExtra(sc map[string]any) bool {
	if ap, ok := sc["additionalProperties"]; ok && ap != false {
		return true
	}
	if parts, ok := sc["allOf"].([]any); ok {
		for _, p := range parts {
			if ap, ok := s.deref(p)["additionalProperties"]; ok && ap != false {
				return true
			}
		}
	}
	return false
}

func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return "integer"
		}
		if f, err := v.Float64(); err == nil && f == math.Trunc(f) {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func typeMatches(want any, v any) bool {
	got := jsonType(v)
	var types []string
	switch w := want.(type) {
	case nil:
		return true
	case string:
		types = []string{w}
	case []any:
		for _, t := range w {
			types = append(types, fmt.Sprint(t))
		}
	}
	for _, t := range types {
		if t == got || t == "number" && got == "integer" {
			return true
		}
	}
	return false
}
