package files_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// TestQuota: the quota is checked before any byte moves; pending uploads count; replacing a
// file needs no file quota; a tenant's own row overrides the configured default.
func TestQuota(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, backendS3, func(c *files.Config) { c.BytesLimit = 1000 })
	owner, _, _ := e.tenant("acme")
	tenant := owner.p.TenantID
	quota := func(bytes, files any) {
		t.Helper()
		if _, err := e.super.Exec(ctx, `INSERT INTO quotas (tenant_id, bytes_limit, files_limit) VALUES ($1, $2, $3)
ON CONFLICT (tenant_id) DO UPDATE SET bytes_limit = $2, files_limit = $3`, tenant, bytes, files); err != nil {
			t.Fatal(err)
		}
	}
	declare := func(path string, size int) response {
		return e.do("POST", "/v1/files", owner.token, jsonObj{"path": path, "size": size, "blake3": blake3Hex([]byte("x"))})
	}

	// The configured default: 1000 bytes.
	e.want(declare("/big", 1001), 413, apierror.CodeQuotaExceeded)
	// The tenant's own limit: 10 bytes.
	quota(10, nil)
	e.want(declare("/eleven", 11), 413, apierror.CodeQuotaExceeded)
	e.uploadFile(owner, "/six", []byte("123456"), "")
	e.want(declare("/five", 5), 413, apierror.CodeQuotaExceeded)
	pending := e.startUpload(owner, "/four", []byte("1234")) // 6 + 4 = 10: fits
	e.want(declare("/one", 1), 413, apierror.CodeQuotaExceeded)
	if n := e.count("SELECT count(*) FROM uploads WHERE tenant_id = $1", tenant); n != 2 {
		t.Errorf("%d uploads recorded, want 2 (refused ones leave none)", n)
	}
	e.Put(pending.Upload, []byte("1234"))
	e.want(e.commitReq(owner, pending.ID, ""), 201, "")
	// Same content again: deduplicated, still counted once in use... but the declared size
	// counts while the upload is pending.
	e.want(declare("/again", 1), 413, apierror.CodeQuotaExceeded)

	// Files: 2 exist; a limit of 2 refuses a new path but lets a file be replaced.
	quota(nil, 2)
	e.want(declare("/third", 1), 413, apierror.CodeQuotaExceeded)
	var six files.Node
	for _, n := range e.list(owner, "") {
		if n.Name == "six" {
			six = n
		}
	}
	e.uploadFile(owner, "/six", []byte("654321"), six.CurrentVersion.ID)
	quota(nil, nil) // back to the default (1000 bytes, unlimited files)
	e.uploadFile(owner, "/third", []byte("3"), "")
	// An explicit 0 allows nothing, not even an empty file once bytes are in use.
	quota(0, nil)
	e.want(declare("/zero", 0), 413, apierror.CodeQuotaExceeded)
}

