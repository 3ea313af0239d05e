package sync_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"

	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	bvsync "github.com/bitvault/bitvault/service/internal/sync"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
)

func TestMain(m *testing.M) { os.Exit(apitest.Main(m)) }

type env struct {
	*apitest.Env
	sync *bvsync.Service
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := apitest.New(t)
	svc, err := bvsync.New(e.Pool, bvsync.Config{Now: e.Clock.Now}, e.Logger)
	if err != nil {
		t.Fatal(err)
	}
	svc.Routes(e.Mux, e.Auth)
	return &env{Env: e, sync: svc}
}

func (e *env) pull(t *testing.T, u apitest.User, cursor int64, limit int) bvsync.Changes {
	t.Helper()
	var c bvsync.Changes
	e.Want(e.Do("GET", fmt.Sprintf("/v1/sync/changes?cursor=%d&limit=%d", cursor, limit), u.Token, nil), 200, "").Decode(t, &c)
	return c
}

func seqs(cs []bvsync.Change) []int64 {
	out := []int64{}
	for _, c := range cs {
		out = append(out, c.Seq)
	}
	return out
}

// TestPullReplay: pages follow the journal in seq order without gaps; the same cursor gives
// the same page; the last page's next_cursor resumes exactly, with nothing until something
// changes and then just that change.
func TestPullReplay(t *testing.T) {
	e := newEnv(t)
	owner, member, viewer := e.Tenant("acme")
	e.Folder(owner, "/docs")
	a := e.Upload(member, "/docs/a.txt", []byte("alpha"))
	e.Upload(member, "/docs/sub/b.txt", []byte("bravo!")) // creates sub, then b
	a2 := e.UploadVersion(member, "/docs/a.txt", []byte("alpha 2"), a.Version.ID)
	var total int64
	{
		var pos bvsync.Position
		e.Want(e.Do("GET", "/v1/sync/cursor", viewer.Token, nil), 200, "").Decode(t, &pos)
		total = pos.Cursor
		if total < 5 || pos.Horizon != 0 {
			t.Fatalf("position = %+v, want at least 5 changes and horizon 0", pos)
		}
	}

	var all []bvsync.Change
	cursor, pages := int64(0), 0
	for {
		page := e.pull(t, viewer, cursor, 2)
		again := e.pull(t, viewer, cursor, 2)
		if !slices.Equal(seqs(page.Changes), seqs(again.Changes)) || page.NextCursor != again.NextCursor || page.HasMore != again.HasMore {
			t.Fatalf("cursor %d twice: %v/%d/%v then %v/%d/%v", cursor, seqs(page.Changes), page.NextCursor, page.HasMore, seqs(again.Changes), again.NextCursor, again.HasMore)
		}
		if page.LatestCursor != total {
			t.Errorf("latest_cursor = %d, want %d", page.LatestCursor, total)
		}
		pages++
		all = append(all, page.Changes...)
		cursor = page.NextCursor
		if !page.HasMore {
			break
		}
		if len(page.Changes) != 2 {
			t.Fatalf("a page with has_more has %d changes, want 2", len(page.Changes))
		}
	}
	want := []int64{}
	for i := int64(1); i <= total; i++ {
		want = append(want, i)
	}
	if got := seqs(all); !slices.Equal(got, want) {
		t.Fatalf("pulled seqs %v, want %v", got, want)
	}
	if cursor != total || pages != int(total+1)/2 {
		t.Errorf("ended at cursor %d after %d pages, want %d after %d", cursor, pages, total, (total+1)/2)
	}

	// What a change says.
	var created *bvsync.Change
	for i := range all {
		if all[i].NodeID == a.Node.ID && all[i].Op == "create" {
			created = &all[i]
		}
	}
	if created == nil {
		t.Fatalf("no create of a.txt in %+v", all)
	}
	if created.NodeType != "file" || created.Name != "a.txt" || created.Path == nil || *created.Path != "/docs/a.txt" ||
		created.Version == nil || *created.Version != 1 || created.VersionID == nil || *created.VersionID != a.Version.ID ||
		created.Hash == nil || *created.Hash != a.Version.BLAKE3 || created.Size == nil || *created.Size != 5 || created.ActorID != member.P.UserID {
		t.Errorf("create of a.txt = %+v, want path /docs/a.txt, version 1 (%s), hash %s, size 5, actor member", *created, a.Version.ID, a.Version.BLAKE3)
	}
	var updated *bvsync.Change
	for i := range all {
		if all[i].NodeID == a.Node.ID && all[i].Op == "update" {
			updated = &all[i]
		}
	}
	if updated == nil || updated.Version == nil || *updated.Version != 2 || *updated.Hash != a2.Version.BLAKE3 || *updated.Size != 7 {
		t.Errorf("update of a.txt = %+v, want version 2, size 7", updated)
	}
	if all[0].Op != "create" || all[0].NodeType != "folder" || all[0].Path == nil || *all[0].Path != "/docs" || all[0].Hash != nil || all[0].Size != nil {
		t.Errorf("first change = %+v, want the folder /docs", all[0])
	}

	// Resume after the last page: nothing, the same cursor, no more.
	if page := e.pull(t, viewer, cursor, 2); len(page.Changes) != 0 || page.NextCursor != cursor || page.HasMore {
		t.Errorf("after the last page: %+v, want empty at cursor %d", page, cursor)
	}
	// A change, then exactly it. A move is one entry, with the new parent and name.
	var moved struct{ ID string }
	e.Want(e.Do("POST", "/v1/nodes/"+a.Node.ID+"/move", member.Token, map[string]any{"name": "renamed.txt"}), 200, "").Decode(t, &moved)
	page := e.pull(t, viewer, cursor, 100)
	if len(page.Changes) != 1 || page.Changes[0].Seq != cursor+1 || page.Changes[0].Op != "move" || page.Changes[0].Name != "renamed.txt" ||
		page.Changes[0].Path == nil || *page.Changes[0].Path != "/docs/renamed.txt" || page.NextCursor != cursor+1 || page.HasMore {
		t.Errorf("after a move: %+v, want the one move at %d", page, cursor+1)
	}
	// Without a limit: the default page; without a cursor: from the start.
	if page := e.pull(t, viewer, 0, 1000); len(page.Changes) != int(total+1) {
		t.Errorf("limit 1000 from 0: %d changes, want %d", len(page.Changes), total+1)
	}
	var def bvsync.Changes
	e.Want(e.Do("GET", "/v1/sync/changes", viewer.Token, nil), 200, "").Decode(t, &def)
	if len(def.Changes) != int(total+1) || def.Changes[0].Seq != 1 {
		t.Errorf("no parameters: %d changes from %v, want all from 1", len(def.Changes), seqs(def.Changes))
	}
	for _, bad := range []string{"cursor=-1", "cursor=x", "limit=0", "limit=1001", "limit=x"} {
		e.Want(e.Do("GET", "/v1/sync/changes?"+bad, viewer.Token, nil), 400, apierror.CodeInvalidArgument)
	}
}

