// Package storage is bitvaultd's object store: presigned uploads to staging keys, content-addressed blobs, presigned downloads, with an S3 backend and a filesystem backend.
//
// Bytes never pass through the API: clients PUT to a presigned URL under a staging key
// (StagingKey), bitvaultd verifies what landed there (Stat, Open) and promotes it to the
// tenant's content-addressed key (BlobKey) with Copy, and clients GET blobs through presigned
// URLs. Both backends honour one contract (see the contract tests):
//
//   - PresignPut signs the exact size of the body and, when given, its SHA-256: a body of
//     another length or with another SHA-256 is refused by the store itself, before
//     bitvaultd's own verification at commit. The returned Header must be sent as is.
//   - Presigned URLs expire (ttl) and any change to them (key, size, expiry) invalidates the
//     signature.
//   - Stat of a missing object is ErrNotFound; Delete of a missing object succeeds.
//   - Copy is server-side; objects are at most MaxObjectSize (a single S3 PUT and a single
//     CopyObject), which is also the largest file bitvaultd accepts.
//
// Stores that take objects in parts implement Multipart as well (S3 does, FS does not):
// bitvaultd stages large uploads as multipart uploads, whose presigned part uploads make them
// resumable (see multipart.go).
//
// S3 (aws-sdk-go-v2) works with AWS and with S3-compatible stores (MinIO, versitygw):
// path-style addressing, a fixed region, static credentials, and an optional public endpoint
// for presigned URLs when clients reach the store under another name than bitvaultd does.
//
// The filesystem backend (FS) is for the single-binary dev setup: objects are files under a
// directory, and its presigned URLs point at bitvaultd itself (/v1/blobs/<key>), signed with
// HMAC-SHA256 over method, key, expiry and constraints, served by FS.Handler.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// MaxObjectSize is the largest object: S3's limit for one PUT and one CopyObject (5 GiB).
const MaxObjectSize int64 = 5 << 30

// ErrNotFound is returned by Stat and Open for a missing object.
var ErrNotFound = errors.New("storage: object not found")

// ObjectStore is what the files module needs from an object store.
type ObjectStore interface {
	// Backend names the implementation ("s3", "fs").
	Backend() string
	// PresignPut returns a request that uploads exactly c.Size bytes to key within ttl.
	PresignPut(ctx context.Context, key string, c PutConstraints, ttl time.Duration) (Presigned, error)
	// PresignGet returns a request that downloads key within ttl.
	PresignGet(ctx context.Context, key string, o GetOptions, ttl time.Duration) (Presigned, error)
	// Stat returns the size of key, or ErrNotFound.
	Stat(ctx context.Context, key string) (ObjectInfo, error)
	// Open streams the content of key, or returns ErrNotFound.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// Put stores size bytes from r at key (server-side writes and tests; clients use
	// PresignPut).
	Put(ctx context.Context, key string, r io.Reader, size int64) error
	// Copy copies src to dst inside the store, replacing dst.
	Copy(ctx context.Context, src, dst string) error
	// Delete removes key; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// Ping checks that the store (bucket, directory) is reachable, for readiness.
	Ping(ctx context.Context) error
}

// PutConstraints are signed into a presigned PUT.
type PutConstraints struct {
	// Size is the exact length of the body, 0 to MaxObjectSize.
	Size int64
	// SHA256, if set (32 bytes), is the body's SHA-256: the store refuses any other body.
	SHA256 []byte
}

// GetOptions shape a presigned GET's response.
type GetOptions struct {
	// Filename, if set, makes the response an attachment with this file name.
	Filename string
}

// Presigned is a request a client makes to the store without credentials.
type Presigned struct {
	Method string `json:"method"`
	URL    string `json:"url"`
	// Header holds headers the client must send exactly (they are signed); Host and
	// Content-Length are not included.
	Header    http.Header `json:"headers,omitempty"`
	ExpiresAt time.Time   `json:"expires_at"`
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Key  string
	Size int64
}

// StagingKey is where the client uploads the bytes of upload uploadID of tenantID.
func StagingKey(tenantID, uploadID string) string {
	return "staging/" + tenantID + "/" + uploadID
}

// BlobKey is the content-addressed key of a blob: the tenant and the BLAKE3 hash (64 lower-case
// hex digits). Blobs are deduplicated per tenant, never across tenants.
func BlobKey(tenantID, blake3Hex string) string {
	return "blobs/" + tenantID + "/" + blake3Hex
}

// keySegment is what a key's path segments may contain.
var keySegment = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// CheckKey accepts keys of '/'-separated segments of letters, digits, '.', '_' and '-'
// ("." and ".." excluded), at most 1024 bytes: what StagingKey and BlobKey produce, and
// nothing that could escape the filesystem backend's directory.
func CheckKey(key string) error {
	if key == "" || len(key) > 1024 {
		return fmt.Errorf("storage: invalid key %q: 1 to 1024 bytes", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "." || seg == ".." || !keySegment.MatchString(seg) {
			return fmt.Errorf("storage: invalid key %q: segments of letters, digits, '.', '_' and '-'", key)
		}
	}
	return nil
}

func checkPut(key string, c PutConstraints, ttl time.Duration) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if c.Size < 0 || c.Size > MaxObjectSize {
		return fmt.Errorf("storage: size %d out of range 0..%d", c.Size, MaxObjectSize)
	}
	if c.SHA256 != nil && len(c.SHA256) != 32 {
		return fmt.Errorf("storage: SHA-256 of %d bytes, want 32", len(c.SHA256))
	}
	return checkTTL(ttl)
}

func checkTTL(ttl time.Duration) error {
	if ttl < time.Second || ttl > 7*24*time.Hour {
		return fmt.Errorf("storage: presign ttl %s out of range 1s..7d", ttl)
	}
	return nil
}

// contentDisposition is an attachment header for name (RFC 6266 with an RFC 5987 UTF-8
// parameter, and an ASCII fallback).
func contentDisposition(name string) string {
	var ascii strings.Builder
	for _, r := range name {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' || r == '%' {
			ascii.WriteByte('_')
		} else {
			ascii.WriteRune(r)
		}
	}
	return fmt.Sprintf(`attachment; filename="%s"; filename*=UTF-8''%s`, ascii.String(), pathEscapeAll(name))
}

// pathEscapeAll percent-encodes everything but RFC 5987 attr-chars.
func pathEscapeAll(s string) string {
	const attr = "!#$&+-.^_`|~"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(attr, c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