// TestConcurrentCommits: parallel clients committing to one path serialize: per base version
// exactly one wins, every other upload becomes a conflicted copy (409), nothing is lost, and
// the journal stays gap-free.
func TestConcurrentCommits(t *testing.T) {
	const clients = 8
	e := newEnv(t, backendS3)
	owner, member, _ := e.tenant("acme")

	race := func(base string) (wins []result, conflicts []conflictAnswer, contents map[string][]byte) {
		t.Helper()
		contents = map[string][]byte{}
		ups := make([]upload, clients)
		for i := range clients {
			c := []byte(fmt.Sprintf("client %d on base %q", i, base))
			ups[i] = e.startUpload(member, "/shared/doc.txt", c)
			if code := e.Put(ups[i].Upload, c); code != 200 {
				t.Fatalf("PUT = %d", code)
			}
			contents[blake3Hex(c)] = c
		}
		answers := make([]response, clients)
		var start, wg sync.WaitGroup
		start.Add(1)
		for i := range clients {
			wg.Go(func() {
				start.Wait()
				answers[i] = e.commitReq(member, ups[i].ID, base)
			})
		}
		start.Done()
		wg.Wait()
		for _, a := range answers {
			switch a.Status {
			case 201:
				var r result
				a.Decode(t, &r)
				wins = append(wins, r)
			case 409:
				var c conflictAnswer
				a.Decode(t, &c)
				if c.Code != apierror.CodeVersionConflict || !strings.Contains(c.Message, "conflicted copy") || c.Conflict.Node.ID == "" {
					t.Errorf("409 body = %s", a.Body)
				}
				conflicts = append(conflicts, c)
			default:
				t.Fatalf("commit = %d %s", a.Status, a.Body)
			}
		}
		return wins, conflicts, contents
	}

	check := func(round string, wins []result, conflicts []conflictAnswer, contents map[string][]byte) result {
		t.Helper()
		if len(wins) != 1 || len(conflicts) != clients-1 {
			t.Fatalf("%s: %d commits won, %d conflicted; want 1 and %d", round, len(wins), len(conflicts), clients-1)
		}
		// No lost update: every client's bytes are downloadable, from the winner or a copy.
		seen := map[string]bool{}
		ids := []string{wins[0].Node.ID}
		for _, c := range conflicts {
			if !strings.HasPrefix(c.Conflict.Node.Name, "doc (conflicted copy ") || !strings.HasSuffix(c.Conflict.Node.Name, ").txt") {
				t.Errorf("%s: conflicted copy named %q", round, c.Conflict.Node.Name)
			}
			ids = append(ids, c.Conflict.Node.ID)
		}
		for _, id := range ids {
			got, _ := e.download(owner, id, "")
			seen[blake3Hex(got)] = true
		}
		for h := range contents {
			if !seen[h] {
				t.Errorf("%s: an upload's content is lost", round)
			}
		}
		return wins[0]
	}

	// Round 1: everybody creates the file.
	wins, conflicts, contents := race("")
	first := check("create", wins, conflicts, contents)
	// Round 2: everybody updates from version 1.
	wins, conflicts, contents = race(first.Version.ID)
	second := check("update", wins, conflicts, contents)
	if second.Node.ID != first.Node.ID || second.Version.Number != 2 {
		t.Errorf("update winner = %+v, want version 2 of the file", second)
	}
	// Round 3: a stale base (version 1 again) never overwrites.
	c := []byte("stale")
	up := e.startUpload(member, "/shared/doc.txt", c)
	e.Put(up.Upload, c)
	e.want(e.commitReq(member, up.ID, first.Version.ID), 409, apierror.CodeVersionConflict)

	var vs struct{ Versions []files.Version }
	e.want(e.do("GET", "/v1/nodes/"+first.Node.ID+"/versions", owner.token, nil), 200, "").Decode(t, &vs)
	if len(vs.Versions) != 2 {
		t.Errorf("the file has %d versions, want 2", len(vs.Versions))
	}
	shared := e.list(owner, *first.Node.ParentID)
	if len(shared) != 1+2*(clients-1)+1 {
		t.Errorf("the folder has %d nodes, want the file and %d conflicted copies", len(shared), 2*(clients-1)+1)
	}
	seqs, _ := e.journal(owner.p.TenantID)
	checkGapFree(t, seqs)
	// folder + 8 creates (1 file + 7 copies) + 8 (1 update + 7 copies) + 1 copy
	if want := 1 + clients + clients + 1; len(seqs) != want {
		t.Errorf("journal has %d rows, want %d", len(seqs), want)
	}
	if n := e.count("SELECT count(*) FROM outbox WHERE topic = $1", files.TopicVersionCreated); n != 2*clients+1 {
		t.Errorf("%d version events, want %d", n, 2*clients+1)
	}
}

// TestConcurrentFolders: parallel uploads into new nested folders create each folder once.
func TestConcurrentFolders(t *testing.T) {
	e := newEnv(t, backendFS)
	owner, _, _ := e.tenant("acme")
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			c := []byte(fmt.Sprint(i))
			up := e.startUpload(owner, fmt.Sprintf("/a/b/c/%d.txt", i), c)
			e.Put(up.Upload, c)
			if r := e.commitReq(owner, up.ID, ""); r.Status != 201 {
				t.Errorf("commit %d = %d %s", i, r.Status, r.Body)
			}
		})
	}
	wg.Wait()
	if n := e.count("SELECT count(*) FROM nodes WHERE type = 'folder'"); n != 3 {
		t.Errorf("%d folders, want 3", n)
	}
	seqs, _ := e.journal(owner.p.TenantID)
	checkGapFree(t, seqs)
	if len(seqs) != 9 {
		t.Errorf("journal has %d rows, want 9", len(seqs))
	}
}

