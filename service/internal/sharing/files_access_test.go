package sharing_test

import (
	"bytes"
	"encoding/hex"
	"io"
	"net/http"
	"testing"

	"lukechampine.com/blake3"

	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/sharing"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
)

// newFilesEnv is newEnv with the files module consulting shares, as bitvaultd wires it.
func newFilesEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.Files.SetNodeAuthorizer(e.sharing)
	return e
}

// startUpload declares content at path as u and PUTs the bytes; it returns the answer of
// POST /v1/files and, on success, the upload id.
func startUpload(t *testing.T, e *env, u apitest.User, path string, content []byte) (apitest.Response, string) {
	t.Helper()
	sum := blake3.Sum256(content)
	r := e.Do("POST", "/v1/files", u.Token, map[string]any{"path": path, "size": len(content), "blake3": hex.EncodeToString(sum[:])})
	if r.Status != 201 {
		return r, ""
	}
	var up files.Upload
	r.Decode(t, &up)
	req, err := http.NewRequest(up.Put.Method, up.Put.URL, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range up.Put.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	return r, up.ID
}

func (e *env) share(t *testing.T, by apitest.User, nodeID string, to apitest.User, role string) sharing.Share {
	t.Helper()
	var sh sharing.Share
	r := e.Do("POST", "/v1/nodes/"+nodeID+"/shares", by.Token, map[string]any{"user_id": to.P.UserID, "role": role})
	if r.Status != 201 && r.Status != 200 {
		t.Fatalf("share: %d %s", r.Status, r.Body)
	}
	r.Decode(t, &sh)
	return sh
}

// TestFilesHonourEditorShare: a tenant viewer with an editor share on a folder writes in
// that folder through /v1/files and /v1/nodes (upload, new version, folders, move, rename,
// copy, trash, restore, purge) and nowhere else; revoking the share ends it at once, an
// upload started before included; a token scoped files:read gets no write from the share.
func TestFilesHonourEditorShare(t *testing.T) {
	e := newFilesEnv(t)
	_, member, viewer := e.Tenant("acme")
	team := e.Folder(member, "team")
	private := e.Folder(member, "private")
	a := e.Upload(member, "team/a.txt", []byte("v1"))
	secret := e.Upload(member, "private/s.txt", []byte("secret"))

	// Without a share: the tenant viewer reads but writes nowhere.
	r, _ := startUpload(t, e, viewer, "team/b.txt", []byte("b"))
	e.Want(r, 403, "permission_denied")

	sh := e.share(t, member, team.ID, viewer, sharing.RoleEditor)

	// Inside the shared folder: new files, new versions, folders.
	b := e.Upload(viewer, "team/b.txt", []byte("b"))
	e.UploadVersion(viewer, "team/a.txt", []byte("v2"), a.Version.ID)
	sub := e.Folder(viewer, "team/sub/deeper")
	e.Upload(viewer, "team/sub/deeper/c.txt", []byte("c"))
	// Outside: the root, another folder, a file there.
	for _, path := range []string{"top.txt", "private/x.txt", "private/s.txt", "new/x.txt"} {
		r, _ := startUpload(t, e, viewer, path, []byte("x"))
		e.Want(r, 403, "permission_denied")
	}
	e.Want(e.Do("POST", "/v1/folders", viewer.Token, map[string]any{"path": "private/f"}), 403, "permission_denied")
	e.Want(e.Do("POST", "/v1/folders", viewer.Token, map[string]any{"path": "elsewhere"}), 403, "permission_denied")

	// Moves and copies: both ends must be writable.
	var n files.Node
	e.Want(e.Do("POST", "/v1/nodes/"+b.Node.ID+"/move", viewer.Token, map[string]any{"parent_id": sub.ID, "name": "b2.txt"}), 200, "").Decode(t, &n)
	if n.Path != "/team/sub/deeper/b2.txt" {
		t.Errorf("moved to %s", n.Path)
	}
	e.Want(e.Do("POST", "/v1/nodes/"+b.Node.ID+"/move", viewer.Token, map[string]any{"parent_id": private.ID}), 403, "permission_denied")
	e.Want(e.Do("POST", "/v1/nodes/"+b.Node.ID+"/move", viewer.Token, map[string]any{"parent_id": ""}), 403, "permission_denied")
	e.Want(e.Do("POST", "/v1/nodes/"+secret.Node.ID+"/move", viewer.Token, map[string]any{"parent_id": team.ID}), 403, "permission_denied")
	e.Want(e.Do("POST", "/v1/nodes/"+a.Node.ID+"/copy", viewer.Token, map[string]any{"name": "a-copy.txt"}), 201, "")
	e.Want(e.Do("POST", "/v1/nodes/"+secret.Node.ID+"/copy", viewer.Token, map[string]any{"parent_id": team.ID}), 201, "") // reads anything, writes in team
	e.Want(e.Do("POST", "/v1/nodes/"+a.Node.ID+"/copy", viewer.Token, map[string]any{"parent_id": private.ID}), 403, "permission_denied")
	e.Want(e.Do("POST", "/v1/nodes/"+secret.Node.ID+"/copy", viewer.Token, map[string]any{"name": "s2.txt"}), 403, "permission_denied")

	// Trash, restore, purge inside; not outside.
	e.Want(e.Do("POST", "/v1/nodes/"+b.Node.ID+"/trash", viewer.Token, nil), 200, "")
	e.Want(e.Do("POST", "/v1/nodes/"+b.Node.ID+"/restore", viewer.Token, nil), 200, "")
	e.Want(e.Do("POST", "/v1/nodes/"+b.Node.ID+"/trash", viewer.Token, nil), 200, "")
	e.Want(e.Do("DELETE", "/v1/nodes/"+b.Node.ID, viewer.Token, nil), 204, "")
	e.Want(e.Do("POST", "/v1/nodes/"+secret.Node.ID+"/trash", viewer.Token, nil), 403, "permission_denied")

	// A token that may only read gets no write from the share.
	readOnly := e.APIToken(viewer, "files:read")
	r, _ = startUpload(t, e, readOnly, "team/t.txt", []byte("t"))
	if r.Status != 403 {
		t.Errorf("files:read token uploads into the share: %d %s", r.Status, r.Body)
	}

	// An upload started under the share, committed after the revocation: refused.
	r, pending := startUpload(t, e, viewer, "team/late.txt", []byte("late"))
	e.Want(r, 201, "")
	e.Want(e.Do("DELETE", "/v1/nodes/"+team.ID+"/shares/"+sh.ID, member.Token, nil), 204, "")
	e.Want(e.Do("POST", "/v1/files/commit", viewer.Token, map[string]any{"upload_id": pending}), 403, "permission_denied")
	r, _ = startUpload(t, e, viewer, "team/after.txt", []byte("x"))
	e.Want(r, 403, "permission_denied")
	e.Want(e.Do("POST", "/v1/nodes/"+a.Node.ID+"/trash", viewer.Token, nil), 403, "permission_denied")
	e.Want(e.Do("POST", "/v1/folders", viewer.Token, map[string]any{"path": "team/x"}), 403, "permission_denied")
	// Members keep their role's access everywhere.
	e.Upload(member, "private/m.txt", []byte("m"))
	e.Want(e.Do("POST", "/v1/files/commit", member.Token, map[string]any{"upload_id": pending}), 201, "")
}

// TestFilesHonourViewerShare: a viewer share grants reading (listing, versions, content)
// and no writing.
func TestFilesHonourViewerShare(t *testing.T) {
	e := newFilesEnv(t)
	_, member, viewer := e.Tenant("acme")
	team := e.Folder(member, "team")
	a := e.Upload(member, "team/a.txt", []byte("hello"))
	e.share(t, member, team.ID, viewer, sharing.RoleViewer)

	e.Want(e.Do("GET", "/v1/nodes?parent="+team.ID, viewer.Token, nil), 200, "")
	e.Want(e.Do("GET", "/v1/nodes/"+a.Node.ID+"/versions", viewer.Token, nil), 200, "")
	r := e.Want(e.Do("GET", "/v1/files/"+a.Node.ID+"/content", viewer.Token, nil), 302, "")
	if status, body, _ := e.Fetch(r.Header.Get("Location")); status != 200 || string(body) != "hello" {
		t.Errorf("download: %d %q", status, body)
	}
	up, _ := startUpload(t, e, viewer, "team/b.txt", []byte("b"))
	e.Want(up, 403, "permission_denied")
	e.Want(e.Do("POST", "/v1/folders", viewer.Token, map[string]any{"path": "team/sub"}), 403, "permission_denied")
	e.Want(e.Do("POST", "/v1/nodes/"+a.Node.ID+"/trash", viewer.Token, nil), 403, "permission_denied")
	e.Want(e.Do("POST", "/v1/nodes/"+a.Node.ID+"/move", viewer.Token, map[string]any{"name": "z.txt"}), 403, "permission_denied")
	e.Want(e.Do("POST", "/v1/nodes/"+a.Node.ID+"/copy", viewer.Token, map[string]any{"name": "z.txt"}), 403, "permission_denied")
	// Another tenant's node stays invisible, share or not.
	otherOwner, _, _ := e.Tenant("other")
	e.Want(e.Do("GET", "/v1/nodes/"+a.Node.ID+"/versions", otherOwner.Token, nil), 404, "not_found")
	e.Want(e.Do("POST", "/v1/nodes/"+a.Node.ID+"/trash", otherOwner.Token, nil), 404, "not_found")
}
