package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"

	"lukechampine.com/blake3"
)

// Progress is told how many bytes of total a phase ("hash", "upload", "download") has done.
type Progress func(phase string, done, total int64)

// progressReader counts the bytes read through it.
type progressReader struct {
	r        io.Reader
	phase    string
	done     int64
	total    int64
	progress Progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.done += int64(n)
		if p.progress != nil {
			p.progress(p.phase, p.done, p.total)
		}
	}
	return n, err
}

// Digest is a content's size and hashes, as the upload protocol declares them.
type Digest struct {
	Size   int64
	BLAKE3 string
	SHA256 string
}

// Hash reads r to its end and returns its digest (BLAKE3-256 and SHA-256, hex).
func Hash(r io.Reader) (Digest, error) {
	b3, sh := blake3.New(32, nil), sha256.New()
	n, err := io.Copy(io.MultiWriter(b3, sh), r)
	if err != nil {
		return Digest{}, err
	}
	return Digest{Size: n, BLAKE3: hex.EncodeToString(b3.Sum(nil)), SHA256: hex.EncodeToString(sh.Sum(nil))}, nil
}

// Opener opens the content to upload, from its start, each time it is called.
type Opener func() (io.ReadCloser, error)

// UploadOptions tune Upload.
type UploadOptions struct {
	// BaseVersion is the id of the version the content replaces (nil: a new file). A stale
	// base makes the server keep the upload as a conflicted copy (version_conflict).
	BaseVersion *string
	// Progress, if set, is told the progress of the hash and upload passes.
	Progress Progress
	// Resume, if set, makes a multipart upload resumable: the upload is recorded there once
	// started and, when a record is found, resumed (no hash pass: the record's BLAKE3 is
	// trusted; only the parts the store lacks are sent). The record is cleared when the
	// upload ends and kept when it is interrupted.
	Resume ResumeStore
	// Notice, if set, is told what happens to a recorded upload (resumed, or started over).
	Notice func(msg string)
	// Stats, if set, is filled in with how the upload went.
	Stats *UploadStats
	// AfterPart, if set, is called after each part uploaded; an error stops the upload
	// there (tests simulate interruptions with it).
	AfterPart func(number int) error
}

// ErrChanged is returned by Upload when the content read for the upload is not the content
// that was hashed (the file changed meanwhile); nothing was committed.
var ErrChanged = errors.New("the content changed while it was uploaded")

// Upload uploads a file to path with the commit protocol: a first pass hashes the content
// (the API declares size and BLAKE3 before the bytes), POST /v1/files declares it, a second
// pass streams it to the presigned PUT while hashing it again (a content that changed
// meanwhile is not committed: ErrChanged), and POST /v1/files/commit has the server verify
// and write the version. When the server stages the upload in parts (a large file on S3),
// the second pass sends the parts one after the other, and with o.Resume an interrupted
// upload is resumed by the next call (see UploadOptions.Resume).
func (c *Client) Upload(ctx context.Context, path string, open Opener, o UploadOptions) (CommitResult, error) {
	if o.Resume != nil {
		res, resumed, err := c.resume(ctx, path, open, o)
		if resumed || err != nil {
			return res, err
		}
	}
	r, err := open()
	if err != nil {
		return CommitResult{}, err
	}
	d, err := Hash(&progressReader{r: r, phase: "hash", total: -1, progress: o.Progress})
	r.Close()
	if err != nil {
		return CommitResult{}, fmt.Errorf("hash: %w", err)
	}
	up, err := c.CreateUpload(ctx, NewUpload{Path: path, Size: d.Size, BLAKE3: d.BLAKE3, SHA256: d.SHA256})
	if err != nil {
		return CommitResult{}, err
	}
	if up.Multipart != nil {
		return c.startMultipart(ctx, up, d, open, o)
	}
	if r, err = open(); err != nil {
		return CommitResult{}, err
	}
	b3 := blake3.New(32, nil)
	err = c.PutContent(ctx, up.Put, io.TeeReader(&progressReader{r: r, phase: "upload", total: d.Size, progress: o.Progress}, b3), d.Size)
	r.Close()
	if err != nil {
		return CommitResult{}, err
	}
	if got := hex.EncodeToString(b3.Sum(nil)); got != d.BLAKE3 {
		c.cancelAbandoned(ctx, up.ID)
		return CommitResult{}, ErrChanged
	}
	return c.Commit(ctx, CommitRequest{UploadID: up.ID, BaseVersion: o.BaseVersion})
}