// TestDedupeAndPurge: equal content is stored once per tenant and counted; copies share the
// blob; purging releases references and deletes a blob at zero; the same content can come
// back afterwards.
func TestDedupeAndPurge(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, backend)
			owner, member, _ := e.tenant("acme")
			other, _, _ := e.tenant("other")
			tenant := owner.p.TenantID
			same := []byte("the same bytes")
			h := blake3Hex(same)
			refcount := func(hash string) int {
				t.Helper()
				return e.count("SELECT coalesce((SELECT refcount FROM blobs WHERE tenant_id = $1 AND hash = $2), -1)", tenant, hash)
			}

			a := e.uploadFile(member, "/a.txt", same, "")
			b := e.uploadFile(member, "/b.txt", same, "")
			if a.Deduplicated || !b.Deduplicated {
				t.Errorf("deduplicated: a=%v b=%v, want false, true", a.Deduplicated, b.Deduplicated)
			}
			if rc := refcount(h); rc != 2 {
				t.Errorf("refcount = %d, want 2", rc)
			}
			// Another tenant's identical content is its own blob.
			o := e.uploadFile(other, "/a.txt", same, "")
			if o.Deduplicated {
				t.Error("deduplicated across tenants")
			}
			var c result
			e.want(e.do("POST", "/v1/nodes/"+a.Node.ID+"/copy", member.token, jsonObj{"name": "c.txt"}), 201, "").Decode(t, &c)
			if c.Node.Path != "/c.txt" || c.Version.BLAKE3 != h || refcount(h) != 3 {
				t.Errorf("copy = %+v, refcount %d; want /c.txt sharing the blob, refcount 3", c, refcount(h))
			}
			if got, _ := e.download(owner, c.Node.ID, ""); !bytes.Equal(got, same) {
				t.Error("copy content differs")
			}
			e.want(e.do("POST", "/v1/nodes/"+a.Node.ID+"/copy", member.token, jsonObj{"name": "c.txt"}), 409, apierror.CodeAlreadyExists)
			newer := []byte("b, second version")
			e.uploadFile(member, "/b.txt", newer, b.Version.ID)
			if refcount(h) != 3 || refcount(blake3Hex(newer)) != 1 {
				t.Errorf("after a new version of b: refcounts %d and %d, want 3 and 1 (old versions keep their blob)", refcount(h), refcount(blake3Hex(newer)))
			}

			purge := func(id string) {
				t.Helper()
				e.want(e.do("POST", "/v1/nodes/"+id+"/trash", member.token, nil), 200, "")
				e.want(e.do("DELETE", "/v1/nodes/"+id, member.token, nil), 204, "")
			}
			purge(a.Node.ID)
			if refcount(h) != 2 || !e.exists(storage.BlobKey(tenant, h)) {
				t.Errorf("after purging a: refcount %d, blob exists %v; want 2, true", refcount(h), e.exists(storage.BlobKey(tenant, h)))
			}
			purge(b.Node.ID) // both of its versions
			if refcount(h) != 1 || refcount(blake3Hex(newer)) != -1 || e.exists(storage.BlobKey(tenant, blake3Hex(newer))) {
				t.Errorf("after purging b: refcount %d, newer blob row %d / object %v; want 1, gone, gone", refcount(h), refcount(blake3Hex(newer)), e.exists(storage.BlobKey(tenant, blake3Hex(newer))))
			}
			purge(c.Node.ID)
			if refcount(h) != -1 || e.exists(storage.BlobKey(tenant, h)) {
				t.Errorf("after purging every reference: blob row %d, object %v; want both gone", refcount(h), e.exists(storage.BlobKey(tenant, h)))
			}
			if !e.exists(storage.BlobKey(other.p.TenantID, h)) {
				t.Error("the other tenant's blob was deleted")
			}
			// The content comes back as a new blob.
			again := e.uploadFile(member, "/again.txt", same, "")
			if again.Deduplicated || refcount(h) != 1 {
				t.Errorf("re-upload: deduplicated %v, refcount %d; want false, 1", again.Deduplicated, refcount(h))
			}
			if got, _ := e.download(owner, again.Node.ID, ""); !bytes.Equal(got, same) {
				t.Error("re-uploaded content differs")
			}
			if rep, err := e.files.CollectGarbage(context.Background(), tenant); err != nil || rep != (files.GarbageReport{}) {
				t.Errorf("CollectGarbage = %+v, %v; want nothing left to do", rep, err)
			}
		})
	}
}

