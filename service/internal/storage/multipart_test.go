package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/storage"
	"github.com/bitvault/bitvault/service/internal/testsupport/s3test"
)

// TestS3Multipart runs the multipart contract against a real S3 server: presigned parts of
// exact sizes, listing, completion in order, abort.
func TestS3Multipart(t *testing.T) {
	ctx := context.Background()
	s := s3test.New(t).Store(t)
	if _, ok := storage.AsMultipart(newFS(t)); ok {
		t.Fatal("the filesystem backend claims multipart support")
	}
	mp, ok := storage.AsMultipart(s)
	if !ok {
		t.Fatal("S3 does not implement storage.Multipart")
	}
	const key = "staging/t/mp"
	content := bytes.Repeat([]byte("0123456789abcdef"), int(storage.MinPartSize+100)/16)
	sizes := []int64{storage.MinPartSize, int64(len(content)) - storage.MinPartSize}

	id, err := mp.CreateMultipart(ctx, key)
	if err != nil || id == "" {
		t.Fatalf("CreateMultipart = %q, %v", id, err)
	}
	putPart := func(n int32, body []byte, size int64) int {
		t.Helper()
		p, err := mp.PresignPart(ctx, key, id, n, size, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		code, _, _ := send(t, p, body)
		return code
	}
	// A body of another size than signed is refused by the store.
	if code := putPart(2, content[:10], sizes[1]); code < 400 {
		t.Errorf("part of the wrong size: %d, want an error", code)
	}
	if code := putPart(2, content[storage.MinPartSize:], sizes[1]); code != 200 {
		t.Fatalf("part 2: %d", code)
	}
	parts, err := mp.ListParts(ctx, key, id)
	if err != nil || len(parts) != 1 || parts[0].Number != 2 || parts[0].Size != sizes[1] || parts[0].ETag == "" {
		t.Fatalf("ListParts after part 2 = %+v, %v", parts, err)
	}
	if code := putPart(1, content[:storage.MinPartSize], sizes[0]); code != 200 {
		t.Fatalf("part 1: %d", code)
	}
	if parts, err = mp.ListParts(ctx, key, id); err != nil || len(parts) != 2 || parts[0].Number != 1 {
		t.Fatalf("ListParts = %+v, %v", parts, err)
	}
	if err := mp.CompleteMultipart(ctx, key, id, parts); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Open(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, content) {
		t.Fatalf("assembled object: %d bytes, want %d identical", len(got), len(content))
	}
	// The upload is gone once completed.
	if _, err := mp.ListParts(ctx, key, id); !errors.Is(err, storage.ErrNoSuchUpload) {
		t.Errorf("ListParts after completion: %v, want ErrNoSuchUpload", err)
	}
	if err := mp.AbortMultipart(ctx, key, id); err != nil {
		t.Errorf("abort of a completed upload: %v, want nil", err)
	}

	// Abort discards the parts.
	id2, err := mp.CreateMultipart(ctx, key+"2")
	if err != nil {
		t.Fatal(err)
	}
	p, _ := mp.PresignPart(ctx, key+"2", id2, 1, 3, time.Minute)
	if code, _, _ := send(t, p, []byte("abc")); code != 200 {
		t.Fatalf("part: %d", code)
	}
	if err := mp.AbortMultipart(ctx, key+"2", id2); err != nil {
		t.Fatal(err)
	}
	if _, err := mp.ListParts(ctx, key+"2", id2); !errors.Is(err, storage.ErrNoSuchUpload) {
		t.Errorf("ListParts after abort: %v, want ErrNoSuchUpload", err)
	}
}

func TestPresignPartChecks(t *testing.T) {
	mp, _ := storage.AsMultipart(s3test.New(t).Store(t))
	tests := []struct {
		name   string
		key    string
		id     string
		number int32
		size   int64
		ttl    time.Duration
	}{
		{"bad key", "../x", "id", 1, 1, time.Minute},
		{"no id", "k", "", 1, 1, time.Minute},
		{"part 0", "k", "id", 0, 1, time.Minute},
		{"part 10001", "k", "id", storage.MaxParts + 1, 1, time.Minute},
		{"empty part", "k", "id", 1, 0, time.Minute},
		{"ttl", "k", "id", 1, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := mp.PresignPart(context.Background(), tt.key, tt.id, tt.number, tt.size, tt.ttl); err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestS3MultipartMissingBucket: a missing bucket (a misconfigured store) is an error of the
// multipart operations, not ErrNoSuchUpload, on which callers discard the upload; abort does
// not report it as done either.
func TestS3MultipartMissingBucket(t *testing.T) {
	ctx := context.Background()
	b := s3test.New(t)
	const key = "staging/t/mp-missing-bucket"
	id, err := storage.Multipart(b.Store(t)).CreateMultipart(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	missing := *b
	missing.Name += "-missing"
	mp := storage.Multipart(missing.Store(t))
	parts := []storage.Part{{Number: 1, Size: 3, ETag: `"etag"`}}
	tests := []struct {
		name string
		op   func() error
	}{
		{"list parts", func() error { _, err := mp.ListParts(ctx, key, id); return err }},
		{"complete", func() error { return mp.CompleteMultipart(ctx, key, id, parts) }},
		{"abort", func() error { return mp.AbortMultipart(ctx, key, id) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if err == nil || errors.Is(err, storage.ErrNoSuchUpload) {
				t.Errorf("err = %v, want an error other than ErrNoSuchUpload", err)
			}
		})
	}
	// The upload is still there in the real bucket.
	if _, err := storage.Multipart(b.Store(t)).ListParts(ctx, key, id); err != nil {
		t.Errorf("ListParts in the real bucket: %v", err)
	}
}
