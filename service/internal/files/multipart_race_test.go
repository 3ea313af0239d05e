package files_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// hookedStore is the S3 backend with hooks run (once) before ListParts and
// CompleteMultipart, to interleave another operation deterministically inside a commit's
// assembly, and a switch sending the multipart operations to another store.
type hookedStore struct {
	*storage.S3
	mu                         sync.Mutex
	beforeList, beforeComplete func()
	via                        storage.Multipart // when set, multipart operations go there
}

func (h *hookedStore) take(hook *func()) (func(), storage.Multipart) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := *hook
	*hook = nil
	if h.via != nil {
		return f, h.via
	}
	return f, h.S3
}

func (h *hookedStore) ListParts(ctx context.Context, key, id string) ([]storage.Part, error) {
	f, mp := h.take(&h.beforeList)
	if f != nil {
		f()
	}
	return mp.ListParts(ctx, key, id)
}

func (h *hookedStore) CompleteMultipart(ctx context.Context, key, id string, parts []storage.Part) error {
	f, mp := h.take(&h.beforeComplete)
	if f != nil {
		f()
	}
	return mp.CompleteMultipart(ctx, key, id, parts)
}

func (h *hookedStore) AbortMultipart(ctx context.Context, key, id string) error {
	var none func()
	_, mp := h.take(&none)
	return mp.AbortMultipart(ctx, key, id)
}

// multipartOf returns the staging key and multipart upload id of upload id.
func (e *mpEnv) multipartOf(id string) (key, multipartID string) {
	if err := e.super.QueryRow(context.Background(), "SELECT staging_key, multipart_id FROM uploads WHERE id = $1", id).Scan(&key, &multipartID); err != nil {
		e.t.Errorf("upload %s: %v", id, err) // not Fatal: called from hooks, off the test goroutine
	}
	return key, multipartID
}

func (h *hookedStore) set(f func(*hookedStore)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

// TestMultipartCommitInterleaved: what a commit answers when its multipart upload goes away
// while it assembles the upload (between reading the upload and listing or completing the
// parts), and that only an upload whose multipart upload the store really lost is rejected;
// a store error (a missing bucket) rejects and deletes nothing.
func TestMultipartCommitInterleaved(t *testing.T) {
	var hs *hookedStore
	e := newMultipartEnvWith(t, func(s *storage.S3) storage.ObjectStore {
		hs = &hookedStore{S3: s}
		return hs
	})
	owner, _, _ := e.tenant("acme")
	content := randomContent(t, mpFileSize)
	ctx := context.Background()
	// A store on a bucket that does not exist: same server and credentials.
	cfg := e.cfg
	cfg.Bucket += "-missing"
	missingBucket, err := storage.NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// completeInStore completes the multipart upload of upload id in the store directly, as
	// a concurrent commit attempt does.
	completeInStore := func(id string) error {
		key, mpID := e.multipartOf(id)
		parts, err := hs.S3.ListParts(ctx, key, mpID)
		if err != nil {
			return err
		}
		return hs.S3.CompleteMultipart(ctx, key, mpID, parts)
	}

	tests := []struct {
		name string
		// arrange sets the hooks for the commit of upload id; a hook's error goes to *hookErr.
		arrange    func(id string, hookErr *error)
		status     int
		code       string
		body       string // in the answer
		wantStatus string // of the upload afterwards
	}{
		{"missing bucket: an error, nothing rejected", func(id string, _ *error) {
			hs.set(func(h *hookedStore) { h.via = missingBucket })
		}, 500, apierror.CodeInternal, "", "pending"},
		{"completed by a concurrent commit attempt before the listing", func(id string, hookErr *error) {
			hs.set(func(h *hookedStore) { h.beforeList = func() { *hookErr = completeInStore(id) } })
		}, 201, "", "", "committed"},
		{"committed by a concurrent commit before the listing", func(id string, hookErr *error) {
			hs.set(func(h *hookedStore) {
				h.beforeList = func() { _, *hookErr = e.files.Commit(ctx, owner.p, files.CommitRequest{UploadID: id}) }
			})
		}, 409, apierror.CodeConflict, "committed already", "committed"},
		{"cancelled before the listing", func(id string, hookErr *error) {
			hs.set(func(h *hookedStore) { h.beforeList = func() { *hookErr = e.files.CancelUpload(ctx, owner.p, id) } })
		}, 409, apierror.CodeConflict, "upload was cancelled: start a new one", files.StatusCancelled},
		{"cancelled before the completion", func(id string, hookErr *error) {
			hs.set(func(h *hookedStore) { h.beforeComplete = func() { *hookErr = e.files.CancelUpload(ctx, owner.p, id) } })
		}, 409, apierror.CodeConflict, "upload was cancelled: start a new one", files.StatusCancelled},
		{"lost by the store: rejected", func(id string, hookErr *error) {
			hs.set(func(h *hookedStore) {
				h.beforeList = func() { key, mpID := e.multipartOf(id); *hookErr = hs.S3.AbortMultipart(ctx, key, mpID) }
			})
		}, 409, apierror.CodeUploadIncomplete, "gone from the object store", "rejected"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer hs.set(func(h *hookedStore) { h.beforeList, h.beforeComplete, h.via = nil, nil, nil })
			up := e.startMultipart(owner, "/race/"+string(rune('a'+i))+".bin", len(content), blake3Hex(content))
			e.putParts(owner, up, content, 1, 2, 3)
			var hookErr error
			tt.arrange(up.ID, &hookErr)
			r := e.commitReq(owner, up.ID, "")
			if hookErr != nil {
				t.Fatalf("interleaved operation: %v", hookErr)
			}
			if r.Status != tt.status || tt.code != "" && r.Code(t) != tt.code {
				t.Fatalf("commit answered %d %s, want %d %s", r.Status, r.Body, tt.status, tt.code)
			}
			if !strings.Contains(string(r.Body), tt.body) {
				t.Errorf("commit answered %s, want %q in it", r.Body, tt.body)
			}
			if tt.code == apierror.CodeConflict && strings.Contains(string(r.Body), "rejected") {
				t.Errorf("commit answered %s: not rejected", r.Body)
			}
			hs.set(func(h *hookedStore) { h.via = nil })
			st := e.uploadState(owner, up.ID)
			if st.Status != tt.wantStatus {
				t.Fatalf("upload status %s, want %s", st.Status, tt.wantStatus)
			}
			if tt.wantStatus == "pending" {
				// Nothing was discarded: the parts are there and a commit succeeds.
				if got := partNumbers(st.Parts); len(got) != 3 {
					t.Fatalf("stored parts %v after a store error, want all 3", got)
				}
				e.want(e.commitReq(owner, up.ID, ""), 201, "")
			}
			if n := e.count("SELECT count(*) FROM uploads WHERE id = $1 AND status = 'rejected'", up.ID); (n == 1) != (tt.wantStatus == "rejected") {
				t.Errorf("upload rejected: %v, want %v", n == 1, tt.wantStatus == "rejected")
			}
		})
	}
	e.wantStagingEmpty()
}