// TestTrashRestorePurge: trash hides a subtree, restore brings it back (not into a trashed
// folder, not over a taken name), purge needs the trash and removes the subtree.
func TestTrashRestorePurge(t *testing.T) {
	e := newEnv(t, backendS3)
	owner, member, _ := e.tenant("acme")
	x := e.uploadFile(member, "/f/x.txt", []byte("x"), "")
	folder := *x.Node.ParentID

	var trashed files.Node
	e.want(e.do("POST", "/v1/nodes/"+folder+"/trash", member.token, nil), 200, "").Decode(t, &trashed)
	if trashed.TrashedAt == nil {
		t.Error("trashed node without trashed_at")
	}
	if got := names(e.list(owner, "")); len(got) != 0 {
		t.Errorf("root lists %v after trashing f", got)
	}
	e.want(e.do("GET", "/v1/files/"+x.Node.ID+"/content", owner.token, nil), 404, apierror.CodeNotFound)
	var inside files.Node
	e.want(e.do("GET", "/v1/nodes/"+x.Node.ID, owner.token, nil), 200, "").Decode(t, &inside)
	if !inside.InTrash || inside.TrashedAt != nil || inside.Path != "/f/x.txt" {
		t.Errorf("x in the trashed folder = %+v, want in_trash through f", inside)
	}
	e.want(e.do("GET", "/v1/nodes?parent="+folder, owner.token, nil), 404, apierror.CodeNotFound)
	e.want(e.do("POST", "/v1/nodes/"+x.Node.ID+"/trash", member.token, nil), 404, apierror.CodeNotFound)
	var trash files.Page
	e.want(e.do("GET", "/v1/trash", owner.token, nil), 200, "").Decode(t, &trash)
	if len(trash.Nodes) != 1 || trash.Nodes[0].ID != folder {
		t.Errorf("trash = %+v, want just f", trash.Nodes)
	}
	// x is in the trash through f: restore f, not x.
	e.want(e.do("POST", "/v1/nodes/"+x.Node.ID+"/restore", member.token, nil), 409, apierror.CodeConflict)
	// The path is free again: a new /f takes it.
	e.uploadFile(member, "/f/y.txt", []byte("y"), "")
	e.want(e.do("POST", "/v1/nodes/"+folder+"/restore", member.token, nil), 409, apierror.CodeAlreadyExists)
	var restored files.Node
	e.want(e.do("POST", "/v1/nodes/"+folder+"/restore", member.token, jsonObj{"name": "f (old)"}), 200, "").Decode(t, &restored)
	if restored.Path != "/f (old)" || restored.TrashedAt != nil {
		t.Errorf("restored = %+v", restored)
	}
	if got, _ := e.download(owner, x.Node.ID, ""); string(got) != "x" {
		t.Errorf("x after restore = %q", got)
	}
	e.want(e.do("POST", "/v1/nodes/"+folder+"/restore", member.token, nil), 409, apierror.CodeConflict)
	// Purge needs the trash.
	e.want(e.do("DELETE", "/v1/nodes/"+folder, member.token, nil), 409, apierror.CodeConflict)
	e.want(e.do("POST", "/v1/nodes/"+folder+"/trash", member.token, nil), 200, "")
	e.want(e.do("DELETE", "/v1/nodes/"+folder, member.token, nil), 204, "")
	for _, id := range []string{folder, x.Node.ID} {
		e.want(e.do("GET", "/v1/nodes/"+id, owner.token, nil), 404, apierror.CodeNotFound)
	}
	e.want(e.do("GET", "/v1/trash", owner.token, nil), 200, "").Decode(t, &trash)
	if len(trash.Nodes) != 0 {
		t.Errorf("trash after purge = %+v", trash.Nodes)
	}
	seqs, ops := e.journal(owner.p.TenantID)
	checkGapFree(t, seqs)
	if want := []string{"create", "create", "trash", "create", "create", "restore", "trash", "purge"}; !slices.Equal(ops, want) {
		t.Errorf("journal ops = %v, want %v", ops, want)
	}
}

