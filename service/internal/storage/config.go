package storage

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bitvault/bitvault/service/internal/platform/config"
)

// Environment variables read by LoadConfig.
const (
	// EnvStorage selects the object store: "s3", "fs" (files under a directory, served by
	// bitvaultd itself: the single-binary dev setup) or "none" (the files API answers 503).
	// Required when bitvaultd has a database.
	EnvStorage = "BITVAULT_STORAGE"

	// EnvS3Endpoint is the S3 endpoint as bitvaultd reaches it (e.g. http://minio:9000);
	// unset for AWS.
	EnvS3Endpoint = "BITVAULT_S3_ENDPOINT"
	// EnvS3PublicEndpoint, if set, is the endpoint presigned URLs use (as clients reach the
	// store).
	EnvS3PublicEndpoint = "BITVAULT_S3_PUBLIC_ENDPOINT"
	// EnvS3Region is the store's region (default us-east-1).
	EnvS3Region = "BITVAULT_S3_REGION"
	// EnvS3Bucket is the bucket (required; it must exist).
	EnvS3Bucket = "BITVAULT_S3_BUCKET"
	// EnvS3AccessKeyID and EnvS3SecretAccessKey are the credentials (required; the standard
	// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are read when they are unset).
	EnvS3AccessKeyID     = "BITVAULT_S3_ACCESS_KEY_ID"
	EnvS3SecretAccessKey = "BITVAULT_S3_SECRET_ACCESS_KEY"
	// EnvS3VirtualHosted=true selects virtual-hosted-style URLs (default: path-style).
	EnvS3VirtualHosted = "BITVAULT_S3_VIRTUAL_HOSTED"

	// EnvStorageDir is the filesystem backend's directory (default <BITVAULT_DATA_DIR>/objects).
	EnvStorageDir = "BITVAULT_STORAGE_DIR"
	// EnvPublicURL is bitvaultd's URL as clients reach it (e.g. http://localhost:8080): the
	// filesystem backend's presigned URLs start with it. Required for fs.
	EnvPublicURL = "BITVAULT_PUBLIC_URL"
	// EnvStorageKey is the filesystem backend's URL-signing key: at least 32 random bytes,
	// base64-encoded, the same on every replica. Unset, it is derived from the access-token
	// key.
	EnvStorageKey = "BITVAULT_STORAGE_KEY"
)

// Backends.
const (
	BackendS3   = "s3"
	BackendFS   = "fs"
	BackendNone = "none"
)

// DefaultS3Region is the default of EnvS3Region.
const DefaultS3Region = "us-east-1"

// Config is the validated object-store configuration.
type Config struct {
	Backend string
	S3      S3Config
	// FSDir, PublicURL and FSKey configure the filesystem backend.
	FSDir     string
	PublicURL string
	FSKey     []byte
}

// String describes the configuration without secrets.
func (c Config) String() string {
	switch c.Backend {
	case BackendS3:
		ep := c.S3.Endpoint
		if ep == "" {
			ep = "aws"
		}
		return fmt.Sprintf("s3 endpoint=%s bucket=%s region=%s", ep, c.S3.Bucket, c.S3.Region)
	case BackendFS:
		return fmt.Sprintf("fs dir=%s public_url=%s", c.FSDir, c.PublicURL)
	}
	return c.Backend
}

