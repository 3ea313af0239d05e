package files

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bitvault/bitvault/service/internal/storage"
)

// Environment variables read by LoadConfig.
const (
	// EnvQuotaBytes and EnvQuotaFiles are the default per-tenant quotas (a tenant's quotas
	// row overrides them); unset or 0: unlimited.
	EnvQuotaBytes = "BITVAULT_QUOTA_BYTES"
	EnvQuotaFiles = "BITVAULT_QUOTA_FILES"
	// EnvUploadTTL is how long an upload may take between POST /v1/files and its commit
	// (default 1h).
	EnvUploadTTL = "BITVAULT_UPLOAD_TTL"
	// EnvDownloadTTL is the lifetime of presigned downloads (default 5m).
	EnvDownloadTTL = "BITVAULT_DOWNLOAD_TTL"
	// EnvBlobGrace is how long an unreferenced blob is kept before the GC consumer deletes
	// it (default 0: a purge deletes it at once; the GC sweep finishes interrupted ones).
	EnvBlobGrace = "BITVAULT_BLOB_GRACE"
	// EnvMultipartThreshold is the size in bytes above which an upload is staged in parts,
	// resumable, when the object store supports it (S3); default 64 MiB, 0: never.
	EnvMultipartThreshold = "BITVAULT_MULTIPART_THRESHOLD"
	// EnvMultipartPartSize is the size in bytes of a multipart upload's parts (default 16 MiB,
	// at least 5 MiB: S3's minimum); grown for files that would need more than 10,000 parts.
	EnvMultipartPartSize = "BITVAULT_MULTIPART_PART_SIZE"
	// EnvMultipartTTL is how long a multipart upload may take (default 24h): long enough to
	// resume a large upload interrupted for a while.
	EnvMultipartTTL = "BITVAULT_MULTIPART_TTL"
)

// LoadConfig reads the files settings through lookup.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	get := func(key string) string {
		v, _ := lookup(key)
		return strings.TrimSpace(v)
	}
	var c Config
	var errs []error
	count := func(key string, dst *int64) {
		if v := get(key); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				errs = append(errs, fmt.Errorf("%s=%q: want a number >= 0 (0: unlimited)", key, v))
			}
			*dst = n
		}
	}
	count(EnvQuotaBytes, &c.BytesLimit)
	count(EnvQuotaFiles, &c.FilesLimit)
	ttl := func(key string, dst *time.Duration, lo, hi time.Duration) {
		if v := get(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < lo || d > hi {
				errs = append(errs, fmt.Errorf("%s=%q: want a duration between %s and %s", key, v, lo, hi))
			}
			*dst = d
		}
	}
	ttl(EnvUploadTTL, &c.UploadTTL, time.Minute, 7*24*time.Hour)
	ttl(EnvDownloadTTL, &c.DownloadTTL, 10*time.Second, 7*24*time.Hour)
	ttl(EnvMultipartTTL, &c.MultipartTTL, time.Minute, 7*24*time.Hour)
	count(EnvMultipartThreshold, &c.MultipartThreshold)
	if v := get(EnvMultipartThreshold); v == "0" {
		c.MultipartThreshold = MultipartOff
	}
	count(EnvMultipartPartSize, &c.PartSize)
	if c.PartSize != 0 && (c.PartSize < storage.MinPartSize || c.PartSize > storage.MaxPartSize) {
		errs = append(errs, fmt.Errorf("%s=%d: want %d (5 MiB) to %d (5 GiB)", EnvMultipartPartSize, c.PartSize, storage.MinPartSize, storage.MaxPartSize))
	}
	if v := get(EnvBlobGrace); v != "0" {
		ttl(EnvBlobGrace, &c.BlobGrace, time.Second, 30*24*time.Hour)
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}