// TestMoveRename: rename, move into a folder and back to the root; taken names, moving a
// folder into itself and invalid names are refused.
func TestMoveRename(t *testing.T) {
	e := newEnv(t, backendFS)
	owner, member, _ := e.tenant("acme")
	a := e.uploadFile(member, "/a.txt", []byte("a"), "")
	e.uploadFile(member, "/d/e/taken.txt", []byte("t"), "")
	var d, dE files.Node
	for _, n := range e.list(owner, "") {
		if n.Name == "d" {
			d = n
		}
	}
	dE = e.list(owner, d.ID)[0]

	move := func(id string, body jsonObj) response {
		return e.do("POST", "/v1/nodes/"+id+"/move", member.token, body)
	}
	var n files.Node
	e.want(move(a.Node.ID, jsonObj{"name": "b.txt"}), 200, "").Decode(t, &n)
	if n.Path != "/b.txt" {
		t.Errorf("renamed path = %q", n.Path)
	}
	e.want(move(a.Node.ID, jsonObj{"parent_id": dE.ID}), 200, "").Decode(t, &n)
	if n.Path != "/d/e/b.txt" || *n.ParentID != dE.ID {
		t.Errorf("moved = %+v", n)
	}
	e.want(move(a.Node.ID, jsonObj{"name": "taken.txt"}), 409, apierror.CodeAlreadyExists)
	e.want(move(d.ID, jsonObj{"parent_id": dE.ID}), 409, apierror.CodeConflict)
	e.want(move(d.ID, jsonObj{"parent_id": d.ID}), 409, apierror.CodeConflict)
	e.want(move(dE.ID, jsonObj{"parent_id": a.Node.ID}), 409, apierror.CodeConflict) // a file is no folder
	for _, bad := range []string{"", ".", "..", "x/y", strings.Repeat("n", 256)} {
		e.want(move(a.Node.ID, jsonObj{"name": bad}), 400, apierror.CodeInvalidArgument)
	}
	e.want(move(a.Node.ID, jsonObj{"parent_id": "", "name": "e\u0301.txt"}), 200, "").Decode(t, &n)
	if n.Path != "/\u00e9.txt" || n.ParentID != nil {
		t.Errorf("moved to the root = %+v, want /é.txt (NFC)", n)
	}
	// The same name in another normalization is the same name.
	e.want(e.do("POST", "/v1/folders", member.token, jsonObj{"path": "/\u00e9.txt"}), 409, apierror.CodeAlreadyExists)
	var got files.Node
	e.want(e.do("GET", "/v1/nodes/"+dE.ID, owner.token, nil), 200, "").Decode(t, &got)
	if got.Path != "/d/e" {
		t.Errorf("path of e = %q", got.Path)
	}
	_, ops := e.journal(owner.p.TenantID)
	if moves := strings.Count(strings.Join(ops, ","), "move"); moves != 3 {
		t.Errorf("journal has %d moves, want 3 (%v)", moves, ops)
	}
}

