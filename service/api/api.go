// Package api holds the contract of bitvaultd's HTTP API: openapi.yaml, OpenAPI 3.1.
//
// The document is the one description of the API's routes: cmd/bitvaultd's
// TestOpenAPIMatchesRoutes checks it against the routes bitvaultd registers (every
// registered method and path is documented, every documented one registered), and this
// package's tests check that it is well-formed (YAML, version 3.1, every reference
// resolves, operation ids unique, every operation answers errors with the Error schema).
package api

import (
	_ "embed"
	"fmt"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// OpenAPI is openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

// Route is one documented operation: its method and path as written in the document, and
// the http.ServeMux pattern serving it (the path's x-mux-pattern, else the path).
type Route struct {
	Method string
	Path   string
	// Pattern is the mux pattern: the path, or its x-mux-pattern (e.g. "/v1/blobs/" for
	// "/v1/blobs/{key}", whose key spans slashes).
	Pattern string
}

// Methods documented in path items, upper-cased.
var methods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// Document is the part of the OpenAPI document the route checks read.
type Document struct {
	OpenAPI string                          `yaml:"openapi"`
	Paths   map[string]map[string]yaml.Node `yaml:"paths"`
}

// Parse parses an OpenAPI document.
func Parse(b []byte) (*Document, error) {
	var d Document
	if err := yaml.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return &d, nil
}

// Routes lists the operations of the document, sorted by pattern then method.
func (d *Document) Routes() []Route {
	var out []Route
	for p, item := range d.Paths {
		pattern := p
		if n, ok := item["x-mux-pattern"]; ok && n.Kind == yaml.ScalarNode {
			pattern = n.Value
		}
		for _, m := range methods {
			if _, ok := item[m]; ok {
				out = append(out, Route{Method: strings.ToUpper(m), Path: p, Pattern: pattern})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Pattern != out[j].Pattern {
			return out[i].Pattern < out[j].Pattern
		}
		return out[i].Method < out[j].Method
	})
	return out
}
