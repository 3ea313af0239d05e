package config

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"
)

// schemaJSON is bvrelease.yaml as a JSON Schema (draft 2020-12): every field
// of Config with its type, constraints, default and description. A test keeps
// it in step with the Go types; docs/bvrelease-yaml.md is generated from it.
//
//go:embed schema.json
var schemaJSON []byte

// SchemaID is the schema's $id.
const SchemaID = "https://github.com/bitvault/bitvault/release/config/schema.json"

// Schema returns the JSON Schema of bvrelease.yaml.
func Schema() []byte { return bytes.Clone(schemaJSON) }

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(SchemaID, doc); err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	s, err := c.Compile(SchemaID)
	if err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	return s, nil
})

// schemaTree is schema.json decoded, to look up what a location expects.
var schemaTree = sync.OnceValue(func() map[string]any {
	var m map[string]any
	if err := json.Unmarshal(schemaJSON, &m); err != nil {
		panic(err) // the embedded schema is tested
	}
	return m
})

// ValidateSchema checks the configuration file at path (its content data)
// against the JSON Schema; every violation is an *Error with the line and
// column of the value at fault (or of the mapping missing a field), joined.
// Scalars are read as the Go types read them: a scalar where the schema wants
// a string is that string (node: 22 is "22").
func ValidateSchema(path string, data []byte) error {
	s, err := compiled()
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return yamlError(path, data, err)
	}
	if len(doc.Content) == 0 {
		return &Error{File: path, Msg: "the file is empty; it needs at least version, registry, platforms and artifacts"}
	}
	root := doc.Content[0]
	inst, err := instance(root, schemaTree())
	if err != nil {
		return &Error{File: path, Msg: err.Error()}
	}
	verr := s.Validate(inst)
	if verr == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(verr, &ve) {
		return verr
	}
	p := message.NewPrinter(language.English)
	var out []error
	for _, l := range leaves(ve) {
		loc := l.InstanceLocation
		if ap, ok := l.ErrorKind.(*kind.AdditionalProperties); ok && len(ap.Properties) == 1 {
			// point at the unknown field itself, as the Go decoder does
			loc = append(slices.Clip(loc), ap.Properties[0])
		}
		field := loc
		if r, ok := l.ErrorKind.(*kind.Required); ok && len(r.Missing) == 1 {
			// name the missing field; the position stays that of its parent
			field = append(slices.Clip(loc), r.Missing[0])
		}
		e := &Error{File: path, Field: fieldName(field), Msg: describe(l, p)}
		if n := nodeAt(&doc, loc); n != nil {
			e.Line, e.Column = n.Line, n.Column
		} else {
			e.Line, e.Column = root.Line, root.Column
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b error) int {
		x, y := a.(*Error), b.(*Error)
		if x.Line != y.Line {
			return x.Line - y.Line
		}
		return x.Column - y.Column
	})
	return errors.Join(out...)
}

// leaves are the errors that say what is wrong: those without causes, and
// oneOf/anyOf/not as a whole (their causes only explain which branch failed).
func leaves(e *jsonschema.ValidationError) []*jsonschema.ValidationError {
	switch e.ErrorKind.(type) {
	case *kind.OneOf, *kind.AnyOf, *kind.Not:
		return []*jsonschema.ValidationError{e}
	}
	if len(e.Causes) == 0 {
		return []*jsonschema.ValidationError{e}
	}
	var out []*jsonschema.ValidationError
	for _, c := range e.Causes {
		out = append(out, leaves(c)...)
	}
	return out
}

func describe(e *jsonschema.ValidationError, p *message.Printer) string {
	msg := e.ErrorKind.LocalizedString(p)
	switch k := e.ErrorKind.(type) {
	case *kind.OneOf:
		if len(k.Subschemas) == 0 && len(e.InstanceLocation) > 0 && e.InstanceLocation[0] == "secrets" {
			return "set exactly one of env (an environment variable name) or file (a path)"
		}
		if len(k.Subschemas) > 1 && len(e.InstanceLocation) > 0 && e.InstanceLocation[0] == "secrets" {
			return "set exactly one of env or file, not both"
		}
	case *kind.Not:
		if len(e.InstanceLocation) > 0 && e.InstanceLocation[0] == "signing" {
			return "give identity or identity_regexp, not both"
		}
		if len(e.InstanceLocation) == 3 && e.InstanceLocation[0] == "artifacts" {
			return "'latest' is never a name or a tag here; pick a real name"
		}
	case *kind.AnyOf:
		if len(e.InstanceLocation) > 0 && e.InstanceLocation[0] == "signing" {
			return "issuer without identity or identity_regexp"
		}
	case *kind.AdditionalProperties:
		if len(k.Properties) == 1 {
			var known []string
			if props, ok := schemaAt(e.InstanceLocation)["properties"].(map[string]any); ok {
				for name := range props {
					known = append(known, name)
				}
			}
			slices.Sort(known)
			return "unknown field; known fields here: " + strings.Join(known, ", ")
		}
	}
	var causes []string
	for _, c := range e.Causes {
		for _, l := range leaves(c) {
			causes = append(causes, l.ErrorKind.LocalizedString(p))
		}
	}
	if len(causes) > 0 {
		msg += " (" + strings.Join(causes, "; ") + ")"
	}
	return msg
}

// fieldName writes an instance location the way the other errors name
// fields: artifacts[0].build_args.X.
func fieldName(loc []string) string {
	var b strings.Builder
	for _, p := range loc {
		if _, err := strconv.Atoi(p); err == nil {
			fmt.Fprintf(&b, "[%s]", p)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}

// instance converts a YAML node into the JSON value the schema validates,
// guided by the schema (s, nil where it says nothing) for scalars: a non-null
// scalar where a string is wanted is its text, as yaml.v3 decodes it into a
// Go string.
func instance(n *yaml.Node, s map[string]any) (any, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return instance(n.Alias, s)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" {
				return nil, fmt.Errorf("line %d: merge keys (<<) are not supported", k.Line)
			}
			sub, err := instance(v, subschema(s, k.Value))
			if err != nil {
				return nil, err
			}
			m[k.Value] = sub
		}
		return m, nil
	case yaml.SequenceNode:
		items, _ := s["items"].(map[string]any)
		a := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := instance(c, items)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		return a, nil
	case yaml.ScalarNode:
		if s["type"] == "string" && n.Tag != "!!null" {
			return n.Value, nil
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, err
		}
		switch x := v.(type) {
		case int:
			return json.Number(strconv.Itoa(x)), nil
		case int64:
			return json.Number(strconv.FormatInt(x, 10)), nil
		case uint64:
			return json.Number(strconv.FormatUint(x, 10)), nil
		case float64:
			return json.Number(strconv.FormatFloat(x, 'g', -1, 64)), nil
		}
		return v, nil
	}
	return nil, nil
}

// schemaAt is the (sub)schema describing the value at an instance location.
func schemaAt(loc []string) map[string]any {
	s := schemaTree()
	for _, p := range loc {
		if items, ok := s["items"].(map[string]any); ok {
			if _, err := strconv.Atoi(p); err == nil {
				s = items
				continue
			}
		}
		s = subschema(s, p)
	}
	return s
}

// subschema is what s says about the property key.
func subschema(s map[string]any, key string) map[string]any {
	if props, ok := s["properties"].(map[string]any); ok {
		if p, ok := props[key].(map[string]any); ok {
			return p
		}
	}
	ap, _ := s["additionalProperties"].(map[string]any)
	return ap
}
