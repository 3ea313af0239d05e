package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/storage"
	"github.com/bitvault/bitvault/service/internal/testsupport/s3test"
)

func TestMain(m *testing.M) {
	os.Exit(s3test.Main(m.Run))
}

// backend is one ObjectStore under test.
type backend struct {
	name string
	new  func(t *testing.T) storage.ObjectStore
}

// newFS serves a filesystem backend's presigned URLs from an httptest server, as bitvaultd
// mounts them.
func newFS(t *testing.T) *storage.FS {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	fs, err := storage.NewFS(t.TempDir(), srv.URL, bytes.Repeat([]byte("s"), 32))
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(storage.BlobsPath, fs.Handler())
	return fs
}

var backends = []backend{
	{"s3", func(t *testing.T) storage.ObjectStore { return s3test.New(t).Store(t) }},
	{"fs", func(t *testing.T) storage.ObjectStore { return newFS(t) }},
}

// send performs a presigned request with body (nil for GET), adding the signed headers.
func send(t *testing.T, p storage.Presigned, body []byte, tweak ...func(*http.Request)) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(p.Method, p.URL, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range p.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	for _, f := range tweak {
		f(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", p.Method, p.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func readAll(t *testing.T, s storage.ObjectStore, key string) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestContract runs the same cases against every backend.
func TestContract(t *testing.T) {
	ctx := context.Background()
	const tenant = "aaaaaaaa-0000-4000-8000-000000000001"
	body := []byte("hello, bitvault\n")
	sum := sha256.Sum256(body)
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s := be.new(t)
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if s.Backend() != be.name {
				t.Errorf("Backend() = %q", s.Backend())
			}
			cases := []struct {
				name     string
				c        storage.PutConstraints
				body     []byte
				tweak    func(*http.Request)
				mutate   func(u string) string
				wantOK   bool
				wantSize int64
			}{
				{name: "exact size", c: storage.PutConstraints{Size: int64(len(body))}, body: body, wantOK: true, wantSize: int64(len(body))},
				{name: "exact size and checksum", c: storage.PutConstraints{Size: int64(len(body)), SHA256: sum[:]}, body: body, wantOK: true, wantSize: int64(len(body))},
				{name: "empty object", c: storage.PutConstraints{Size: 0}, body: []byte{}, wantOK: true},
				{name: "longer body", c: storage.PutConstraints{Size: int64(len(body)) - 1}, body: body},
				{name: "shorter body", c: storage.PutConstraints{Size: int64(len(body)) + 1}, body: body},
				{name: "tampered body, same size", c: storage.PutConstraints{Size: int64(len(body)), SHA256: sum[:]}, body: bytes.ToUpper(body)},
				{name: "signed checksum header dropped", c: storage.PutConstraints{Size: int64(len(body)), SHA256: sum[:]}, body: bytes.ToUpper(body),
					tweak: func(r *http.Request) {
						for k := range r.Header {
							if strings.Contains(strings.ToLower(k), "checksum") {
								r.Header.Del(k)
							}
						}
					}},
				{name: "other key in the URL", c: storage.PutConstraints{Size: int64(len(body))}, body: body,
					mutate: func(u string) string { return strings.Replace(u, "/staging/", "/blobs/", 1) }},
				{name: "longer expiry in the URL", c: storage.PutConstraints{Size: int64(len(body))}, body: body,
					mutate: func(u string) string {
						pu, _ := url.Parse(u)
						q := pu.Query()
						for _, k := range []string{"X-Amz-Expires", "X-Bv-Expires"} {
							if v := q.Get(k); v != "" {
								q.Set(k, v+"0")
							}
						}
						pu.RawQuery = q.Encode()
						return pu.String()
					}},
			}
			for i, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					key := storage.StagingKey(tenant, strings.Repeat(string(rune('a'+i)), 8))
					p, err := s.PresignPut(ctx, key, tc.c, time.Minute)
					if err != nil {
						t.Fatal(err)
					}
					if p.Method != http.MethodPut || time.Until(p.ExpiresAt) > time.Minute+time.Second || time.Until(p.ExpiresAt) < 50*time.Second {
						t.Errorf("presigned = %s, expires %s; want PUT, in a minute", p.Method, p.ExpiresAt)
					}
					if tc.mutate != nil {
						p.URL = tc.mutate(p.URL)
					}
					var tweaks []func(*http.Request)
					if tc.tweak != nil {
						tweaks = append(tweaks, tc.tweak)
					}
					code, resp, _ := send(t, p, tc.body, tweaks...)
					ok := code >= 200 && code < 300
					if ok != tc.wantOK {
						t.Fatalf("PUT = %d %s, want ok=%v", code, resp, tc.wantOK)
					}
					info, err := s.Stat(ctx, key)
					if !tc.wantOK {
						if !errors.Is(err, storage.ErrNotFound) {
							t.Errorf("Stat after a refused PUT: %+v, %v; want ErrNotFound", info, err)
						}
						return
					}
					if err != nil || info.Size != tc.wantSize {
						t.Fatalf("Stat = %+v, %v; want size %d", info, err, tc.wantSize)
					}
					if got := readAll(t, s, key); !bytes.Equal(got, tc.body) {
						t.Errorf("Open = %q, want %q", got, tc.body)
					}
				})
			}

			t.Run("copy, presigned GET, delete", func(t *testing.T) {
				src := storage.StagingKey(tenant, "copysrc")
				dst := storage.BlobKey(tenant, strings.Repeat("ab", 32))
				if err := s.Put(ctx, src, bytes.NewReader(body), int64(len(body))); err != nil {
					t.Fatal(err)
				}
				if err := s.Copy(ctx, src, dst); err != nil {
					t.Fatal(err)
				}
				if err := s.Delete(ctx, src); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Stat(ctx, src); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("Stat of the deleted source: %v, want ErrNotFound", err)
				}
				if got := readAll(t, s, dst); !bytes.Equal(got, body) {
					t.Errorf("copy holds %q", got)
				}
				g, err := s.PresignGet(ctx, dst, storage.GetOptions{Filename: "résumé \"final\".txt"}, time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				code, got, h := send(t, g, nil)
				if code != http.StatusOK || !bytes.Equal(got, body) {
					t.Fatalf("GET = %d %q", code, got)
				}
				if cd := h.Get("Content-Disposition"); !strings.Contains(cd, "attachment") || !strings.Contains(cd, "filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.txt") {
					t.Errorf("Content-Disposition = %q", cd)
				}
				// Another key with the same signature is refused.
				g2 := g
				g2.URL = strings.Replace(g.URL, strings.Repeat("ab", 32), strings.Repeat("cd", 32), 1)
				if code, _, _ := send(t, g2, nil); code != http.StatusForbidden {
					t.Errorf("GET with another key = %d, want 403", code)
				}
				// A PUT URL does not download, a GET URL does not upload.
				g3 := g
				g3.Method = http.MethodPut
				if code, _, _ := send(t, g3, []byte("x")); code < 400 {
					t.Errorf("PUT with a GET URL = %d, want refused", code)
				}
				if err := s.Delete(ctx, dst); err != nil {
					t.Fatal(err)
				}
				if err := s.Delete(ctx, dst); err != nil {
					t.Errorf("second Delete: %v, want nil", err)
				}
				if _, err := s.Open(ctx, dst); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("Open after Delete: %v, want ErrNotFound", err)
				}
				if err := s.Copy(ctx, src, dst); !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("Copy of a missing source: %v, want ErrNotFound", err)
				}
			})

			t.Run("expired URL", func(t *testing.T) {
				key := storage.StagingKey(tenant, "expired")
				p, err := s.PresignPut(ctx, key, storage.PutConstraints{Size: int64(len(body))}, time.Second)
				if err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Until(p.ExpiresAt) + 1100*time.Millisecond)
				if code, resp, _ := send(t, p, body); code != http.StatusForbidden {
					t.Errorf("PUT after expiry = %d %s, want 403", code, resp)
				}
			})

			t.Run("invalid keys", func(t *testing.T) {
				for _, key := range []string{"", "../x", "a/../../b", "/abs", "a//b", "a/./b", "sp ace", strings.Repeat("k", 1025)} {
					if _, err := s.PresignPut(ctx, key, storage.PutConstraints{}, time.Minute); err == nil {
						t.Errorf("PresignPut(%q) accepted", key)
					}
					if _, err := s.Stat(ctx, key); err == nil || errors.Is(err, storage.ErrNotFound) {
						t.Errorf("Stat(%q) = %v, want a key error", key, err)
					}
				}
				if _, err := s.PresignPut(ctx, "k", storage.PutConstraints{Size: storage.MaxObjectSize + 1}, time.Minute); err == nil {
					t.Error("PresignPut above MaxObjectSize accepted")
				}
			})
		})
	}
}

// TestFSClock: the filesystem backend's expiry follows its clock, and HEAD works on GET URLs.
func TestFSClock(t *testing.T) {
	ctx := context.Background()
	fs := newFS(t)
	now := time.Now()
	fs.SetClock(func() time.Time { return now })
	if err := fs.Put(ctx, "blobs/x/y", strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	g, err := fs.PresignGet(ctx, "blobs/x/y", storage.GetOptions{}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h := g
	h.Method = http.MethodHead
	if code, _, hd := send(t, h, nil); code != http.StatusOK || hd.Get("Content-Length") != "3" {
		t.Errorf("HEAD = %d, Content-Length %q", code, hd.Get("Content-Length"))
	}
	now = now.Add(2 * time.Hour)
	if code, _, _ := send(t, g, nil); code != http.StatusForbidden {
		t.Errorf("GET after expiry = %d, want 403", code)
	}
	if err := fs.Put(ctx, "blobs/x/z", strings.NewReader("abcd"), 3); err == nil {
		t.Error("Put of a longer body than size accepted")
	}
	if _, err := fs.Stat(ctx, "blobs/x/z"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after a refused Put: %v, want ErrNotFound", err)
	}
}
