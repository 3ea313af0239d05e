package files

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bitvault/bitvault/service/internal/identity"
	"github.com/bitvault/bitvault/service/internal/platform/apierror"
	"github.com/bitvault/bitvault/service/internal/storage"
)

// Multipart uploads: an upload larger than Config.MultipartThreshold, on a store that takes
// objects in parts (storage.Multipart: S3), is a multipart upload to its staging key. POST
// /v1/files answers its part size and part count instead of a single presigned PUT; the
// client asks for presigned part uploads (PresignParts: short-lived, so a few at a time) and
// sends the parts; after an interruption it asks which parts the store has (GetUpload) and
// sends only the others. Commit lists the parts, completes the multipart upload in order
// (a missing part is 409 upload_incomplete naming it) and verifies size and BLAKE3 of the
// assembled object exactly as for a single PUT. A rejected or expired upload's multipart
// upload is aborted, so its parts do not linger in the store.
//
// The optional SHA-256 of NewUpload is not enforced by the store for multipart uploads
// (parts are signed one by one); the BLAKE3 verification at commit is what counts anyway.

// PartURLTTL is the lifetime of a presigned part upload: short, since a client asks for
// the parts it is about to send.
const PartURLTTL = 15 * time.Minute

// MaxPartsPerRequest bounds the part numbers of one PresignParts call.
const MaxPartsPerRequest = 1000

// MultipartInfo is how a multipart upload is cut: Parts parts of PartSize bytes, the last
// one holding the rest.
type MultipartInfo struct {
	PartSize int64 `json:"part_size"`
	Parts    int   `json:"parts"`
}

// size is the size of part number n (1-based) of an upload of total bytes.
func (m MultipartInfo) size(n int, total int64) int64 {
	if n < m.Parts {
		return m.PartSize
	}
	return total - int64(m.Parts-1)*m.PartSize
}

