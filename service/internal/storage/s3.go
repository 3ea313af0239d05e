package storage

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// S3Config configures the S3 backend.
type S3Config struct {
	// Endpoint is the store's URL as bitvaultd reaches it, e.g. http://minio:9000; empty for
	// AWS itself.
	Endpoint string
	// PublicEndpoint, if set, replaces Endpoint in presigned URLs: the store's URL as clients
	// reach it (e.g. http://localhost:9000 when bitvaultd reaches it as http://minio:9000).
	PublicEndpoint string
	// Region is the store's region (signatures name it; versitygw and MinIO reject others).
	Region string
	// Bucket holds every object (staging/… and blobs/…); it must exist.
	Bucket string
	// AccessKeyID and SecretAccessKey are static credentials.
	AccessKeyID, SecretAccessKey string
	// VirtualHosted selects virtual-hosted-style URLs (bucket.host); the default is
	// path-style (host/bucket), which every S3-compatible store supports.
	VirtualHosted bool
	// HTTPClient, if set, is used for bitvaultd's own requests.
	HTTPClient *http.Client
}

// S3 is the S3 backend.
type S3 struct {
	cfg     S3Config
	client  *s3.Client
	presign *s3.PresignClient
}

// NewS3 returns the S3 backend for cfg. It does not connect (see Ping).
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("storage: S3 bucket is required")
	}
	if cfg.Region == "" {
		return nil, errors.New("storage: S3 region is required")
	}
	if cfg.AccessKeyID == "" || cfg.SecretAccessKey == "" {
		return nil, errors.New("storage: S3 access key id and secret access key are required")
	}
	for _, ep := range []string{cfg.Endpoint, cfg.PublicEndpoint} {
		if ep == "" {
			continue
		}
		u, err := url.Parse(ep)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("storage: S3 endpoint %q: want http(s)://host[:port]", ep)
		}
	}
	options := func(endpoint string) s3.Options {
		o := s3.Options{
			Region:       cfg.Region,
			Credentials:  credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, ""),
			UsePathStyle: !cfg.VirtualHosted,
			// Checksums only where the API requires them: S3-compatible stores differ in
			// their support of the SDK's default CRC trailers.
			RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
			ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		}
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		if cfg.HTTPClient != nil {
			o.HTTPClient = cfg.HTTPClient
		}
		return o
	}
	client := s3.New(options(cfg.Endpoint))
	presignClient := client
	if cfg.PublicEndpoint != "" {
		presignClient = s3.New(options(cfg.PublicEndpoint))
	}
	return &S3{cfg: cfg, client: client, presign: s3.NewPresignClient(presignClient)}, nil
}

// Backend implements ObjectStore.
func (s *S3) Backend() string { return "s3" }

// Bucket is the configured bucket.
func (s *S3) Bucket() string { return s.cfg.Bucket }

// PresignPut implements ObjectStore: the signature covers Content-Length (for a non-empty
// body) and, with c.SHA256, the x-amz-checksum-sha256 header, which the store checks
// against the body.
func (s *S3) PresignPut(ctx context.Context, key string, c PutConstraints, ttl time.Duration) (Presigned, error) {
	if err := checkPut(key, c, ttl); err != nil {
		return Presigned{}, err
	}
	in := &s3.PutObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), ContentLength: aws.Int64(c.Size)}
	if c.SHA256 != nil {
		in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(c.SHA256))
	}
	now := time.Now()
	req, err := s.presign.PresignPutObject(ctx, in, s3.WithPresignExpires(ttl))
	if err != nil {
		return Presigned{}, fmt.Errorf("storage: presign PUT %s: %w", key, err)
	}
	return presigned(req, now.Add(ttl)), nil
}

// PresignGet implements ObjectStore.
func (s *S3) PresignGet(ctx context.Context, key string, o GetOptions, ttl time.Duration) (Presigned, error) {
	if err := CheckKey(key); err != nil {
		return Presigned{}, err
	}
	if err := checkTTL(ttl); err != nil {
		return Presigned{}, err
	}
	in := &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)}
	if o.Filename != "" {
		in.ResponseContentDisposition = aws.String(contentDisposition(o.Filename))
		in.ResponseContentType = aws.String("application/octet-stream")
	}
	now := time.Now()
	req, err := s.presign.PresignGetObject(ctx, in, s3.WithPresignExpires(ttl))
	if err != nil {
		return Presigned{}, fmt.Errorf("storage: presign GET %s: %w", key, err)
	}
	return presigned(req, now.Add(ttl)), nil
}

func presigned(req *v4.PresignedHTTPRequest, expires time.Time) Presigned {
	p := Presigned{Method: req.Method, URL: req.URL, ExpiresAt: expires.UTC().Truncate(time.Second)}
	for k, vs := range req.SignedHeader {
		if strings.EqualFold(k, "Host") || strings.EqualFold(k, "Content-Length") {
			continue
		}
		if p.Header == nil {
			p.Header = http.Header{}
		}
		for _, v := range vs {
			p.Header.Add(k, v)
		}
	}
	return p
}

// Stat implements ObjectStore.
func (s *S3) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := CheckKey(key); err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		return ObjectInfo{}, s.wrap("stat", key, err)
	}
	return ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength)}, nil
}

// Open implements ObjectStore.
func (s *S3) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		return nil, s.wrap("open", key, err)
	}
	return out.Body, nil
}

// Put implements ObjectStore. The payload is sent unsigned (UNSIGNED-PAYLOAD), so r need not
// be seekable.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), Body: r, ContentLength: aws.Int64(size),
	}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	return s.wrap("put", key, err)
}

