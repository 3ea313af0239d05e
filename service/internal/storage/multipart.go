package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// S3's multipart limits: every part but the last is at least MinPartSize and at most
// MaxPartSize, and an upload has at most MaxParts parts.
const (
	MinPartSize int64 = 5 << 20
	MaxPartSize int64 = 5 << 30
	MaxParts          = 10000
)

// ErrNoSuchUpload is returned by the multipart operations for an upload id the store does
// not know (never created, completed or aborted).
var ErrNoSuchUpload = errors.New("storage: no such multipart upload")

// Part is one stored part of a multipart upload.
type Part struct {
	Number int32
	Size   int64
	ETag   string
}

// Multipart is implemented by the stores that take an object in parts (S3), which makes a
// large upload resumable: each part is its own presigned PUT, and what the store has already
// is listed. The filesystem backend does not implement it: its clients use one PresignPut.
type Multipart interface {
	// CreateMultipart starts a multipart upload to key and returns its id.
	CreateMultipart(ctx context.Context, key string) (string, error)
	// PresignPart returns a request that uploads exactly size bytes as part number of the
	// multipart upload id to key, within ttl.
	PresignPart(ctx context.Context, key, id string, number int32, size int64, ttl time.Duration) (Presigned, error)
	// ListParts returns the parts stored so far, by number; ErrNoSuchUpload if the upload is
	// gone.
	ListParts(ctx context.Context, key, id string) ([]Part, error)
	// CompleteMultipart assembles parts (in order, numbered 1..n) into the object at key.
	CompleteMultipart(ctx context.Context, key, id string, parts []Part) error
	// AbortMultipart discards the upload and its parts; a missing upload is not an error.
	AbortMultipart(ctx context.Context, key, id string) error
}

// AsMultipart returns the store's multipart side, if it has one.
func AsMultipart(s ObjectStore) (Multipart, bool) {
	m, ok := s.(Multipart)
	return m, ok
}

func checkPart(key, id string, number int32, size int64, ttl time.Duration) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	switch {
	case id == "":
		return errors.New("storage: multipart upload id is required")
	case number < 1 || number > MaxParts:
		return fmt.Errorf("storage: part number %d out of range 1..%d", number, MaxParts)
	case size < 1 || size > MaxPartSize:
		return fmt.Errorf("storage: part size %d out of range 1..%d", size, MaxPartSize)
	}
	return checkTTL(ttl)
}
