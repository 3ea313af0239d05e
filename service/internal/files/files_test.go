package files_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// TestUploadCommitDownload: the whole protocol on both backends: upload → commit → list →
// download returns the same bytes; a second version on the right base; old versions stay
// downloadable; one journal row and one outbox event per change.
func TestUploadCommitDownload(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend)
			owner, member, _ := e.tenant("acme")
			v1 := bytes.Repeat([]byte("first version\n"), 1000)

			up := e.startUpload(member, "/docs/report 2026.txt", v1)
			if up.Path != "/docs/report 2026.txt" || up.Upload.Method != http.MethodPut {
				t.Fatalf("upload = %+v", up)
			}
			staging := storage.StagingKey(member.p.TenantID, up.ID)
			if code := e.Put(up.Upload, v1); code != 200 {
				t.Fatalf("PUT = %d", code)
			}
			if !e.exists(staging) {
				t.Fatal("the staging object is not there after the PUT")
			}
			var r1 result
			e.want(e.commitReq(member, up.ID, ""), 201, "").Decode(t, &r1)
			if r1.Node.Path != "/docs/report 2026.txt" || r1.Node.Type != files.TypeFile || r1.Version.Number != 1 || r1.Version.Size != int64(len(v1)) ||
				r1.Version.BLAKE3 != blake3Hex(v1) || r1.Deduplicated || r1.Version.CreatedBy != member.p.UserID {
				t.Fatalf("commit = %+v", r1)
			}
			if e.exists(staging) {
				t.Error("the staging object is still there after the commit")
			}
			if !e.exists(storage.BlobKey(member.p.TenantID, blake3Hex(v1))) {
				t.Error("no blob at the content-addressed key")
			}
			// The upload is used up.
			e.want(e.commitReq(member, up.ID, ""), 409, apierror.CodeConflict)

			root := e.list(owner, "")
			if len(root) != 1 || root[0].Name != "docs" || root[0].Type != files.TypeFolder {
				t.Fatalf("root = %+v", root)
			}
			docs := e.list(owner, root[0].ID)
			if len(docs) != 1 || docs[0].ID != r1.Node.ID || docs[0].CurrentVersion == nil || docs[0].CurrentVersion.ID != r1.Version.ID || docs[0].Size != int64(len(v1)) {
				t.Fatalf("docs = %+v", docs)
			}
			got, h := e.download(owner, r1.Node.ID, "")
			if !bytes.Equal(got, v1) {
				t.Fatalf("downloaded %d bytes, not the uploaded ones", len(got))
			}
			if cd := h.Get("Content-Disposition"); !strings.Contains(cd, "report 2026.txt") {
				t.Errorf("Content-Disposition = %q", cd)
			}

			// A new version on the current base.
			v2 := []byte("second version\n")
			r2 := e.uploadFile(member, "docs/report 2026.txt", v2, r1.Version.ID)
			if r2.Node.ID != r1.Node.ID || r2.Version.Number != 2 || r2.Version.BaseVersionID == nil || *r2.Version.BaseVersionID != r1.Version.ID {
				t.Fatalf("second commit = %+v", r2)
			}
			if got, _ := e.download(owner, r1.Node.ID, ""); !bytes.Equal(got, v2) {
				t.Errorf("current content = %q, want v2", got)
			}
			if got, _ := e.download(owner, r1.Node.ID, r1.Version.ID); !bytes.Equal(got, v1) {
				t.Error("version 1 is not downloadable any more")
			}
			var vs struct{ Versions []files.Version }
			e.want(e.do("GET", "/v1/nodes/"+r1.Node.ID+"/versions", owner.token, nil), 200, "").Decode(t, &vs)
			if len(vs.Versions) != 2 || vs.Versions[0].Number != 2 || vs.Versions[1].Number != 1 {
				t.Errorf("versions = %+v", vs.Versions)
			}
			var n files.Node
			e.want(e.do("GET", "/v1/nodes/"+r1.Node.ID, owner.token, nil), 200, "").Decode(t, &n)
			if n.Path != "/docs/report 2026.txt" || n.CurrentVersion.Number != 2 {
				t.Errorf("node = %+v", n)
			}

			// An empty file works too.
			empty := e.uploadFile(member, "/empty", []byte{}, "")
			if got, _ := e.download(owner, empty.Node.ID, ""); len(got) != 0 {
				t.Errorf("empty file downloads %d bytes", len(got))
			}

			seqs, ops := e.journal(owner.p.TenantID)
			checkGapFree(t, seqs)
			if want := []string{"create", "create", "update", "create"}; !slices.Equal(ops, want) {
				t.Errorf("journal ops = %v, want %v", ops, want)
			}
			if r2.Seq != 3 {
				t.Errorf("second commit seq = %d, want 3", r2.Seq)
			}
			var topics []string
			rows, _ := e.super.Query(context.Background(), "SELECT topic FROM outbox WHERE tenant_id = $1 ORDER BY id", owner.p.TenantID)
			for rows.Next() {
				var tp string
				_ = rows.Scan(&tp)
				topics = append(topics, tp)
			}
			rows.Close()
			if want := []string{files.TopicNodeCreated, files.TopicVersionCreated, files.TopicVersionCreated, files.TopicVersionCreated}; !slices.Equal(topics, want) {
				t.Errorf("outbox topics = %v, want %v", topics, want)
			}
			if n := e.count("SELECT count(*) FROM outbox WHERE tenant_id = $1 AND payload->>'version_id' = $2 AND (payload->>'seq')::int = 3", owner.p.TenantID, r2.Version.ID); n != 1 {
				t.Errorf("no outbox event for version 2 with seq 3")
			}
		})
	}
}

