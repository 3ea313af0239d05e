package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"lukechampine.com/blake3"
)

// Multipart says an upload is staged in parts (POST /v1/files' answer for a large file on a
// store that supports it): Parts parts of PartSize bytes, the last one holding the rest.
type Multipart struct {
	PartSize int64 `json:"part_size"`
	Parts    int   `json:"parts"`
}

// partSize is the size of part n (1-based) of an upload of total bytes.
func (m Multipart) partSize(n int, total int64) int64 {
	if n < m.Parts {
		return m.PartSize
	}
	return total - int64(m.Parts-1)*m.PartSize
}

// Part is a part the object store has.
type Part struct {
	Number int    `json:"number"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag"`
}

// UploadState is an upload with the parts stored so far (GET /v1/uploads/{id}).
type UploadState struct {
	ID     string `json:"upload_id"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	BLAKE3 string `json:"blake3"`
	// Status is pending, committed, conflicted, rejected, expired or cancelled.
	Status    string     `json:"status"`
	ExpiresAt time.Time  `json:"expires_at"`
	Multipart *Multipart `json:"multipart,omitempty"`
	Parts     []Part     `json:"parts"`
}

// PartUpload is the presigned upload of one part: PUT exactly Size bytes.
type PartUpload struct {
	Number int       `json:"number"`
	Size   int64     `json:"size"`
	Upload Presigned `json:"upload"`
}

// GetUpload returns an upload and the parts the store has (GET /v1/uploads/{id}).
func (c *Client) GetUpload(ctx context.Context, id string) (UploadState, error) {
	var out UploadState
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/uploads/" + pathID(id), auth: true}, &out)
	return out, err
}

// CancelUpload cancels a pending upload (DELETE /v1/uploads/{id}): the server aborts its
// multipart upload and deletes its staged bytes, and a later commit of it fails. Cancelling
// a cancelled upload succeeds again; an upload that finished otherwise (committed, expired,
// ...) is a conflict error.
func (c *Client) CancelUpload(ctx context.Context, id string) error {
	_, err := c.do(ctx, request{method: http.MethodDelete, path: "/v1/uploads/" + pathID(id), auth: true, want: http.StatusNoContent}, nil)
	return err
}

// PresignParts returns presigned uploads of parts of a multipart upload (POST
// /v1/uploads/{id}/parts); they are short-lived.
func (c *Client) PresignParts(ctx context.Context, id string, numbers []int) ([]PartUpload, error) {
	var out struct {
		Parts []PartUpload `json:"parts"`
	}
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/uploads/" + pathID(id) + "/parts", body: struct {
		PartNumbers []int `json:"part_numbers"`
	}{numbers}, auth: true}, &out)
	return out.Parts, err
}

// ResumeRecord is what a resumable upload keeps between runs: enough to find the upload
// again and to skip the hash pass (the content is the one hashed as long as the record's
// key, e.g. file, size and modification time, still matches).
type ResumeRecord struct {
	UploadID string `json:"upload_id"`
	Path     string `json:"path"`
	Size     int64  `json:"size"`
	BLAKE3   string `json:"blake3"`
}

// ResumeStore keeps the ResumeRecord of one content's multipart upload.
type ResumeStore interface {
	// Load returns the record, nil if there is none.
	Load() (*ResumeRecord, error)
	Save(ResumeRecord) error
	// Clear removes the record; no record is not an error.
	Clear() error
}

// UploadStats says how an Upload went.
type UploadStats struct {
	// Multipart: the upload was staged in parts.
	Multipart bool
	// Resumed: an interrupted upload was resumed (no hash pass, stored parts skipped).
	Resumed bool
	// PartsSent and PartsSkipped count the parts uploaded by this call and those the store
	// had already.
	PartsSent, PartsSkipped int
}

// partBatch is how many part uploads are presigned at a time: they are short-lived.
const partBatch = 8

// partURLMargin: a presigned part upload expiring sooner than this is presigned again.
const partURLMargin = time.Minute

// resume continues the upload recorded in o.Resume, if it can: ok false means there was
// nothing to resume (the record is cleared and o.Notice told why when it was unusable).
func (c *Client) resume(ctx context.Context, path string, open Opener, o UploadOptions) (res CommitResult, ok bool, err error) {
	rec, err := o.Resume.Load()
	if err != nil || rec == nil {
		return CommitResult{}, false, err
	}
	st, err := c.GetUpload(ctx, rec.UploadID)
	why := ""
	switch {
	case IsNotFound(err):
		why = "it is no longer known to the server"
	case err != nil:
		return CommitResult{}, false, err
	case st.Status != "pending":
		why = "it is " + st.Status
	case st.Multipart == nil || st.Path != path || st.Size != rec.Size || st.BLAKE3 != rec.BLAKE3:
		why = "it was for another path or content"
	}
	if why != "" {
		o.notice(fmt.Sprintf("the interrupted upload %s cannot be resumed (%s): starting over", rec.UploadID, why))
		if st.Status == "pending" {
			c.cancelAbandoned(ctx, rec.UploadID)
		}
		return CommitResult{}, false, o.Resume.Clear()
	}
	stored := make(map[int]bool, len(st.Parts))
	for _, p := range st.Parts {
		if p.Size == st.Multipart.partSize(p.Number, st.Size) {
			stored[p.Number] = true
		}
	}
	o.notice(fmt.Sprintf("resuming upload %s: %d of %d parts already uploaded", st.ID, len(stored), st.Multipart.Parts))
	if o.Stats != nil {
		o.Stats.Multipart, o.Stats.Resumed = true, true
	}
	res, err = c.finishMultipart(ctx, st.ID, *st.Multipart, st.Size, st.BLAKE3, stored, open, o)
	return res, true, err
}

// finishMultipart sends the parts not stored yet, then commits. The record in o.Resume is
// cleared once the upload can no longer be resumed (committed, rejected, or the content
// changed) and kept after an interruption.
func (c *Client) finishMultipart(ctx context.Context, id string, m Multipart, size int64, hash string, stored map[int]bool, open Opener, o UploadOptions) (CommitResult, error) {
	err := c.sendParts(ctx, id, m, size, hash, stored, open, o)
	if errors.Is(err, ErrChanged) {
		c.cancelAbandoned(ctx, id)
		return CommitResult{}, errors.Join(err, o.clearRecord())
	}
	if err != nil {
		return CommitResult{}, err
	}
	res, err := c.Commit(ctx, CommitRequest{UploadID: id, BaseVersion: o.BaseVersion})
	if err == nil || finalCommitError(err) {
		return res, errors.Join(err, o.clearRecord())
	}
	return res, err
}

// cancelAbandoned cancels an upload that will not be resumed (its record is cleared), so that
// it stops counting toward the quota and the store drops its parts now rather than when it
// expires. Best effort: a failure leaves it to expire.
func (c *Client) cancelAbandoned(ctx context.Context, id string) {
	_ = c.CancelUpload(ctx, id)
}

// finalCommitError reports whether a commit error ends the upload (no resuming it).
func finalCommitError(err error) bool {
	e, ok := errors.AsType[*Error](err)
	if !ok {
		return false
	}
	switch e.Code {
	case CodeVersionConflict, CodeSizeMismatch, CodeHashMismatch, CodeNotFound, CodeConflict:
		return true
	}
	return false
}

// sendParts reads the content once, in order: it skips the stored parts and uploads the
// others, hashing everything; a content whose BLAKE3 is not hash is ErrChanged.
func (c *Client) sendParts(ctx context.Context, id string, m Multipart, size int64, hash string, stored map[int]bool, open Opener, o UploadOptions) error {
	r, err := open()
	if err != nil {
		return err
	}
	defer r.Close()
	b3 := blake3.New(32, nil)
	src := io.TeeReader(&progressReader{r: r, phase: "upload", total: size, progress: o.Progress}, b3)
	urls := partURLs{c: c, id: id, m: m, stored: stored}
	for n := 1; n <= m.Parts; n++ {
		partSize := m.partSize(n, size)
		if stored[n] {
			if _, err := io.CopyN(io.Discard, src, partSize); err != nil {
				return fmt.Errorf("read part %d: %w", n, err)
			}
			o.countPart(false)
			continue
		}
		p, err := urls.get(ctx, n)
		if err != nil {
			return err
		}
		if err := c.PutContent(ctx, p.Upload, src, partSize); err != nil {
			return fmt.Errorf("part %d of %d: %w", n, m.Parts, err)
		}
		o.countPart(true)
		if o.AfterPart != nil {
			if err := o.AfterPart(n); err != nil {
				return err
			}
		}
	}
	if got := hex.EncodeToString(b3.Sum(nil)); got != hash {
		return ErrChanged
	}
	return nil
}

// partURLs presigns part uploads a batch at a time, ahead of their use.
type partURLs struct {
	c      *Client
	id     string
	m      Multipart
	stored map[int]bool
	have   map[int]PartUpload
}

func (u *partURLs) get(ctx context.Context, n int) (PartUpload, error) {
	if p, ok := u.have[n]; ok && time.Until(p.Upload.ExpiresAt) > partURLMargin {
		return p, nil
	}
	var batch []int
	for k := n; k <= u.m.Parts && len(batch) < partBatch; k++ {
		if !u.stored[k] {
			batch = append(batch, k)
		}
	}
	parts, err := u.c.PresignParts(ctx, u.id, batch)
	if err != nil {
		return PartUpload{}, err
	}
	u.have = make(map[int]PartUpload, len(parts))
	for _, p := range parts {
		u.have[p.Number] = p
	}
	p, ok := u.have[n]
	if !ok {
		return PartUpload{}, fmt.Errorf("POST /v1/uploads/%s/parts: part %d missing from the answer", u.id, n)
	}
	return p, nil
}

func (o UploadOptions) notice(msg string) {
	if o.Notice != nil {
		o.Notice(msg)
	}
}

func (o UploadOptions) clearRecord() error {
	if o.Resume == nil {
		return nil
	}
	return o.Resume.Clear()
}

func (o UploadOptions) countPart(sent bool) {
	switch {
	case o.Stats == nil:
	case sent:
		o.Stats.PartsSent++
	default:
		o.Stats.PartsSkipped++
	}
}
