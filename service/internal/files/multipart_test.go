package files_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bitvault/bitvault/service/internal/files"
	"github.com/bitvault/bitvault/service/internal/storage"
	"github.com/bitvault/bitvault/service/internal/testsupport/apitest"
	"github.com/bitvault/bitvault/service/internal/testsupport/s3test"
)

// The multipart tests use S3's smallest parts: 5 MiB parts above a 5 MiB threshold, and an
// 11 MiB file (parts of 5, 5 and 1 MiB).
const (
	testPartSize = storage.MinPartSize
	mpFileSize   = 11 << 20
)

func smallParts(c *files.Config) {
	c.MultipartThreshold = testPartSize
	c.PartSize = testPartSize
}

// mpEnv is an env on S3 with small parts, and a raw S3 client to inspect the bucket.
type mpEnv struct {
	*env
	s3     *s3.Client
	bucket string
	cfg    storage.S3Config // the bucket's
}

func newMultipartEnv(t *testing.T) *mpEnv {
	t.Helper()
	return newMultipartEnvWith(t, func(s *storage.S3) storage.ObjectStore { return s })
}

// newMultipartEnvWith is newMultipartEnv on the store wrap makes of the bucket's.
func newMultipartEnvWith(t *testing.T, wrap func(*storage.S3) storage.ObjectStore) *mpEnv {
	t.Helper()
	b := s3test.New(t)
	a := apitest.NewWithStore(t, func(t testing.TB, _ *http.ServeMux, _ string) storage.ObjectStore { return wrap(b.Store(t)) }, smallParts)
	e := &env{Env: a, t: t, url: a.URL, files: a.Files, id: a.Identity, store: a.Objects, super: a.Super, clock: a.Clock, client: a.Client}
	raw := s3.New(s3.Options{
		Region: b.Region, BaseEndpoint: aws.String(b.Endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(b.AccessKey, b.SecretKey, ""),
	})
	return &mpEnv{env: e, s3: raw, bucket: b.Name, cfg: b.Config()}
}

// staging lists what the bucket holds under staging/: objects and multipart uploads.
func (e *mpEnv) staging() (objects, uploads []string) {
	e.t.Helper()
	ctx := context.Background()
	out, err := e.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(e.bucket), Prefix: aws.String("staging/")})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, o := range out.Contents {
		objects = append(objects, aws.ToString(o.Key))
	}
	mu, err := e.s3.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(e.bucket), Prefix: aws.String("staging/")})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, u := range mu.Uploads {
		uploads = append(uploads, aws.ToString(u.Key))
	}
	return objects, uploads
}

func (e *mpEnv) wantStagingEmpty() {
	e.t.Helper()
	if objects, uploads := e.staging(); len(objects)+len(uploads) > 0 {
		e.t.Fatalf("staging holds objects %v and multipart uploads %v, want nothing", objects, uploads)
	}
}

// mpUpload is POST /v1/files' answer for a multipart upload.
type mpUpload struct {
	ID        string               `json:"upload_id"`
	Upload    *storage.Presigned   `json:"upload"`
	Multipart *files.MultipartInfo `json:"multipart"`
}

func (e *mpEnv) startMultipart(u user, path string, size int, hash string) mpUpload {
	e.t.Helper()
	var up mpUpload
	e.want(e.do("POST", "/v1/files", u.token, jsonObj{"path": path, "size": size, "blake3": hash}), 201, "").Decode(e.t, &up)
	if up.Multipart == nil || up.Upload != nil {
		e.t.Fatalf("upload of %d bytes: multipart %+v, single PUT %+v; want multipart only", size, up.Multipart, up.Upload)
	}
	return up
}

// putParts presigns and sends the given parts of content.
func (e *mpEnv) putParts(u user, up mpUpload, content []byte, numbers ...int) {
	e.t.Helper()
	var res files.PartUploads
	e.want(e.do("POST", "/v1/uploads/"+up.ID+"/parts", u.token, jsonObj{"part_numbers": numbers}), 200, "").Decode(e.t, &res)
	if len(res.Parts) != len(numbers) {
		e.t.Fatalf("asked for parts %v, got %d", numbers, len(res.Parts))
	}
	for _, p := range res.Parts {
		start := int64(p.Number-1) * up.Multipart.PartSize
		if code := e.Put(p.Upload, content[start:start+p.Size]); code != 200 {
			e.t.Fatalf("PUT part %d: %d", p.Number, code)
		}
	}
}