// TestCommitRejects: bytes that are not what was declared never become a version: size or
// hash mismatch answer 422, delete the staging object and reject the upload; a commit before
// the PUT is 409 upload_incomplete and the upload stays usable; an expired upload is gone.
func TestCommitRejects(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, backend)
			_, member, _ := e.tenant("acme")
			content := []byte("the declared content")
			noVersions := func() {
				t.Helper()
				if n := e.count("SELECT count(*) FROM versions") + e.count("SELECT count(*) FROM nodes WHERE type = 'file'") + e.count("SELECT count(*) FROM blobs"); n != 0 {
					t.Errorf("%d versions, files or blobs exist, want none", n)
				}
			}

			t.Run("hash mismatch", func(t *testing.T) {
				up := e.startUpload(member, "/a.txt", content)
				if code := e.Put(up.Upload, bytes.ToUpper(content)); code != 200 {
					t.Fatalf("PUT = %d", code)
				}
				e.want(e.commitReq(member, up.ID, ""), 422, apierror.CodeHashMismatch)
				if e.exists(storage.StagingKey(member.p.TenantID, up.ID)) {
					t.Error("staging object not deleted")
				}
				if n := e.count("SELECT count(*) FROM uploads WHERE id = $1 AND status = 'rejected'", up.ID); n != 1 {
					t.Error("upload not rejected")
				}
				noVersions()
				e.want(e.commitReq(member, up.ID, ""), 409, apierror.CodeConflict)
			})

			t.Run("size mismatch", func(t *testing.T) {
				up := e.startUpload(member, "/b.txt", content)
				// A store that let a longer body through (the presigned PUT would not).
				key := storage.StagingKey(member.p.TenantID, up.ID)
				longer := append(bytes.Clone(content), '!')
				if err := e.store.Put(ctx, key, bytes.NewReader(longer), int64(len(longer))); err != nil {
					t.Fatal(err)
				}
				e.want(e.commitReq(member, up.ID, ""), 422, apierror.CodeSizeMismatch)
				if e.exists(key) {
					t.Error("staging object not deleted")
				}
				noVersions()
			})

			t.Run("presigned PUT refuses other sizes", func(t *testing.T) {
				up := e.startUpload(member, "/c.txt", content)
				if code := e.Put(up.Upload, append(bytes.Clone(content), '!')); code < 400 {
					t.Errorf("PUT of a longer body = %d, want refused", code)
				}
			})

			t.Run("signed SHA-256 refuses other bytes", func(t *testing.T) {
				sha := sha256Hex(content)
				var up upload
				e.want(e.do("POST", "/v1/files", member.token, jsonObj{"path": "/d.txt", "size": len(content), "blake3": blake3Hex(content), "sha256": sha}), 201, "").Decode(t, &up)
				if code := e.Put(up.Upload, bytes.ToUpper(content)); code < 400 {
					t.Errorf("PUT of tampered bytes = %d, want refused by the store", code)
				}
				if code := e.Put(up.Upload, content); code != 200 {
					t.Fatalf("PUT of the declared bytes = %d", code)
				}
				e.want(e.commitReq(member, up.ID, ""), 201, "")
			})

			t.Run("commit before PUT", func(t *testing.T) {
				up := e.startUpload(member, "/e.txt", content)
				e.want(e.commitReq(member, up.ID, ""), 409, apierror.CodeUploadIncomplete)
				if code := e.Put(up.Upload, content); code != 200 {
					t.Fatalf("PUT = %d", code)
				}
				e.want(e.commitReq(member, up.ID, ""), 201, "")
			})

			t.Run("expired upload", func(t *testing.T) {
				up := e.startUpload(member, "/f.txt", content)
				if code := e.Put(up.Upload, content); code != 200 {
					t.Fatalf("PUT = %d", code)
				}
				e.clock.Advance(files.DefaultUploadTTL + time.Minute)
				defer e.clock.Advance(-files.DefaultUploadTTL - time.Minute)
				e.want(e.commitReq(member, up.ID, ""), 404, apierror.CodeNotFound)
				rep, err := e.files.CollectGarbage(ctx, member.p.TenantID)
				if err != nil || rep.Uploads < 1 || e.count("SELECT count(*) FROM uploads WHERE id = $1 AND status = 'expired'", up.ID) != 1 {
					t.Fatalf("CollectGarbage = %+v, %v; want the upload expired", rep, err)
				}
				if e.exists(storage.StagingKey(member.p.TenantID, up.ID)) {
					t.Error("staging object of the expired upload not deleted")
				}
			})

			t.Run("malformed requests", func(t *testing.T) {
				for _, body := range []jsonObj{
					{"path": "", "size": 1, "blake3": blake3Hex(content)},
					{"path": "/a/../b", "size": 1, "blake3": blake3Hex(content)},
					{"path": "/a//b", "size": 1, "blake3": blake3Hex(content)},
					{"path": "/x", "size": -1, "blake3": blake3Hex(content)},
					{"path": "/x", "size": 1, "blake3": "abc"},
					{"path": "/x", "size": 1, "blake3": blake3Hex(content), "sha256": "zz"},
					{"path": "/" + strings.Repeat("n", 256), "size": 1, "blake3": blake3Hex(content)},
				} {
					e.want(e.do("POST", "/v1/files", member.token, body), 400, apierror.CodeInvalidArgument)
				}
				e.want(e.do("POST", "/v1/files", member.token, jsonObj{"path": "/x", "size": storage.MaxObjectSize + 1, "blake3": blake3Hex(content)}), 413, apierror.CodeFileTooLarge)
				e.want(e.commitReq(member, "not-a-uuid", ""), 404, apierror.CodeNotFound)
				e.want(e.commitReq(member, "00000000-0000-4000-8000-000000000000", ""), 404, apierror.CodeNotFound)
				up := e.startUpload(member, "/g.txt", content)
				e.want(e.commitReq(member, up.ID, "v1"), 400, apierror.CodeInvalidArgument)
			})
		})
	}
}