// Copy implements ObjectStore (CopyObject: at most MaxObjectSize).
func (s *S3) Copy(ctx context.Context, src, dst string) error {
	if err := CheckKey(src); err != nil {
		return err
	}
	if err := CheckKey(dst); err != nil {
		return err
	}
	// Keys are CheckKey-safe: only '/' would need no escaping, and nothing else does.
	_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(dst), CopySource: aws.String(s.cfg.Bucket + "/" + src),
	})
	return s.wrap("copy "+src+" to", dst, err)
}

// Delete implements ObjectStore.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err = s.wrap("delete", key, err); errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// Ping implements ObjectStore: HeadBucket.
func (s *S3) Ping(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.cfg.Bucket)})
	if err != nil {
		return fmt.Errorf("storage: bucket %s at %s: %w", s.cfg.Bucket, s.endpoint(), err)
	}
	return nil
}

// CreateBucket creates the configured bucket (tests and dev setups).
func (s *S3) CreateBucket(ctx context.Context) error {
	_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(s.cfg.Bucket)})
	if err != nil {
		return fmt.Errorf("storage: create bucket %s at %s: %w", s.cfg.Bucket, s.endpoint(), err)
	}
	return nil
}

func (s *S3) endpoint() string {
	if s.cfg.Endpoint == "" {
		return "s3." + s.cfg.Region + ".amazonaws.com"
	}
	return s.cfg.Endpoint
}

// wrap maps a 404 to ErrNotFound and names the operation, bucket and key.
func (s *S3) wrap(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if re, ok := errors.AsType[*awshttp.ResponseError](err); ok && re.HTTPStatusCode() == http.StatusNotFound {
		return fmt.Errorf("storage: %s s3://%s/%s: %w", op, s.cfg.Bucket, key, ErrNotFound)
	}
	return fmt.Errorf("storage: %s s3://%s/%s: %w", op, s.cfg.Bucket, key, err)
}

// CreateMultipart implements Multipart.
func (s *S3) CreateMultipart(ctx context.Context, key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		return "", s.wrap("create multipart upload", key, err)
	}
	return aws.ToString(out.UploadId), nil
}

// PresignPart implements Multipart: the signature covers the part's Content-Length, so the
// store refuses a part of another size.
func (s *S3) PresignPart(ctx context.Context, key, id string, number int32, size int64, ttl time.Duration) (Presigned, error) {
	if err := checkPart(key, id, number, size, ttl); err != nil {
		return Presigned{}, err
	}
	now := time.Now()
	req, err := s.presign.PresignUploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: aws.String(id),
		PartNumber: aws.Int32(number), ContentLength: aws.Int64(size),
	}, s3.WithPresignExpires(ttl))
	if err != nil {
		return Presigned{}, fmt.Errorf("storage: presign part %d of %s: %w", number, key, err)
	}
	return presigned(req, now.Add(ttl)), nil
}

// ListParts implements Multipart, following the pages (1000 parts each).
func (s *S3) ListParts(ctx context.Context, key, id string) ([]Part, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	var parts []Part
	p := s3.NewListPartsPaginator(s.client, &s3.ListPartsInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: aws.String(id)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.wrapMultipart("list parts of", key, err)
		}
		for _, pt := range page.Parts {
			parts = append(parts, Part{Number: aws.ToInt32(pt.PartNumber), Size: aws.ToInt64(pt.Size), ETag: aws.ToString(pt.ETag)})
		}
	}
	return parts, nil
}

// CompleteMultipart implements Multipart.
func (s *S3) CompleteMultipart(ctx context.Context, key, id string, parts []Part) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	done := make([]types.CompletedPart, len(parts))
	for i, p := range parts {
		done[i] = types.CompletedPart{PartNumber: aws.Int32(p.Number), ETag: aws.String(p.ETag)}
	}
	_, err := s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: aws.String(id),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done},
	})
	return s.wrapMultipart("complete multipart upload", key, err)
}

// AbortMultipart implements Multipart.
func (s *S3) AbortMultipart(ctx context.Context, key, id string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key), UploadId: aws.String(id)})
	if err = s.wrapMultipart("abort multipart upload", key, err); errors.Is(err, ErrNoSuchUpload) {
		return nil
	}
	return err
}

// wrapMultipart is wrap, mapping S3's NoSuchUpload error, and only that, to ErrNoSuchUpload.
// Other 404s (NoSuchBucket: a misconfigured store) stay errors: callers discard an upload on
// ErrNoSuchUpload, which must not happen because the bucket is missing.
func (s *S3) wrapMultipart(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if isNoSuchUpload(err) {
		return fmt.Errorf("storage: %s s3://%s/%s: %w", op, s.cfg.Bucket, key, ErrNoSuchUpload)
	}
	return fmt.Errorf("storage: %s s3://%s/%s: %w", op, s.cfg.Bucket, key, err)
}

// isNoSuchUpload reports whether err is S3's NoSuchUpload: the modelled *types.NoSuchUpload
// (AbortMultipartUpload) or an API error with that code (ListParts and
// CompleteMultipartUpload do not model it).
func isNoSuchUpload(err error) bool {
	if _, ok := errors.AsType[*types.NoSuchUpload](err); ok {
		return true
	}
	// smithy.APIError, without importing smithy-go for one method.
	if ae, ok := errors.AsType[interface {
		error
		ErrorCode() string
	}](err); ok {
		return ae.ErrorCode() == "NoSuchUpload"
	}
	return false
}
