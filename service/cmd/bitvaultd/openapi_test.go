package main

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/bitvault/bitvault/service/api"
)

// TestOpenAPIMatchesRoutes keeps service/api/openapi.yaml and bitvaultd's routes one source
// of truth: the routes of the mux bitvaultd builds (production wiring, filesystem backend so
// that /v1/blobs/ is there too; the probes included, the catch-all "/" excluded), method by
// method, are exactly the operations the document describes.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := newStack(t, "fs")
	doc, err := api.Parse(api.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}

	registered := map[string]bool{} // "METHOD pattern"
	for _, p := range muxPatterns(t, s.Mux) {
		if p == "/" {
			continue
		}
		methods, ok := routeMethods(s.Mux, p)
		if !ok {
			t.Errorf("route %q answers any method: restrict it (apierror.Methods or a method pattern) so that it can be documented", p)
			continue
		}
		_, path := splitPattern(p)
		for _, m := range methods {
			registered[m+" "+muxPath(path)] = true
		}
	}
	if len(registered) < 10 {
		t.Fatalf("only %d routes registered: %v", len(registered), registered)
	}

	documented := map[string]bool{}
	for _, r := range doc.Routes() {
		if r.Method == "HEAD" {
			t.Errorf("%s %s: HEAD is implied by GET, do not document it", r.Method, r.Path)
		}
		documented[r.Method+" "+muxPath(r.Pattern)] = true
		if want := muxPath(r.Pattern); r.Pattern == r.Path && want != r.Path {
			t.Errorf("%s: document it as %s", r.Path, want)
		}
	}

	var missing, extra []string
	for k := range registered {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !registered[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	for _, k := range missing {
		t.Errorf("bitvaultd serves %s, which service/api/openapi.yaml does not describe", k)
	}
	for _, k := range extra {
		t.Errorf("service/api/openapi.yaml describes %s, which bitvaultd does not serve", k)
	}
	if !t.Failed() {
		t.Logf("%d routes, documented and registered", len(registered))
	}
}

// muxPath normalizes a mux pattern's path for comparison with the document: "{name...}"
// wildcards are written "{name}" in OpenAPI.
func muxPath(p string) string {
	return strings.ReplaceAll(p, "...}", "}")
}

// TestMuxPatternsFindsEveryRoute checks the reflection in muxPatterns on a mux whose
// patterns are known.
func TestMuxPatternsFindsEveryRoute(t *testing.T) {
	want := []string{"/", "/a", "/a/{id}", "/b/", "GET /c/{rest...}", "POST /c/{rest...}", "DELETE /d/{$}"}
	for i := range 40 { // enough children for the routing tree's maps, not just slices
		want = append(want, fmt.Sprintf("/many/m%02d", i))
	}
	mux := httpMux(want)
	got := muxPatterns(t, mux)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("muxPatterns = %q\nwant %q", got, want)
	}
	if m, ok := routeMethods(mux, "GET /c/{rest...}"); !ok || !slices.Equal(m, []string{"GET"}) {
		t.Errorf("routeMethods(GET /c/{rest...}) = %v, %v", m, ok)
	}
}

func httpMux(patterns []string) *http.ServeMux {
	mux := http.NewServeMux()
	for _, p := range patterns {
		mux.HandleFunc(p, func(http.ResponseWriter, *http.Request) {})
	}
	return mux
}