// TestStaleCursor: a cursor below the journal's horizon, or beyond its latest seq, is 409
// cursor_stale, for pulls and for persisted device cursors.
func TestStaleCursor(t *testing.T) {
	e := newEnv(t)
	owner, member, _ := e.Tenant("acme")
	for _, p := range []string{"/a", "/b", "/c", "/d", "/e"} {
		e.Folder(member, p)
	}
	ctx := context.Background()
	if err := e.sync.SetHorizon(ctx, owner.P.TenantID, 3); err != nil {
		t.Fatal(err)
	}
	var pos bvsync.Position
	e.Want(e.Do("GET", "/v1/sync/cursor", member.Token, nil), 200, "").Decode(t, &pos)
	if pos != (bvsync.Position{Cursor: 5, Horizon: 3}) {
		t.Fatalf("position = %+v, want cursor 5, horizon 3", pos)
	}
	for _, c := range []int64{0, 2} {
		e.Want(e.Do("GET", fmt.Sprintf("/v1/sync/changes?cursor=%d", c), member.Token, nil), 409, apierror.CodeCursorStale)
	}
	if page := e.pull(t, member, 3, 10); !slices.Equal(seqs(page.Changes), []int64{4, 5}) {
		t.Errorf("from the horizon: %v, want [4 5]", seqs(page.Changes))
	}
	e.Want(e.Do("GET", "/v1/sync/changes?cursor=6", member.Token, nil), 409, apierror.CodeCursorStale)

	// The horizon never moves back, nor beyond the journal.
	if err := e.sync.SetHorizon(ctx, owner.P.TenantID, 1); err != nil {
		t.Fatal(err)
	}
	e.Want(e.Do("GET", "/v1/sync/changes?cursor=2", member.Token, nil), 409, apierror.CodeCursorStale)
	if err := e.sync.SetHorizon(ctx, owner.P.TenantID, 6); err == nil {
		t.Error("horizon beyond the latest seq accepted")
	}

	// Device cursors: within [horizon, latest].
	var d bvsync.Device
	e.Want(e.Do("POST", "/v1/devices", member.Token, map[string]any{"name": "laptop"}), 201, "").Decode(t, &d)
	for _, c := range []int64{2, 6} {
		e.Want(e.Do("PUT", "/v1/devices/"+d.ID+"/cursor", member.Token, map[string]any{"cursor": c}), 409, apierror.CodeCursorStale)
	}
	e.Want(e.Do("PUT", "/v1/devices/"+d.ID+"/cursor", member.Token, map[string]any{"cursor": 4}), 200, "").Decode(t, &d)
	if d.Cursor != 4 || d.CursorUpdatedAt == nil {
		t.Errorf("device after PUT cursor 4: %+v", d)
	}
	// A cursor that was fine goes stale when compaction passes it.
	if err := e.sync.SetHorizon(ctx, owner.P.TenantID, 5); err != nil {
		t.Fatal(err)
	}
	e.Want(e.Do("GET", fmt.Sprintf("/v1/sync/changes?cursor=%d", d.Cursor), member.Token, nil), 409, apierror.CodeCursorStale)
}

