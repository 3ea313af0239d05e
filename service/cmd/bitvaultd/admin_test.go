package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"
)

// adminCall sends a JSON request to the stack and decodes a JSON answer into out (if not
// nil); it returns the status.
func adminCall(t *testing.T, s *stack, method, path, bearer string, body, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return resp.StatusCode
}

// adminUpload goes through the upload protocol as bearer; it returns the status of the
// first step that failed, or of the commit.
func adminUpload(t *testing.T, s *stack, bearer, path string, content []byte) int {
	t.Helper()
	var up declaredUpload
	if code := adminCall(t, s, "POST", "/v1/files", bearer, map[string]any{"path": path, "size": len(content), "blake3": blake3Hex(content)}, &up); code != http.StatusCreated {
		return code
	}
	up.put(t, content)
	return adminCall(t, s, "POST", "/v1/files/commit", bearer, map[string]any{"upload_id": up.UploadID}, nil)
}

// TestStackAdminAndShares: bitvaultd's production wiring serves the admin API (owners and
// admins only; quota enforced at upload start; usage; audit log) and lets an editor share
// grant writes through the files API; every exchange matches service/api/openapi.yaml.
func TestStackAdminAndShares(t *testing.T) {
	s := newStack(t, "fs")
	if code := adminCall(t, s, "POST", "/v1/tenants", bootstrap, map[string]any{"slug": "acme", "name": "Acme", "owner": map[string]any{"email": "owner@acme.example", "password": "owner-password-1"}}, nil); code != http.StatusCreated {
		t.Fatalf("POST /v1/tenants = %d", code)
	}
	login := func(email, password string) string {
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if code := adminCall(t, s, "POST", "/v1/auth/login", "", map[string]any{"tenant": "acme", "email": email, "password": password}, &tok); code != http.StatusOK {
			t.Fatalf("login %s = %d", email, code)
		}
		return tok.AccessToken
	}
	owner := login("owner@acme.example", "owner-password-1")
	var viewerUser struct{ ID string }
	if code := adminCall(t, s, "POST", "/v1/admin/users", owner, map[string]any{"email": "viewer@acme.example", "password": "viewer-password-1", "role": "viewer"}, &viewerUser); code != http.StatusCreated {
		t.Fatalf("POST /v1/admin/users = %d", code)
	}
	viewer := login("viewer@acme.example", "viewer-password-1")
	for _, path := range []string{"/v1/admin/quota", "/v1/admin/usage", "/v1/admin/flags", "/v1/admin/users", "/v1/admin/audit"} {
		if code := adminCall(t, s, "GET", path, viewer, nil, nil); code != http.StatusForbidden {
			t.Errorf("viewer GET %s = %d, want 403", path, code)
		}
		if code := adminCall(t, s, "GET", path, owner, nil, nil); code != http.StatusOK {
			t.Errorf("owner GET %s = %d, want 200", path, code)
		}
	}

	// An editor share lets the tenant viewer write in the folder, and only there.
	var team struct{ ID string }
	if code := adminCall(t, s, "POST", "/v1/folders", owner, map[string]any{"path": "team"}, &team); code != http.StatusCreated {
		t.Fatalf("POST /v1/folders = %d", code)
	}
	if code := adminCall(t, s, "POST", "/v1/nodes/"+team.ID+"/shares", owner, map[string]any{"user_id": viewerUser.ID, "role": "editor"}, nil); code != http.StatusCreated {
		t.Fatalf("share = %d", code)
	}
	if code := adminUpload(t, s, viewer, "team/notes.txt", []byte("12345")); code != http.StatusCreated {
		t.Errorf("viewer upload into the shared folder = %d, want 201", code)
	}
	if code := adminUpload(t, s, viewer, "notes.txt", []byte("12345")); code != http.StatusForbidden {
		t.Errorf("viewer upload outside = %d, want 403", code)
	}

	// Quota: 8 bytes; 5 are used, 4 more are refused before any bytes move.
	if code := adminCall(t, s, "PUT", "/v1/admin/quota", owner, map[string]any{"bytes_limit": 8, "files_limit": nil}, nil); code != http.StatusOK {
		t.Fatalf("PUT quota = %d", code)
	}
	if code := adminUpload(t, s, owner, "big.txt", []byte("6789")); code != http.StatusRequestEntityTooLarge {
		t.Errorf("upload over quota = %d, want 413", code)
	}
	var usage struct {
		BytesStored      int64 `json:"bytes_stored"`
		Files            int64 `json:"files"`
		UploadsThisMonth int64 `json:"uploads_this_month"`
	}
	adminCall(t, s, "GET", "/v1/admin/usage", owner, nil, &usage)
	if usage.BytesStored != 5 || usage.Files != 1 || usage.UploadsThisMonth != 1 {
		t.Errorf("usage %+v, want 5 bytes, 1 file, 1 upload", usage)
	}
	adminCall(t, s, "PUT", "/v1/admin/flags", owner, map[string]any{"flags": map[string]any{"beta": true}}, nil)
	if code := adminCall(t, s, "PATCH", "/v1/admin/users/"+viewerUser.ID, owner, map[string]any{"role": "member"}, nil); code != http.StatusOK {
		t.Errorf("PATCH user = %d", code)
	}
	var page struct {
		Entries []struct {
			EventType string `json:"event_type"`
		} `json:"entries"`
	}
	adminCall(t, s, "GET", "/v1/admin/audit?limit=50", owner, nil, &page)
	seen := map[string]bool{}
	for _, e := range page.Entries {
		seen[e.EventType] = true
	}
	for _, typ := range []string{"auth.login.succeeded", "user.added", "share.created", "quota.changed", "flag.changed", "user.role_changed"} {
		if !seen[typ] {
			t.Errorf("audit log has no %s: %+v", typ, page.Entries)
		}
	}
	if n := s.checkTraffic(t); n < 10 {
		t.Errorf("only %d routes exercised", n)
	}
}
