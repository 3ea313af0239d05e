package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// ReferencePath is where the reference generated from the schema is kept,
// relative to the repository root.
const ReferencePath = "docs/bvrelease-yaml.md"

// Reference renders schema.json as Markdown: a table per section (the top
// level, then every object and list of objects, depth first), each field with
// its type and constraints, whether it is required, its default and its
// description, and below a table the rules that tie fields together. It fails
// on a schema keyword it does not know how to render, so the document never
// silently leaves a rule out.
func Reference() ([]byte, error) {
	var root map[string]any
	d := json.NewDecoder(bytes.NewReader(schemaJSON))
	d.UseNumber()
	if err := d.Decode(&root); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# bvrelease.yaml reference\n\n")
	fmt.Fprintf(&b, "<!-- Generated from release/config/schema.json by `go test ./release/config -run TestReference -update`. Do not edit. -->\n\n")
	fmt.Fprintf(&b, "%s\n\n", root["description"])
	fmt.Fprintf(&b, "The same rules as a JSON Schema (draft 2020-12): `bvrelease config schema`; check a file with `bvrelease config validate`, see it with every default applied with `bvrelease config show`.\n")
	if err := section(&b, "Top level", "", "", root); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// section writes the table of object schema s at path (dotted, "" for the
// root; ptr is its JSON pointer in the schema), then the sections of its
// object-valued fields.
func section(b *bytes.Buffer, title, path, ptr string, s map[string]any) error {
	if err := known(path, s, "$schema", "$id", "title", "description", "type", "additionalProperties", "required", "properties",
		"oneOf", "not", "dependentRequired", "dependentSchemas"); err != nil {
		return err
	}
	fmt.Fprintf(b, "\n## %s\n\n", title)
	if path != "" {
		fmt.Fprintf(b, "%s\n\n", s["description"])
	}
	props, _ := s["properties"].(map[string]any)
	names := order(ptr+"/properties", props)
	required := strs(s["required"])
	fmt.Fprintf(b, "| Field | Type | Required | Default | Description |\n|---|---|---|---|---|\n")
	type sub struct {
		title, path, ptr string
		s                map[string]any
	}
	var subs []sub
	for _, name := range names {
		p := props[name].(map[string]any)
		fp := join(path, name)
		typ, err := typeOf(fp, p)
		if err != nil {
			return err
		}
		desc := fmt.Sprint(p["description"])
		obj, optr := p, ptr+"/properties/"+name
		suffix := ""
		if p["type"] == "array" {
			if items, ok := p["items"].(map[string]any); ok && items["type"] == "object" {
				obj, optr, suffix = items, optr+"/items", "[]"
			}
		}
		if obj["type"] == "object" && obj["properties"] != nil {
			t := "`" + fp + suffix + "`"
			desc += fmt.Sprintf(" See [%s](#%s).", t, anchor(t))
			if suffix != "" {
				// the list's own description is on this row; the section describes one item
				obj = withDescription(obj, "Each item of `"+fp+"`.")
			}
			subs = append(subs, sub{t, fp + suffix, optr, obj})
		}
		req := "no"
		if slices.Contains(required, name) {
			req = "yes"
		}
		def := ""
		if v, ok := p["default"]; ok {
			def = "`" + compact(v) + "`"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", name, cell(typ), req, cell(def), cell(desc))
	}
	if notes := rules(ptr, s); len(notes) > 0 {
		b.WriteString("\n")
		for _, n := range notes {
			fmt.Fprintf(b, "- %s\n", n)
		}
	}
	for _, sb := range subs {
		if err := section(b, sb.title, sb.path, sb.ptr, sb.s); err != nil {
			return err
		}
	}
	return nil
}

// typeOf describes a field's type and constraints.
func typeOf(path string, p map[string]any) (string, error) {
	if err := known(path, p, "description", "type", "enum", "default", "pattern", "minLength", "minItems", "minProperties",
		"items", "additionalProperties", "properties", "required", "oneOf", "not", "dependentRequired", "dependentSchemas",
		"format", "examples"); err != nil {
		return "", err
	}
	var parts []string
	switch p["type"] {
	case "array":
		items, _ := p["items"].(map[string]any)
		if items["type"] == "object" {
			parts = append(parts, "list of objects")
		} else {
			it, err := typeOf(path+"[]", items)
			if err != nil {
				return "", err
			}
			parts = append(parts, "list of "+it)
		}
		if n, ok := p["minItems"]; ok {
			parts = append(parts, fmt.Sprintf("at least %v", n))
		}
	case "object":
		if p["properties"] != nil {
			parts = append(parts, "object")
			break
		}
		vt := "any"
		if ap, ok := p["additionalProperties"].(map[string]any); ok {
			var err error
			if vt, err = typeOf(path+".*", ap); err != nil {
				return "", err
			}
		}
		if strings.Contains(vt, ",") {
			vt = "(" + vt + ")"
		}
		parts = append(parts, "map of string → "+vt)
		if n, ok := p["minProperties"]; ok {
			parts = append(parts, fmt.Sprintf("at least %v", n))
		}
	default:
		parts = append(parts, fmt.Sprint(p["type"]))
		if e, ok := p["enum"].([]any); ok {
			var vs []string
			for _, v := range e {
				vs = append(vs, "`"+compact(v)+"`")
			}
			parts = append(parts, "one of "+strings.Join(vs, ", "))
		}
		if n, ok := p["minLength"]; ok && fmt.Sprint(n) == "1" {
			parts = append(parts, "non-empty")
		}
		if f, ok := p["format"]; ok {
			parts = append(parts, fmt.Sprintf("%v format", f))
		}
		if pat, ok := p["pattern"]; ok {
			parts = append(parts, fmt.Sprintf("matching `%v`", pat))
		}
		if n, ok := p["not"].(map[string]any); ok {
			c, ok := n["const"]
			if !ok || len(n) != 1 {
				return "", fmt.Errorf("%s: 'not' other than a const is not rendered", path)
			}
			parts = append(parts, "not `"+compact(c)+"`")
		}
	}
	return strings.Join(parts, ", "), nil
}

// rules describes the keywords that tie an object's fields together.
func rules(ptr string, s map[string]any) []string {
	var out []string
	if oneOf, ok := s["oneOf"].([]any); ok {
		var alts []string
		for _, o := range oneOf {
			alts = append(alts, codes(strs(o.(map[string]any)["required"])))
		}
		out = append(out, "Exactly one of "+strings.Join(alts, ", ")+".")
	}
	if not, ok := s["not"].(map[string]any); ok {
		out = append(out, "Not "+strings.Join(quoted(strs(not["required"])), " and ")+" together.")
	}
	if dr, ok := s["dependentRequired"].(map[string]any); ok {
		for _, k := range order(ptr+"/dependentRequired", dr) {
			out = append(out, fmt.Sprintf("`%s` requires %s.", k, codes(strs(dr[k]))))
		}
	}
	if ds, ok := s["dependentSchemas"].(map[string]any); ok {
		for _, k := range order(ptr+"/dependentSchemas", ds) {
			var alts []string
			for _, a := range ds[k].(map[string]any)["anyOf"].([]any) {
				alts = append(alts, codes(strs(a.(map[string]any)["required"])))
			}
			out = append(out, fmt.Sprintf("`%s` requires one of %s.", k, strings.Join(alts, ", ")))
		}
	}
	return out
}

// known fails when s uses a keyword outside allowed.
func known(path string, s map[string]any, allowed ...string) error {
	for k := range s {
		if !slices.Contains(allowed, k) {
			return fmt.Errorf("schema %s: keyword %q is not rendered into the reference; teach release/config/reference.go", cmpOr(path, "(root)"), k)
		}
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// order lists the keys of m, the object at JSON pointer ptr in the schema, in
// the order schema.json writes them.
func order(ptr string, m map[string]any) []string {
	names := slices.Clone(keyOrder()[ptr])
	if len(names) != len(m) {
		panic(fmt.Sprintf("schema %s: key order out of step", ptr))
	}
	return names
}

// keyOrder maps the JSON pointer of every object in schema.json to its keys
// in order.
var keyOrder = sync.OnceValue(func() map[string][]string {
	out := map[string][]string{}
	d := json.NewDecoder(bytes.NewReader(schemaJSON))
	var walk func(ptr string) error
	walk = func(ptr string) error {
		t, err := d.Token()
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('{'):
			out[ptr] = []string{}
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return err
				}
				key := k.(string)
				out[ptr] = append(out[ptr], key)
				if err := walk(ptr + "/" + key); err != nil {
					return err
				}
			}
			_, err = d.Token() // }
		case json.Delim('['):
			for i := 0; d.More(); i++ {
				if err := walk(fmt.Sprintf("%s/%d", ptr, i)); err != nil {
					return err
				}
			}
			_, err = d.Token() // ]
		}
		return err
	}
	if err := walk(""); err != nil {
		panic(err) // the embedded schema is tested
	}
	return out
})

func strs(v any) []string {
	var out []string
	a, _ := v.([]any)
	for _, x := range a {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func quoted(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "`" + s + "`"
	}
	return out
}

func codes(ss []string) string { return strings.Join(quoted(ss), " and ") }

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func withDescription(s map[string]any, d string) map[string]any {
	c := make(map[string]any, len(s))
	for k, v := range s {
		c[k] = v
	}
	c["description"] = d
	return c
}

func compact(v any) string {
	out, _ := json.Marshal(v)
	return strings.ReplaceAll(string(out), ",", ", ")
}

// cell escapes a table cell: pipes (even in code spans) and line breaks.
func cell(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s)
}

// anchor is GitHub's id for a heading.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}