func (e *mpEnv) uploadState(u user, id string) files.UploadState {
	e.t.Helper()
	var st files.UploadState
	e.want(e.do("GET", "/v1/uploads/"+id, u.token, nil), 200, "").Decode(e.t, &st)
	return st
}

func partNumbers(ps []files.Part) []int {
	out := []int{}
	for _, p := range ps {
		out = append(out, p.Number)
	}
	return out
}

func randomContent(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestMultipartUpload goes through a resumed multipart upload: some parts, the state with
// the stored parts, a commit refused for the missing part, the rest, the commit, and the
// download of identical bytes.
func TestMultipartUpload(t *testing.T) {
	e := newMultipartEnv(t)
	owner, _, viewer := e.tenant("acme")
	content := randomContent(t, mpFileSize)

	up := e.startMultipart(owner, "/big/file.bin", len(content), blake3Hex(content))
	if *up.Multipart != (files.MultipartInfo{PartSize: testPartSize, Parts: 3}) {
		t.Fatalf("multipart = %+v, want 3 parts of 5 MiB", *up.Multipart)
	}
	st := e.uploadState(owner, up.ID)
	if st.Status != "pending" || len(st.Parts) != 0 || st.Multipart == nil {
		t.Fatalf("fresh upload state = %+v", st)
	}

	// Interrupted after two parts (sent in reverse order: order does not matter).
	e.putParts(owner, up, content, 2)
	e.putParts(owner, up, content, 1)
	st = e.uploadState(owner, up.ID)
	if got := partNumbers(st.Parts); fmt.Sprint(got) != "[1 2]" || st.Parts[0].Size != testPartSize || st.Parts[0].ETag == "" {
		t.Fatalf("stored parts = %+v, want 1 and 2", st.Parts)
	}
	r := e.want(e.commitReq(owner, up.ID, ""), 409, "upload_incomplete")
	if !strings.Contains(string(r.Body), "part 3 of 3") {
		t.Errorf("upload_incomplete does not name the missing part: %s", r.Body)
	}
	// A viewer cannot look at it nor presign parts.
	e.want(e.do("GET", "/v1/uploads/"+up.ID, viewer.token, nil), 403, "")

	// Resume: the missing part only, then commit.
	e.putParts(owner, up, content, 3)
	var res result
	e.want(e.commitReq(owner, up.ID, ""), 201, "").Decode(t, &res)
	if res.Version.Size != int64(len(content)) {
		t.Fatalf("version size %d", res.Version.Size)
	}
	got, _ := e.download(owner, res.Node.ID, "")
	if !bytes.Equal(got, content) {
		t.Fatalf("downloaded %d bytes, not the %d uploaded", len(got), len(content))
	}
	e.wantStagingEmpty()
	if st := e.uploadState(owner, up.ID); st.Status != "committed" || len(st.Parts) != 0 {
		t.Errorf("state after commit = %s with %d parts", st.Status, len(st.Parts))
	}
	// Small files stay single PUTs on S3.
	e.uploadFile(owner, "/small.txt", []byte("small"), "")
}

// TestMultipartRejected: a wrong hash rejects the upload and leaves nothing in staging (the
// multipart upload is completed, verified, then deleted); an expired one is aborted by the GC.
func TestMultipartRejected(t *testing.T) {
	e := newMultipartEnv(t)
	owner, _, _ := e.tenant("acme")
	content := randomContent(t, mpFileSize)

	up := e.startMultipart(owner, "/wrong.bin", len(content), blake3Hex([]byte("other content")))
	e.putParts(owner, up, content, 1, 2, 3)
	e.want(e.commitReq(owner, up.ID, ""), 422, "hash_mismatch")
	e.wantStagingEmpty()
	if st := e.uploadState(owner, up.ID); st.Status != "rejected" {
		t.Errorf("status %s, want rejected", st.Status)
	}
	e.want(e.do("POST", "/v1/uploads/"+up.ID+"/parts", owner.token, jsonObj{"part_numbers": []int{1}}), 409, "conflict")

	// Abandoned after one part: expired by the GC, its multipart upload aborted.
	up = e.startMultipart(owner, "/abandoned.bin", len(content), blake3Hex(content))
	e.putParts(owner, up, content, 1)
	if _, uploads := e.staging(); len(uploads) != 1 {
		t.Fatalf("multipart uploads in staging: %v, want 1", uploads)
	}
	e.clock.Advance(files.DefaultMultipartTTL + time.Second)
	if st := e.uploadState(owner, up.ID); st.Status != "expired" || len(st.Parts) != 0 {
		t.Errorf("state past expiry = %s with %d parts", st.Status, len(st.Parts))
	}
	rep, err := e.files.CollectGarbage(context.Background(), owner.p.TenantID)
	if err != nil || rep.Uploads != 1 {
		t.Fatalf("CollectGarbage = %+v, %v; want 1 upload", rep, err)
	}
	e.wantStagingEmpty()
	e.want(e.commitReq(owner, up.ID, ""), 409, "conflict")
}

// TestMultipartRequests checks the new endpoints' refusals.
func TestMultipartRequests(t *testing.T) {
	e := newMultipartEnv(t)
	owner, _, _ := e.tenant("acme")
	other, _, _ := e.tenant("other")
	content := randomContent(t, mpFileSize)
	up := e.startMultipart(owner, "/f.bin", len(content), blake3Hex(content))
	single := e.startUpload(owner, "/small.txt", []byte("small"))

	tests := []struct {
		name   string
		token  string
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"no part numbers", owner.token, "POST", "/v1/uploads/" + up.ID + "/parts", jsonObj{"part_numbers": []int{}}, 400, "invalid_argument"},
		{"part 0", owner.token, "POST", "/v1/uploads/" + up.ID + "/parts", jsonObj{"part_numbers": []int{0}}, 400, "invalid_argument"},
		{"beyond the last part", owner.token, "POST", "/v1/uploads/" + up.ID + "/parts", jsonObj{"part_numbers": []int{4}}, 400, "invalid_argument"},
		{"single PUT upload", owner.token, "POST", "/v1/uploads/" + single.ID + "/parts", jsonObj{"part_numbers": []int{1}}, 409, "conflict"},
		{"unknown upload", owner.token, "GET", "/v1/uploads/00000000-0000-4000-8000-000000000000", nil, 404, "not_found"},
		{"not an id", owner.token, "GET", "/v1/uploads/nope", nil, 404, "not_found"},
		{"another tenant's", other.token, "GET", "/v1/uploads/" + up.ID, nil, 404, "not_found"},
		{"another tenant's parts", other.token, "POST", "/v1/uploads/" + up.ID + "/parts", jsonObj{"part_numbers": []int{1}}, 404, "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.want(e.do(tt.method, tt.path, tt.token, tt.body), tt.status, tt.code)
		})
	}
	// A single PUT upload's state: no multipart, no parts.
	if st := e.uploadState(owner, single.ID); st.Multipart != nil || len(st.Parts) != 0 || st.Status != "pending" {
		t.Errorf("single PUT upload state = %+v", st)
	}
}

// TestMultipartFSBackend: the filesystem backend has no multipart: a large upload is one PUT.
func TestMultipartFSBackend(t *testing.T) {
	e := newEnv(t, backendFS, smallParts)
	owner, _, _ := e.tenant("acme")
	content := randomContent(t, mpFileSize)
	var up mpUpload
	e.want(e.do("POST", "/v1/files", owner.token, jsonObj{"path": "/big.bin", "size": len(content), "blake3": blake3Hex(content)}), 201, "").Decode(t, &up)
	if up.Multipart != nil || up.Upload == nil {
		t.Fatalf("fs upload: multipart %+v, PUT %+v; want a single PUT", up.Multipart, up.Upload)
	}
	if code := e.Put(*up.Upload, content); code != 200 {
		t.Fatalf("PUT: %d", code)
	}
	var res result
	e.want(e.commitReq(owner, up.ID, ""), 201, "").Decode(t, &res)
	if got, _ := e.download(owner, res.Node.ID, ""); !bytes.Equal(got, content) {
		t.Fatal("downloaded content differs")
	}
}