// TestCrossTenant: ids of another tenant's nodes and uploads are not found, whatever the
// endpoint.
func TestCrossTenant(t *testing.T) {
	e := newEnv(t, backendS3)
	ownerA, _, _ := e.tenant("alpha")
	ownerB, _, _ := e.tenant("beta")
	res := e.uploadFile(ownerA, "/secret/plan.txt", []byte("A's plan"), "")
	folder := *res.Node.ParentID
	pendingA := e.startUpload(ownerA, "/pending.txt", []byte("x"))
	e.Put(pendingA.Upload, []byte("x"))

	for _, id := range []string{res.Node.ID, folder} {
		for _, req := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/v1/nodes/" + id, nil},
			{"GET", "/v1/files/" + id + "/content", nil},
			{"GET", "/v1/nodes/" + id + "/versions", nil},
			{"GET", "/v1/nodes?parent=" + id, nil},
			{"POST", "/v1/nodes/" + id + "/move", jsonObj{"name": "mine"}},
			{"POST", "/v1/nodes/" + id + "/copy", jsonObj{"parent_id": ""}},
			{"POST", "/v1/nodes/" + id + "/trash", nil},
			{"POST", "/v1/nodes/" + id + "/restore", nil},
			{"DELETE", "/v1/nodes/" + id, nil},
		} {
			t.Run(req.method+" "+strings.ReplaceAll(req.path, id, "{id}"), func(t *testing.T) {
				e.want(e.do(req.method, req.path, ownerB.token, req.body), 404, apierror.CodeNotFound)
			})
		}
	}
	// B's own folder cannot take A's node as parent, nor A's upload.
	own := e.uploadFile(ownerB, "/mine.txt", []byte("B"), "")
	e.want(e.do("POST", "/v1/nodes/"+own.Node.ID+"/move", ownerB.token, jsonObj{"parent_id": folder}), 404, apierror.CodeNotFound)
	e.want(e.commitReq(ownerB, pendingA.ID, ""), 404, apierror.CodeNotFound)
	if got := names(e.list(ownerB, "")); !slices.Equal(got, []string{"mine.txt"}) {
		t.Errorf("B's root = %v", got)
	}
	// A's data is untouched.
	if got, _ := e.download(ownerA, res.Node.ID, ""); string(got) != "A's plan" {
		t.Errorf("A's file = %q", got)
	}
	e.want(e.commitReq(ownerA, pendingA.ID, ""), 201, "")
}

func sha256Hex(b []byte) string {
	return fmt.Sprintf("%x", sha256.Sum256(b))
}