// TestListPagination: listings are ordered by name (bytes) then id and page with a cursor.
func TestListPagination(t *testing.T) {
	e := newEnv(t, backendFS)
	owner, member, _ := e.tenant("acme")
	want := []string{"B", "a", "b", "z", "\u00e4", "\u65e5\u672c"}
	for _, name := range []string{"z", "a", "\u00e4", "B", "\u65e5\u672c", "b"} {
		e.want(e.do("POST", "/v1/folders", member.token, jsonObj{"path": "/" + name}), 201, "")
	}
	if !sort.StringsAreSorted(want) {
		t.Fatal("want is not in byte order")
	}
	var all []string
	cursor := ""
	pages := 0
	for {
		var page files.Page
		e.want(e.do("GET", "/v1/nodes?limit=4&cursor="+cursor, owner.token, nil), 200, "").Decode(t, &page)
		all = append(all, names(page.Nodes)...)
		pages++
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
		// A folder created between pages before the cursor does not shift the next page.
		if pages == 1 {
			e.want(e.do("POST", "/v1/folders", member.token, jsonObj{"path": "/A"}), 201, "")
		}
	}
	if !slices.Equal(all, want) || pages != 2 {
		t.Errorf("pages of 4 = %v in %d pages, want %v in 2", all, pages, want)
	}
	e.want(e.do("GET", "/v1/nodes?cursor=garbage", owner.token, nil), 400, apierror.CodeInvalidArgument)
	e.want(e.do("GET", "/v1/nodes?limit=1001", owner.token, nil), 400, apierror.CodeInvalidArgument)
	e.want(e.do("GET", "/v1/nodes?limit=0", owner.token, nil), 400, apierror.CodeInvalidArgument)
	e.want(e.do("GET", "/v1/nodes?parent=not-an-id", owner.token, nil), 404, apierror.CodeNotFound)
	e.want(e.do("POST", "/v1/folders", member.token, jsonObj{"path": "/a/b/c"}), 201, "")
	e.want(e.do("POST", "/v1/folders", member.token, jsonObj{"path": "/a/b"}), 409, apierror.CodeAlreadyExists)
}

// TestRoles: viewers and read-only API tokens read but do not write; no credentials, no
// access.
func TestRoles(t *testing.T) {
	e := newEnv(t, backendFS)
	owner, member, viewer := e.tenant("acme")
	f := e.uploadFile(member, "/f.txt", []byte("f"), "")
	_, readToken, err := e.id.CreateAPIToken(context.Background(), owner.p, identity.NewAPIToken{Name: "ro", Scopes: []string{"files:read"}, ExpiresAt: e.clock.Now().Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	readOnly := user{token: readToken}

	for _, u := range []struct {
		name string
		u    user
		code string
	}{{"viewer", viewer, apierror.CodePermissionDenied}, {"files:read token", readOnly, apierror.CodeInsufficientScope}} {
		t.Run(u.name, func(t *testing.T) {
			e.want(e.do("GET", "/v1/nodes", u.u.token, nil), 200, "")
			e.want(e.do("GET", "/v1/nodes/"+f.Node.ID+"/versions", u.u.token, nil), 200, "")
			if got, _ := e.download(u.u, f.Node.ID, ""); string(got) != "f" {
				t.Errorf("download = %q", got)
			}
			for _, req := range []struct {
				method, path string
				body         any
			}{
				{"POST", "/v1/files", jsonObj{"path": "/v.txt", "size": 1, "blake3": blake3Hex([]byte("v"))}},
				{"POST", "/v1/files/commit", jsonObj{"upload_id": "00000000-0000-4000-8000-000000000000"}},
				{"POST", "/v1/folders", jsonObj{"path": "/v"}},
				{"POST", "/v1/nodes/" + f.Node.ID + "/move", jsonObj{"name": "v.txt"}},
				{"POST", "/v1/nodes/" + f.Node.ID + "/copy", jsonObj{"name": "v.txt"}},
				{"POST", "/v1/nodes/" + f.Node.ID + "/trash", nil},
				{"POST", "/v1/nodes/" + f.Node.ID + "/restore", nil},
				{"DELETE", "/v1/nodes/" + f.Node.ID, nil},
			} {
				e.want(e.do(req.method, req.path, u.u.token, req.body), 403, u.code)
			}
		})
	}
	e.want(e.do("GET", "/v1/nodes", "", nil), 401, apierror.CodeUnauthenticated)
	e.want(e.do("POST", "/v1/files", "not-a-token", jsonObj{}), 401, apierror.CodeUnauthenticated)
	e.want(e.do("PUT", "/v1/nodes", owner.token, nil), 405, apierror.CodeMethodNotAllowed)
}