// planParts cuts size bytes in parts of partSize, grown (to a whole MiB) when that would
// need more than storage.MaxParts parts.
func planParts(size, partSize int64) MultipartInfo {
	if least := ceilDiv(size, storage.MaxParts); partSize < least {
		partSize = ceilDiv(least, 1<<20) << 20
	}
	return MultipartInfo{PartSize: partSize, Parts: int(max(1, ceilDiv(size, partSize)))}
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// multipartStore returns the store's multipart side when an upload of size bytes is to be
// staged in parts.
func (s *Service) multipartStore(size int64) (storage.Multipart, bool) {
	if s.cfg.MultipartThreshold == MultipartOff || size <= s.cfg.MultipartThreshold {
		return nil, false
	}
	return storage.AsMultipart(s.store)
}

// Part is a part the object store has.
type Part struct {
	Number int    `json:"number"`
	Size   int64  `json:"size"`
	ETag   string `json:"etag"`
}

// UploadState is an upload as GET /v1/uploads/{id} answers it: with the parts stored so far
// for a pending multipart upload, which is what a client needs to resume it.
type UploadState struct {
	ID     string `json:"upload_id"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	BLAKE3 string `json:"blake3"`
	// Status is pending, committed, conflicted, rejected, expired (a pending upload past its
	// expiry is expired, whether the GC has swept it or not) or cancelled (CancelUpload).
	Status    string         `json:"status"`
	ExpiresAt time.Time      `json:"expires_at"`
	Multipart *MultipartInfo `json:"multipart,omitempty"`
	// Parts are the parts the store has (a pending multipart upload; empty otherwise).
	Parts []Part `json:"parts"`
}

// loadUpload reads upload id (whatever its status) for p, who must be allowed to write at
// its path (authorizeUpload); op names the operation in errors.
func (s *Service) loadUpload(ctx context.Context, p identity.Principal, id, op string) (upload, error) {
	if err := s.gate(p, true); err != nil {
		return upload{}, err
	}
	uploadID, ok := parseUUID(id)
	if !ok {
		return upload{}, apierror.New(apierror.CodeNotFound, "upload not found")
	}
	var u upload
	err := s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		var err error
		u, err = t.anyUpload(ctx, uploadID)
		return err
	})
	if err != nil {
		return upload{}, wrap(op, err)
	}
	if err := s.authorizeUpload(ctx, p, u); err != nil {
		return upload{}, err
	}
	return u, nil
}

// GetUpload returns an upload with the parts the store has.
func (s *Service) GetUpload(ctx context.Context, p identity.Principal, id string) (UploadState, error) {
	u, err := s.loadUpload(ctx, p, id, "get upload")
	if err != nil {
		return UploadState{}, err
	}
	st := UploadState{ID: u.id, Path: u.path, Size: u.size, BLAKE3: u.blake3, Status: u.status, ExpiresAt: u.expiresAt, Parts: []Part{}}
	if st.Status == "pending" && !s.now().Before(u.expiresAt) {
		st.Status = "expired"
	}
	if u.multipartID == "" {
		return st, nil
	}
	st.Multipart = &u.plan
	if st.Status == "pending" {
		if st.Parts, err = s.storedParts(ctx, u); err != nil {
			return UploadState{}, wrap("get upload", err)
		}
	}
	return st, nil
}

// storedParts lists the parts the store has. A multipart upload the store no longer has
// was completed by an earlier commit attempt when the staging object exists: every part is
// there, then.
func (s *Service) storedParts(ctx context.Context, u upload) ([]Part, error) {
	mp, ok := storage.AsMultipart(s.store)
	if !ok {
		return nil, errors.New("the object store does not support multipart uploads")
	}
	stored, err := mp.ListParts(ctx, u.stagingKey, u.multipartID)
	if errors.Is(err, storage.ErrNoSuchUpload) {
		if _, serr := s.store.Stat(ctx, u.stagingKey); serr == nil {
			all := make([]Part, u.plan.Parts)
			for i := range all {
				all[i] = Part{Number: i + 1, Size: u.plan.size(i+1, u.size)}
			}
			return all, nil
		}
		return []Part{}, nil
	}
	if err != nil {
		return nil, err
	}
	parts := make([]Part, len(stored))
	for i, sp := range stored {
		parts[i] = Part{Number: int(sp.Number), Size: sp.Size, ETag: sp.ETag}
	}
	return parts, nil
}

// PartsRequest asks for presigned uploads of parts.
type PartsRequest struct {
	PartNumbers []int `json:"part_numbers"`
}

// PartUpload is the presigned upload of one part: PUT exactly Size bytes.
type PartUpload struct {
	Number int               `json:"number"`
	Size   int64             `json:"size"`
	Upload storage.Presigned `json:"upload"`
}

// PartUploads is PresignParts' answer.
type PartUploads struct {
	Parts []PartUpload `json:"parts"`
}

// PresignParts presigns the uploads of parts of a pending multipart upload, valid for
// PartURLTTL (at most until the upload expires).
func (s *Service) PresignParts(ctx context.Context, p identity.Principal, id string, req PartsRequest) (PartUploads, error) {
	if err := s.gate(p, true); err != nil {
		return PartUploads{}, err
	}
	uploadID, ok := parseUUID(id)
	if !ok {
		return PartUploads{}, apierror.New(apierror.CodeNotFound, "upload not found")
	}
	var u upload
	err := s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		var err error
		u, err = t.upload(ctx, uploadID, "")
		return err
	})
	if err != nil {
		return PartUploads{}, wrap("presign parts", err)
	}
	if err := s.authorizeUpload(ctx, p, u); err != nil {
		return PartUploads{}, err
	}
	if u.multipartID == "" {
		return PartUploads{}, conflict("upload %s is a single PUT, not a multipart upload", u.id)
	}
	numbers, err := checkPartNumbers(req.PartNumbers, u.plan.Parts)
	if err != nil {
		return PartUploads{}, err
	}
	mp, ok := storage.AsMultipart(s.store)
	if !ok {
		return PartUploads{}, wrap("presign parts", errors.New("the object store does not support multipart uploads"))
	}
	ttl := min(PartURLTTL, u.expiresAt.Sub(s.now()))
	ttl = max(ttl, time.Second)
	out := PartUploads{Parts: make([]PartUpload, 0, len(numbers))}
	for _, n := range numbers {
		size := u.plan.size(n, u.size)
		pr, err := mp.PresignPart(ctx, u.stagingKey, u.multipartID, int32(n), size, ttl)
		if err != nil {
			return PartUploads{}, wrap("presign parts", err)
		}
		out.Parts = append(out.Parts, PartUpload{Number: n, Size: size, Upload: pr})
	}
	return out, nil
}

// checkPartNumbers validates requested part numbers (1..parts, 1 to MaxPartsPerRequest of
// them) and returns them sorted without duplicates.
func checkPartNumbers(numbers []int, parts int) ([]int, error) {
	if len(numbers) == 0 || len(numbers) > MaxPartsPerRequest {
		return nil, invalid("part_numbers: want 1 to %d part numbers", MaxPartsPerRequest)
	}
	for _, n := range numbers {
		if n < 1 || n > parts {
			return nil, invalid("part_numbers: %d is not a part of this upload (1 to %d)", n, parts)
		}
	}
	sorted := slices.Clone(numbers)
	slices.Sort(sorted)
	return slices.Compact(sorted), nil
}

// authorizeUpload checks write access at an upload's path (as Commit does).
func (s *Service) authorizeUpload(ctx context.Context, p identity.Principal, u upload) error {
	segs, err := splitPath(u.path)
	if err != nil {
		return err
	}
	return s.authorizePath(ctx, p, segs)
}

// assemble completes a multipart upload before Commit verifies it: it lists the stored
// parts, answers upload_incomplete naming the missing ones, and completes the upload with
// parts 1..n in order. An object already at the staging key was assembled by an earlier
// commit attempt (or a concurrent one): nothing to do.
func (s *Service) assemble(ctx context.Context, p identity.Principal, u upload) error {
	if u.multipartID == "" {
		return nil
	}
	if done, err := s.staged(ctx, u); done || err != nil {
		return err
	}
	mp, ok := storage.AsMultipart(s.store)
	if !ok {
		return wrap("commit", errors.New("the object store does not support multipart uploads"))
	}
	stored, err := mp.ListParts(ctx, u.stagingKey, u.multipartID)
	if errors.Is(err, storage.ErrNoSuchUpload) {
		return s.multipartGone(ctx, p, u)
	}
	if err != nil {
		return wrap("commit: list parts", err)
	}
	parts, missing, wrong := matchParts(stored, u.plan, u.size)
	if wrong != "" {
		return s.reject(ctx, p, u, apierror.CodeSizeMismatch, wrong)
	}
	if len(missing) > 0 {
		return apierror.New(apierror.CodeUploadIncomplete, fmt.Sprintf("part %s of %d not uploaded yet: upload the missing parts, then commit again", numberRanges(missing), u.plan.Parts))
	}
	if err := mp.CompleteMultipart(ctx, u.stagingKey, u.multipartID, parts); err != nil {
		if errors.Is(err, storage.ErrNoSuchUpload) {
			return s.multipartGone(ctx, p, u)
		}
		if done, _ := s.staged(ctx, u); done {
			return nil // completed concurrently by another commit attempt
		}
		return wrap("commit: complete multipart upload", err)
	}
	return nil
}

// multipartGone answers a commit whose multipart upload the store no longer has
// (storage.ErrNoSuchUpload), though the upload was pending when the commit read it. Either a
// concurrent commit attempt completed it (the staging object exists: nothing to do), or the
// upload finished since (committed by a concurrent commit, or cancelled, which aborts the
// multipart upload): the answer is the one a commit reading it finished gets (409 "upload was
// cancelled", "… is committed already"). Only a pending upload whose multipart upload the
// store lost is rejected. The staging object is looked at first: a commit deletes it only
// after marking the upload committed.
func (s *Service) multipartGone(ctx context.Context, p identity.Principal, u upload) error {
	if done, err := s.staged(ctx, u); done || err != nil {
		return err
	}
	if err := s.stillPending(ctx, p, u); err != nil {
		return err
	}
	return s.reject(ctx, p, u, apierror.CodeUploadIncomplete, "the multipart upload is gone from the object store")
}

// stillPending reads upload u again: nil if it is still pending, otherwise the error a commit
// of it gets (409 cancelled or finished, 404 expired).
func (s *Service) stillPending(ctx context.Context, p identity.Principal, u upload) error {
	err := s.inTx(ctx, p.TenantID, p.UserID, func(t *txn) error {
		_, err := t.upload(ctx, u.id, "")
		return err
	})
	return wrap("commit", err)
}

// staged reports whether the staging object exists.
func (s *Service) staged(ctx context.Context, u upload) (bool, error) {
	_, err := s.store.Stat(ctx, u.stagingKey)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, wrap("commit: stat staging object", err)
	}
	return true, nil
}

// matchParts checks stored parts against the plan: it returns parts 1..n in order, the
// missing part numbers, and, if a stored part has the wrong size, why.
func matchParts(stored []storage.Part, plan MultipartInfo, total int64) (parts []storage.Part, missing []int, wrong string) {
	byNumber := make(map[int]storage.Part, len(stored))
	for _, sp := range stored {
		byNumber[int(sp.Number)] = sp
	}
	for n := 1; n <= plan.Parts; n++ {
		sp, ok := byNumber[n]
		switch {
		case !ok:
			missing = append(missing, n)
		case sp.Size != plan.size(n, total):
			return nil, nil, fmt.Sprintf("part %d has %d bytes, want %d", n, sp.Size, plan.size(n, total))
		default:
			parts = append(parts, sp)
		}
	}
	return parts, missing, ""
}

// numberRanges renders sorted numbers compactly: "2", "2, 5-7".
func numberRanges(ns []int) string {
	var b strings.Builder
	for i := 0; i < len(ns); {
		j := i
		for j+1 < len(ns) && ns[j+1] == ns[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(ns[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(ns[j]))
		}
		i = j + 1
	}
	return b.String()
}

// abortMultipart discards an upload's multipart upload, if it has one (rejected and expired
// uploads): the store would keep its parts otherwise.
func (s *Service) abortMultipart(ctx context.Context, key, multipartID string) error {
	if multipartID == "" {
		return nil
	}
	mp, ok := storage.AsMultipart(s.store)
	if !ok {
		return nil
	}
	if err := mp.AbortMultipart(ctx, key, multipartID); err != nil {
		return err
	}
	s.logger.DebugContext(ctx, "multipart upload aborted", slog.String("key", key))
	return nil
}