// TestDevices: registration per user (idempotent by id), the persisted cursor, and nobody
// else's devices.
func TestDevices(t *testing.T) {
	e := newEnv(t)
	owner, member, viewer := e.Tenant("acme")
	e.Folder(owner, "/x")
	const id = "0f0f0f0f-1111-4222-8333-444444444444"
	var d bvsync.Device
	e.Want(e.Do("POST", "/v1/devices", viewer.Token, map[string]any{"id": id, "name": "phone"}), 201, "").Decode(t, &d)
	if d.ID != id || d.Name != "phone" || d.Cursor != 0 || d.CursorUpdatedAt != nil {
		t.Fatalf("registered %+v", d)
	}
	e.Want(e.Do("POST", "/v1/devices", viewer.Token, map[string]any{"id": id, "name": "my phone"}), 200, "").Decode(t, &d)
	if d.ID != id || d.Name != "my phone" {
		t.Errorf("registered again: %+v, want renamed", d)
	}
	e.Want(e.Do("POST", "/v1/devices", member.Token, map[string]any{"id": id, "name": "mine"}), 409, apierror.CodeAlreadyExists)
	e.Want(e.Do("PUT", "/v1/devices/"+id+"/cursor", viewer.Token, map[string]any{"cursor": 1}), 200, "")
	e.Want(e.Do("GET", "/v1/devices/"+id, viewer.Token, nil), 200, "").Decode(t, &d)
	if d.Cursor != 1 {
		t.Errorf("persisted cursor = %d, want 1", d.Cursor)
	}
	var list struct{ Devices []bvsync.Device }
	e.Want(e.Do("GET", "/v1/devices", viewer.Token, nil), 200, "").Decode(t, &list)
	if len(list.Devices) != 1 || list.Devices[0].ID != id {
		t.Errorf("viewer's devices = %+v", list.Devices)
	}
	e.Want(e.Do("GET", "/v1/devices", member.Token, nil), 200, "").Decode(t, &list)
	if len(list.Devices) != 0 {
		t.Errorf("member's devices = %+v, want none", list.Devices)
	}
	// Another user's device is not found, whatever the request.
	e.Want(e.Do("GET", "/v1/devices/"+id, member.Token, nil), 404, apierror.CodeNotFound)
	e.Want(e.Do("PUT", "/v1/devices/"+id+"/cursor", member.Token, map[string]any{"cursor": 1}), 404, apierror.CodeNotFound)
	e.Want(e.Do("DELETE", "/v1/devices/"+id, member.Token, nil), 404, apierror.CodeNotFound)

	for _, body := range []map[string]any{{"name": ""}, {"name": "x", "id": "nope"}, {"name": "x", "extra": 1}} {
		e.Want(e.Do("POST", "/v1/devices", viewer.Token, body), 400, apierror.CodeInvalidArgument)
	}
	e.Want(e.Do("PUT", "/v1/devices/"+id+"/cursor", viewer.Token, map[string]any{}), 400, apierror.CodeInvalidArgument)
	e.Want(e.Do("PUT", "/v1/devices/"+id+"/cursor", viewer.Token, map[string]any{"cursor": -1}), 400, apierror.CodeInvalidArgument)
	e.Want(e.Do("GET", "/v1/devices/not-a-uuid", viewer.Token, nil), 404, apierror.CodeNotFound)

	e.Want(e.Do("DELETE", "/v1/devices/"+id, viewer.Token, nil), 204, "")
	e.Want(e.Do("GET", "/v1/devices/"+id, viewer.Token, nil), 404, apierror.CodeNotFound)
}

