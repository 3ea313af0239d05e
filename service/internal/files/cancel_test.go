package files_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
)

// cancelReq is DELETE /v1/uploads/{id}.
func (e *mpEnv) cancelReq(u user, id string) response {
	e.t.Helper()
	return e.do("DELETE", "/v1/uploads/"+id, u.token, nil)
}

// wantCancelled checks what a cancelled upload looks like: status cancelled without parts,
// finished, commit and part uploads refused with "upload was cancelled", nothing staged.
func (e *mpEnv) wantCancelled(u user, id string) {
	e.t.Helper()
	if st := e.uploadState(u, id); st.Status != files.StatusCancelled || len(st.Parts) != 0 {
		e.t.Errorf("state after cancel = %s with %d parts, want cancelled without parts", st.Status, len(st.Parts))
	}
	if n := e.count("SELECT count(*) FROM uploads WHERE id = $1 AND status = 'cancelled' AND finished_at IS NOT NULL", id); n != 1 {
		e.t.Errorf("upload %s: not finished as cancelled in the database", id)
	}
	r := e.want(e.commitReq(u, id, ""), 409, apierror.CodeConflict)
	if !strings.Contains(string(r.Body), "upload was cancelled") {
		e.t.Errorf("commit of a cancelled upload: %s, want \"upload was cancelled\"", r.Body)
	}
	e.want(e.do("POST", "/v1/uploads/"+id+"/parts", u.token, jsonObj{"part_numbers": []int{1}}), 409, apierror.CodeConflict)
	e.wantStagingEmpty()
}

// TestCancelUpload: DELETE /v1/uploads/{id} cancels a pending upload, single PUT or
// multipart, whatever was sent of it, and again (idempotent).
func TestCancelUpload(t *testing.T) {
	e := newMultipartEnv(t)
	owner, member, _ := e.tenant("acme")
	content := randomContent(t, mpFileSize)
	small := []byte("small content")

	tests := []struct {
		name string
		// start begins an upload as u and sends some of it; it returns the upload id.
		start func(t *testing.T, u user) string
		by    func() (uploader, canceller user)
		times int
	}{
		{"single PUT, bytes sent", func(t *testing.T, u user) string {
			up := e.startUpload(u, "/single.txt", small)
			if code := e.Put(up.Upload, small); code != 200 {
				t.Fatalf("PUT: %d", code)
			}
			if objects, _ := e.staging(); len(objects) != 1 {
				t.Fatalf("staging objects %v, want the upload's", objects)
			}
			return up.ID
		}, func() (user, user) { return owner, owner }, 1},
		{"single PUT, nothing sent", func(t *testing.T, u user) string {
			return e.startUpload(u, "/nothing.txt", small).ID
		}, func() (user, user) { return member, member }, 1},
		{"multipart, some parts sent", func(t *testing.T, u user) string {
			up := e.startMultipart(u, "/big.bin", len(content), blake3Hex(content))
			e.putParts(u, up, content, 1, 3)
			if _, uploads := e.staging(); len(uploads) != 1 {
				t.Fatalf("multipart uploads in staging: %v, want 1", uploads)
			}
			return up.ID
		}, func() (user, user) { return member, member }, 1},
		{"multipart, all parts sent, twice", func(t *testing.T, u user) string {
			up := e.startMultipart(u, "/twice.bin", len(content), blake3Hex(content))
			e.putParts(u, up, content, 1, 2, 3)
			return up.ID
		}, func() (user, user) { return owner, owner }, 2},
		{"member's upload by the owner (an admin)", func(t *testing.T, u user) string {
			up := e.startMultipart(u, "/members.bin", len(content), blake3Hex(content))
			e.putParts(u, up, content, 2)
			return up.ID
		}, func() (user, user) { return member, owner }, 1},
		{"pending past its expiry, before the GC", func(t *testing.T, u user) string {
			up := e.startUpload(u, "/late.txt", small)
			e.Put(up.Upload, small)
			e.clock.Advance(files.DefaultUploadTTL + time.Second)
			return up.ID
		}, func() (user, user) { return owner, owner }, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uploader, canceller := tt.by()
			id := tt.start(t, uploader)
			for range tt.times {
				e.want(e.cancelReq(canceller, id), 204, "")
			}
			e.wantCancelled(uploader, id)
		})
	}
	// Nothing was left for the GC.
	e.clock.Advance(files.DefaultMultipartTTL + time.Second)
	if rep, err := e.files.CollectGarbage(context.Background(), owner.p.TenantID); err != nil || rep.Uploads != 0 {
		t.Errorf("CollectGarbage = %+v, %v; want no upload to sweep", rep, err)
	}
}