// startMultipart records a new multipart upload (o.Resume) and sends all its parts.
func (c *Client) startMultipart(ctx context.Context, up Upload, d Digest, open Opener, o UploadOptions) (CommitResult, error) {
	if o.Stats != nil {
		o.Stats.Multipart = true
	}
	if o.Resume != nil {
		rec := ResumeRecord{UploadID: up.ID, Path: up.Path, Size: d.Size, BLAKE3: d.BLAKE3}
		if err := o.Resume.Save(rec); err != nil {
			return CommitResult{}, fmt.Errorf("record the upload for resuming: %w", err)
		}
	}
	return c.finishMultipart(ctx, up.ID, *up.Multipart, d.Size, d.BLAKE3, nil, open, o)
}

// PutContent sends exactly size bytes of body to a presigned PUT (without the caller's
// credentials). A body with fewer bytes fails; more are not read (the content changed: the
// hash check catches it).
func (c *Client) PutContent(ctx context.Context, p Presigned, body io.Reader, size int64) error {
	method := p.Method
	if method == "" {
		method = http.MethodPut
	}
	var rc io.Reader = io.LimitReader(body, size)
	if size == 0 {
		rc = http.NoBody
	}
	req, err := http.NewRequestWithContext(ctx, method, p.URL, rc)
	if err != nil {
		return fmt.Errorf("upload URL: %w", err)
	}
	req.ContentLength = size
	for k, vs := range p.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.transfer.Do(req)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("upload: the object store answered: %w", decodeError(resp))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return nil
}

// DownloadOptions tune Download.
type DownloadOptions struct {
	// VersionID selects a version ("" is the current one).
	VersionID string
	// Expect, if set, is the version the bytes must be: its size (unless negative: unknown)
	// and BLAKE3 (unless empty) are checked.
	Expect *Version
	// Progress, if set, is told the progress of the download.
	Progress Progress
}

// ErrContentMismatch is returned by Download when the bytes received are not the expected
// ones (size or BLAKE3).
var ErrContentMismatch = errors.New("downloaded content does not match")

// Download writes a file's content to w: it asks the content endpoint for the presigned GET
// and follows that redirect itself, without sending the caller's credentials to the object
// store. With o.Expect it verifies the bytes' size and BLAKE3 (after writing them: write to
// a temporary file and keep it only without error); it returns how many it wrote.
func (c *Client) Download(ctx context.Context, nodeID string, w io.Writer, o DownloadOptions) (int64, error) {
	d, err := c.ContentURL(ctx, nodeID, o.VersionID)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.URL, nil)
	if err != nil {
		return 0, fmt.Errorf("download URL: %w", err)
	}
	resp, err := c.transfer.Do(req)
	if err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("download: the object store answered: %w", decodeError(resp))
	}
	total := resp.ContentLength
	if o.Expect != nil && o.Expect.Size >= 0 {
		total = o.Expect.Size
	}
	var h hash.Hash = blake3.New(32, nil)
	n, err := io.Copy(io.MultiWriter(w, h), &progressReader{r: resp.Body, phase: "download", total: total, progress: o.Progress})
	if err != nil {
		return n, fmt.Errorf("download: %w", err)
	}
	if o.Expect != nil {
		if o.Expect.Size >= 0 && n != o.Expect.Size {
			return n, fmt.Errorf("%w: received %d bytes, want %d", ErrContentMismatch, n, o.Expect.Size)
		}
		if got := hex.EncodeToString(h.Sum(nil)); o.Expect.BLAKE3 != "" && got != o.Expect.BLAKE3 {
			return n, fmt.Errorf("%w: BLAKE3 %s, want %s", ErrContentMismatch, got, o.Expect.BLAKE3)
		}
	}
	return n, nil
}