// LoadConfig reads the object-store settings through lookup. dataDir is BITVAULT_DATA_DIR
// (the filesystem backend's default parent); keyFallback derives the filesystem backend's
// signing key when EnvStorageKey is unset. Errors name the variable and never echo secrets.
func LoadConfig(lookup func(string) (string, bool), dataDir string, keyFallback []byte) (Config, error) {
	get := func(key string) string {
		v, _ := lookup(key)
		return strings.TrimSpace(v)
	}
	c := Config{Backend: strings.ToLower(get(EnvStorage))}
	var errs []error
	switch c.Backend {
	case "":
		errs = append(errs, fmt.Errorf("%s is required: %s (an S3-compatible store), %s (files under a directory, dev setups) or %s (the files API answers 503)", EnvStorage, BackendS3, BackendFS, BackendNone))
	case BackendNone:
	case BackendS3:
		c.S3 = S3Config{
			Endpoint:        get(EnvS3Endpoint),
			PublicEndpoint:  get(EnvS3PublicEndpoint),
			Region:          get(EnvS3Region),
			Bucket:          get(EnvS3Bucket),
			AccessKeyID:     get(EnvS3AccessKeyID),
			SecretAccessKey: get(EnvS3SecretAccessKey),
		}
		if c.S3.Region == "" {
			c.S3.Region = DefaultS3Region
		}
		if c.S3.AccessKeyID == "" {
			c.S3.AccessKeyID = get("AWS_ACCESS_KEY_ID")
		}
		if c.S3.SecretAccessKey == "" {
			c.S3.SecretAccessKey = get("AWS_SECRET_ACCESS_KEY")
		}
		if v := get(EnvS3VirtualHosted); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: want true or false", EnvS3VirtualHosted, v))
			}
			c.S3.VirtualHosted = b
		}
		if c.S3.Bucket == "" {
			errs = append(errs, fmt.Errorf("%s is required with %s=s3", EnvS3Bucket, EnvStorage))
		}
		if c.S3.AccessKeyID == "" || c.S3.SecretAccessKey == "" {
			errs = append(errs, fmt.Errorf("%s and %s (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) are required with %s=s3", EnvS3AccessKeyID, EnvS3SecretAccessKey, EnvStorage))
		}
		if err := validateEndpoints(c.S3); err != nil {
			errs = append(errs, err)
		}
	case BackendFS:
		c.FSDir = get(EnvStorageDir)
		if c.FSDir == "" {
			c.FSDir = filepath.Join(dataDir, "objects")
		}
		if !filepath.IsAbs(c.FSDir) {
			errs = append(errs, fmt.Errorf("%s=%q: must be an absolute path", EnvStorageDir, c.FSDir))
		}
		c.PublicURL = strings.TrimRight(get(EnvPublicURL), "/")
		if c.PublicURL == "" {
			errs = append(errs, fmt.Errorf("%s is required with %s=fs: bitvaultd's URL as clients reach it, e.g. http://localhost:8080", EnvPublicURL, EnvStorage))
		} else if _, err := parsePublicURL(c.PublicURL); err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: want http(s)://host[:port][/prefix]", EnvPublicURL, c.PublicURL))
		}
		switch v := get(EnvStorageKey); {
		case v != "":
			key, err := config.DecodeBase64(v)
			if err != nil || len(key) < MinFSKeyLen {
				errs = append(errs, fmt.Errorf("%s: want at least %d random bytes, base64-encoded (openssl rand -base64 32)", EnvStorageKey, MinFSKeyLen))
			}
			c.FSKey = key
		case len(keyFallback) > 0:
			m := hmac.New(sha256.New, keyFallback)
			m.Write([]byte("bitvault storage fs url signing v1"))
			c.FSKey = m.Sum(nil)
		default:
			errs = append(errs, fmt.Errorf("%s is required with %s=fs", EnvStorageKey, EnvStorage))
		}
	default:
		errs = append(errs, fmt.Errorf("%s=%q: want %s, %s or %s", EnvStorage, c.Backend, BackendS3, BackendFS, BackendNone))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}

func validateEndpoints(c S3Config) error {
	c.Bucket, c.AccessKeyID, c.SecretAccessKey = "b", "k", "s"
	if c.Region == "" {
		c.Region = DefaultS3Region
	}
	if _, err := NewS3(c); err != nil {
		return fmt.Errorf("%s / %s: %w", EnvS3Endpoint, EnvS3PublicEndpoint, err)
	}
	return nil
}

// Open returns the configured object store; nil for BackendNone. The filesystem backend's
// directory is created.
func Open(c Config) (ObjectStore, error) {
	switch c.Backend {
	case BackendS3:
		return NewS3(c.S3)
	case BackendFS:
		return NewFS(c.FSDir, c.PublicURL, c.FSKey)
	case BackendNone:
		return nil, nil
	}
	return nil, fmt.Errorf("storage: unknown backend %q", c.Backend)
}
