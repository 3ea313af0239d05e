package api

import (
	"strings"
	"testing"
)

func TestSpecChecks(t *testing.T) {
	s, err := LoadSpec(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	const node = `{"id":"i","type":"file","name":"a","parent_id":null,"size":1,"created_by":"u","created_at":"t","updated_at":"t"}`
	const errBody = `{"code":"not_found","message":"m","request_id":"r"}`
	for _, tc := range []struct {
		method, pattern string
		status          int
		body            string
		err             string // "" for valid
	}{
		{"GET", "/v1/nodes/{id}", 200, node, ""},
		{"HEAD", "/v1/nodes/{id}", 200, "", ""},
		{"GET", "/v1/nodes/{id}", 200, strings.Replace(node, `"size":1`, `"size":"1"`, 1), "$.size is string, want type integer"},
		{"GET", "/v1/nodes/{id}", 200, strings.Replace(node, `"name":"a",`, ``, 1), "$.name is required"},
		{"GET", "/v1/nodes/{id}", 200, strings.Replace(node, `"size":1`, `"size":1,"colour":"red"`, 1), "$.colour is not documented"},
		{"GET", "/v1/nodes/{id}", 200, strings.Replace(node, `"type":"file"`, `"type":"link"`, 1), "not one of"},
		{"GET", "/v1/nodes/{id}", 404, errBody, ""},
		{"GET", "/v1/nodes/{id}", 418, errBody, ""}, // default
		{"GET", "/v1/nodes/{id}", 404, `{"code":"not_found"}`, "$.message is required"},
		{"GET", "/v1/nodes/{id}", 201, node, "answer 201 is not documented"},
		{"PATCH", "/v1/nodes/{id}", 405, strings.Replace(errBody, "not_found", "method_not_allowed", 1), ""},
		{"GET", "/v1/nope", 200, "{}", "/v1/nope is not documented"},
		{"POST", "/v1/files/commit", 409, `{"code":"version_conflict","message":"m","request_id":"r","conflict":{"node":` + node + `,"version":{"id":"v","node_id":"i","number":1,"size":1,"blake3":"b","created_by":"u","base_version_id":null,"created_at":"t"},"deduplicated":false,"seq":3}}`, ""},
		{"POST", "/v1/files/commit", 409, `{"code":"version_conflict","message":"m","request_id":"r","conflict":{}}`, "matches none of oneOf"},
		{"GET", "/v1/blobs/{key...}", 200, "bytes", ""},
	} {
		ct := "application/json"
		if tc.pattern == "/v1/blobs/{key...}" {
			ct, tc.pattern = "application/octet-stream", "/v1/blobs/"
		}
		err := s.CheckResponse(tc.method, tc.pattern, tc.status, ct, []byte(tc.body))
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s %s %d: %v", tc.method, tc.pattern, tc.status, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s %s %d: %v, want %q", tc.method, tc.pattern, tc.status, err, tc.err)
		}
	}
	if err := s.CheckRequest("POST", "/v1/files", []byte(`{"path":"/a","size":1,"blake3":"x","extra":1}`)); err == nil || !strings.Contains(err.Error(), "$.extra is not documented") {
		t.Errorf("request with an extra field: %v", err)
	}
	if err := s.CheckRequest("POST", "/v1/files", nil); err == nil {
		t.Error("a missing required body passed")
	}
	if err := s.CheckRequest("POST", "/v1/nodes/{id}/copy", nil); err != nil {
		t.Errorf("an optional body left out: %v", err)
	}
}