// TestCrossTenant: another tenant's devices are 404 however their ids are guessed, and its
// journal is not ours.
func TestCrossTenant(t *testing.T) {
	e := newEnv(t)
	ownerA, _, _ := e.Tenant("acme")
	ownerB, _, _ := e.Tenant("globex")
	e.Folder(ownerA, "/secret-a")
	var d bvsync.Device
	e.Want(e.Do("POST", "/v1/devices", ownerA.Token, map[string]any{"name": "a's laptop"}), 201, "").Decode(t, &d)
	e.Want(e.Do("GET", "/v1/devices/"+d.ID, ownerB.Token, nil), 404, apierror.CodeNotFound)
	e.Want(e.Do("PUT", "/v1/devices/"+d.ID+"/cursor", ownerB.Token, map[string]any{"cursor": 0}), 404, apierror.CodeNotFound)
	e.Want(e.Do("DELETE", "/v1/devices/"+d.ID, ownerB.Token, nil), 404, apierror.CodeNotFound)
	// The same id registered in B is B's own device, not A's.
	var b bvsync.Device
	e.Want(e.Do("POST", "/v1/devices", ownerB.Token, map[string]any{"id": d.ID, "name": "b's"}), 201, "").Decode(t, &b)
	e.Want(e.Do("GET", "/v1/devices/"+d.ID, ownerA.Token, nil), 200, "").Decode(t, &d)
	if d.Name != "a's laptop" {
		t.Errorf("A's device after B registered the same id: %+v", d)
	}
	if page := e.pull(t, ownerB, 0, 100); len(page.Changes) != 0 || page.LatestCursor != 0 {
		t.Errorf("B pulls %+v, want nothing", page)
	}
	// A cursor of A's journal is ahead of B's: stale, not A's changes.
	e.Want(e.Do("GET", "/v1/sync/changes?cursor=1", ownerB.Token, nil), 409, apierror.CodeCursorStale)
}

// TestAccess: credentials are required, and an API token needs a files scope.
func TestAccess(t *testing.T) {
	e := newEnv(t)
	owner, _, _ := e.Tenant("acme")
	admin := e.APIToken(owner, string(identity.ScopeAdmin))
	reader := e.APIToken(owner, string(identity.ScopeFilesRead))
	for _, path := range []string{"/v1/sync/changes", "/v1/sync/cursor", "/v1/devices"} {
		e.Want(e.Do("GET", path, "", nil), 401, apierror.CodeUnauthenticated)
		e.Want(e.Do("GET", path, admin.Token, nil), 403, apierror.CodeInsufficientScope)
		e.Want(e.Do("GET", path, reader.Token, nil), 200, "")
	}
	e.Want(e.Do("POST", "/v1/sync/changes", owner.Token, nil), 405, apierror.CodeMethodNotAllowed)
}