// TestCancelUploadRefused: who may not cancel what.
func TestCancelUploadRefused(t *testing.T) {
	e := newMultipartEnv(t)
	owner, member, viewer := e.tenant("acme")
	other, _, _ := e.tenant("other")
	content := randomContent(t, mpFileSize)
	up := e.startMultipart(owner, "/f.bin", len(content), blake3Hex(content))
	e.putParts(owner, up, content, 1)
	committed := e.startUpload(owner, "/done.txt", []byte("done"))
	e.Put(committed.Upload, []byte("done"))
	e.want(e.commitReq(owner, committed.ID, ""), 201, "")
	rejected := e.startUpload(owner, "/wrong.txt", []byte("declared"))
	e.Put(rejected.Upload, []byte("DECLARED"))
	e.want(e.commitReq(owner, rejected.ID, ""), 422, "")

	tests := []struct {
		name   string
		u      user
		id     string
		status int
		code   string
	}{
		{"viewer", viewer, up.ID, 403, apierror.CodePermissionDenied},
		{"another member (not the uploader)", member, up.ID, 403, apierror.CodePermissionDenied},
		{"another tenant", other, up.ID, 404, apierror.CodeNotFound},
		{"unknown upload", owner, "00000000-0000-4000-8000-000000000000", 404, apierror.CodeNotFound},
		{"not an id", owner, "nope", 404, apierror.CodeNotFound},
		{"committed upload", owner, committed.ID, 409, apierror.CodeConflict},
		{"rejected upload", owner, rejected.ID, 409, apierror.CodeConflict},
		{"no credentials", user{}, up.ID, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.want(e.cancelReq(tt.u, tt.id), tt.status, tt.code)
		})
	}
	// Still pending, its part still there: resumable and committable by its uploader.
	if st := e.uploadState(owner, up.ID); st.Status != "pending" || len(st.Parts) != 1 {
		t.Fatalf("state after refused cancels = %s with %d parts", st.Status, len(st.Parts))
	}
	e.putParts(owner, up, content, 2, 3)
	e.want(e.commitReq(owner, up.ID, ""), 201, "")
	e.want(e.cancelReq(owner, up.ID), 409, apierror.CodeConflict)
}

// TestCancelUploadQuota: a cancelled upload no longer counts toward the quota; the status
// CHECK still ties finished_at to a finished upload.
func TestCancelUploadQuota(t *testing.T) {
	ctx := context.Background()
	e := newMultipartEnv(t)
	owner, _, _ := e.tenant("acme")
	tenant := owner.p.TenantID
	if _, err := e.super.Exec(ctx, "INSERT INTO quotas (tenant_id, bytes_limit, files_limit) VALUES ($1, 100, 1)", tenant); err != nil {
		t.Fatal(err)
	}
	declare := func(path string, size int) response {
		return e.do("POST", "/v1/files", owner.token, jsonObj{"path": path, "size": size, "blake3": blake3Hex([]byte("x"))})
	}
	var pending upload
	e.want(declare("/a", 80), 201, "").Decode(t, &pending)
	e.want(declare("/b", 30), 413, apierror.CodeQuotaExceeded) // bytes and files
	e.want(e.cancelReq(owner, pending.ID), 204, "")
	e.want(declare("/b", 30), 201, "")

	if _, err := e.super.Exec(ctx, "UPDATE uploads SET finished_at = NULL WHERE id = $1", pending.ID); err == nil {
		t.Error("a cancelled upload without finished_at was accepted")
	}
	if _, err := e.super.Exec(ctx, "UPDATE uploads SET status = 'bogus' WHERE id = $1", pending.ID); err == nil {
		t.Error("an unknown status was accepted")
	}
}
