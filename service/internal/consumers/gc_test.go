package consumers_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/consumers"
	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/storage"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
	"github.com/bitvault/bitvault/service/internal/testsupport/s3test"
)

func TestMain(m *testing.M) { os.Exit(s3test.Main(func() int { return apitest.Main(m) })) }

const grace = 10 * time.Minute

func gcEnv(t *testing.T) (*apitest.Env, apitest.User, consumers.GC) {
	e := apitest.NewWith(t, func(c *files.Config) { c.BlobGrace = grace })
	owner, _, _ := e.Tenant("acme")
	return e, owner, consumers.GC{Pool: e.Pool, Files: e.Files}
}

func purge(t *testing.T, e *apitest.Env, u apitest.User, id string) {
	t.Helper()
	ctx := context.Background()
	if _, err := e.Files.Trash(ctx, u.P, id); err != nil {
		t.Fatal(err)
	}
	if err := e.Files.Purge(ctx, u.P, id); err != nil {
		t.Fatal(err)
	}
}

// blobState returns the blob's state and refcount ("" if the row is gone) and whether its
// object exists.
func blobState(t *testing.T, e *apitest.Env, tenant, hash string) (string, int64, bool) {
	t.Helper()
	ctx := context.Background()
	var state string
	var refs int64
	err := e.Super.QueryRow(ctx, "SELECT state, refcount FROM blobs WHERE tenant_id = $1 AND hash = $2", tenant, hash).Scan(&state, &refs)
	if err != nil && err.Error() != "no rows in result set" {
		t.Fatal(err)
	}
	_, err = e.Store.Stat(ctx, storage.BlobKey(tenant, hash))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return state, refs, err == nil
}

func sweep(t *testing.T, gc consumers.GC) consumers.SweepReport {
	t.Helper()
	rep, err := gc.Sweep(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// An unreferenced blob waits for the grace period, then the sweep deletes row and object.
func TestGCGracePeriod(t *testing.T) {
	e, owner, gc := gcEnv(t)
	tenant := owner.P.TenantID
	res := e.Upload(owner, "/a.txt", []byte("hello gc"))
	hash := res.Version.BLAKE3
	purge(t, e, owner, res.Node.ID)
	if st, refs, ok := blobState(t, e, tenant, hash); st != "deleting" || refs != 0 || !ok {
		t.Fatalf("after purge: state %q refs %d object %v, want deleting 0 true", st, refs, ok)
	}
	if rep := sweep(t, gc); rep.Blobs != 0 || rep.Pending != 1 {
		t.Fatalf("sweep within the grace period: %+v", rep)
	}
	// The consumer (on the purge event) respects the grace period too.
	if err := gc.Handle(context.Background(), bus.Message{Event: bus.Event{ID: "x", Tenant: tenant, Type: files.TopicNodePurged, Payload: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := blobState(t, e, tenant, hash); !ok {
		t.Fatal("deleted within the grace period")
	}
	e.Clock.Advance(grace + time.Second)
	if rep := sweep(t, gc); rep.Blobs != 1 || rep.Tenants != 1 {
		t.Fatalf("sweep after the grace period: %+v", rep)
	}
	if st, _, ok := blobState(t, e, tenant, hash); st != "" || ok {
		t.Fatalf("after the sweep: state %q object %v, want both gone", st, ok)
	}
	if rep := sweep(t, gc); rep.Tenants != 0 {
		t.Fatalf("second sweep: %+v", rep)
	}
}

// A blob that gains a reference during its grace period (a commit of the same content,
// deduplicated) is never deleted, and the copy of a file keeps it too.
func TestGCReferenceDuringGrace(t *testing.T) {
	e, owner, gc := gcEnv(t)
	tenant := owner.P.TenantID
	content := []byte("revived content")
	res := e.Upload(owner, "/a.txt", content)
	hash := res.Version.BLAKE3
	purge(t, e, owner, res.Node.ID)
	e.Clock.Advance(grace / 2)
	again := e.Upload(owner, "/b.txt", content)
	if st, refs, ok := blobState(t, e, tenant, hash); st != "committed" || refs != 1 || !ok {
		t.Fatalf("after the new commit: state %q refs %d object %v", st, refs, ok)
	}
	copyName := "c.txt"
	if _, err := e.Files.Copy(context.Background(), owner.P, again.Node.ID, files.Placement{Name: &copyName}); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(2 * grace)
	sweep(t, gc)
	if st, refs, ok := blobState(t, e, tenant, hash); st != "committed" || refs != 2 || !ok {
		t.Fatalf("after the sweep: state %q refs %d object %v, want committed 2 true", st, refs, ok)
	}
	d, err := e.Files.Download(context.Background(), owner.P, again.Node.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := e.Fetch(d.URL); code != 200 || string(body) != string(content) {
		t.Fatalf("download: %d %q", code, body)
	}
}

// The race itself: sweeps of a blob past its grace period run concurrently with commits of
// the same content; whatever the interleaving, a committed version's blob is committed and
// its object exists (the refcount is re-checked under the row lock that the commit waits
// for).
func TestGCRaceWithCommit(t *testing.T) {
	e, owner, gc := gcEnv(t)
	tenant := owner.P.TenantID
	for i := range 8 {
		content := []byte{'r', 'a', 'c', 'e', byte('0' + i)}
		res := e.Upload(owner, "/race.txt", content)
		hash := res.Version.BLAKE3
		purge(t, e, owner, res.Node.ID)
		// Due: the sweep may delete it (the row is aged rather than the clock advanced, which
		// would expire the presigned uploads).
		e.Exec("UPDATE blobs SET updated_at = updated_at - $3::interval WHERE tenant_id = $1 AND hash = $2", tenant, hash, "11 minutes")
		var wg sync.WaitGroup
		var again files.CommitResult
		wg.Go(func() { again = e.Upload(owner, "/race.txt", content) })
		wg.Go(func() {
			if _, err := gc.Sweep(context.Background()); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		if st, refs, ok := blobState(t, e, tenant, hash); st != "committed" || refs != 1 || !ok {
			t.Fatalf("round %d: state %q refs %d object %v, want committed 1 true", i, st, refs, ok)
		}
		purge(t, e, owner, again.Node.ID)
	}
}

// Abandoned uploads past their expiry are expired and their staging objects deleted.
func TestGCExpiresUploads(t *testing.T) {
	e, owner, gc := gcEnv(t)
	var up files.Upload
	e.Want(e.Do("POST", "/v1/files", owner.Token, map[string]any{"path": "/x.bin", "size": 3, "blake3": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"}), 201, "").Decode(t, &up)
	if rep := sweep(t, gc); rep.Uploads != 0 {
		t.Fatalf("sweep before expiry: %+v", rep)
	}
	e.Clock.Advance(files.DefaultUploadTTL + time.Second)
	if rep := sweep(t, gc); rep.Uploads != 1 {
		t.Fatalf("sweep after expiry: %+v", rep)
	}
	var status string
	if err := e.Super.QueryRow(context.Background(), "SELECT status FROM uploads WHERE id = $1", up.ID).Scan(&status); err != nil || status != "expired" {
		t.Fatalf("status %q %v", status, err)
	}
}
