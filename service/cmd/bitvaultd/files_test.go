package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"lukechampine.com/blake3"

	"github.com/bitvault/bitvault/service/internal/platform/processtest"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
	"github.com/bitvault/bitvault/service/internal/testsupport/s3test"
)

// TestBinaryFiles runs the real binary with each object store (S3 on versitygw, and the
// filesystem backend served by bitvaultd itself) and goes through the upload commit protocol:
// declare, PUT to the presigned URL, commit, download the same bytes.
func TestBinaryFiles(t *testing.T) {
	tests := []struct {
		name string
		env  func(t *testing.T) []string
	}{
		{"s3", func(t *testing.T) []string {
			b := s3test.New(t)
			return []string{"BITVAULT_STORAGE=s3", "BITVAULT_S3_ENDPOINT=" + b.Endpoint, "BITVAULT_S3_REGION=" + b.Region, "BITVAULT_S3_BUCKET=" + b.Name,
				"BITVAULT_S3_ACCESS_KEY_ID=" + b.AccessKey, "BITVAULT_S3_SECRET_ACCESS_KEY=" + b.SecretKey}
		}},
		{"fs", func(t *testing.T) []string {
			// The presigned URLs name bitvaultd's own address: fix the port beforehand.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			return []string{"BITVAULT_STORAGE=fs", "BITVAULT_HTTP_ADDR=" + addr, "BITVAULT_PUBLIC_URL=http://" + addr}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := pgtest.New(t)
			bin := buildOnce(t)
			env := baseEnv(t, append([]string{
				"BITVAULT_DATABASE_URL=" + d.AppDSN,
				"BITVAULT_TOKEN_KEY=" + tokenKey,
				"BITVAULT_BOOTSTRAP_TOKEN=" + bootstrap,
			}, tt.env(t)...)...)
			p := processtest.Start(t, bin, env...)
			base := "http://" + p.Addr(30*time.Second)
			if code, body := processtest.Get(t, base+"/readyz"); code != http.StatusOK || !strings.Contains(string(body), `"storage":{"status":"ok"}`) {
				t.Fatalf("/readyz = %d %s, want the storage ok", code, body)
			}
			if code, body := post(t, base+"/v1/tenants", bootstrap, `{"slug":"acme","name":"Acme","owner":{"email":"owner@acme.example","password":"owner-password-1"}}`); code != http.StatusCreated {
				t.Fatalf("POST /v1/tenants = %d %s", code, body)
			}
			_, body := post(t, base+"/v1/auth/login", "", `{"tenant":"acme","email":"owner@acme.example","password":"owner-password-1"}`)
			var tok struct {
				AccessToken string `json:"access_token"`
			}
			if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
				t.Fatalf("login: %s", body)
			}

			content := bytes.Repeat([]byte("bitvault "), 10000)
			sum := blake3.Sum256(content)
			code, body := post(t, base+"/v1/files", tok.AccessToken, fmt.Sprintf(`{"path":"/docs/a.bin","size":%d,"blake3":%q}`, len(content), hex.EncodeToString(sum[:])))
			var up struct {
				UploadID string `json:"upload_id"`
				Upload   struct {
					Method  string              `json:"method"`
					URL     string              `json:"url"`
					Headers map[string][]string `json:"headers"`
				} `json:"upload"`
			}
			if err := json.Unmarshal(body, &up); err != nil || code != http.StatusCreated {
				t.Fatalf("POST /v1/files = %d %s", code, body)
			}
			req, _ := http.NewRequest(up.Upload.Method, up.Upload.URL, bytes.NewReader(content))
			for k, vs := range up.Upload.Headers {
				for _, v := range vs {
					req.Header.Add(k, v)
				}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("PUT to %s = %d", up.Upload.URL, resp.StatusCode)
			}
			code, body = post(t, base+"/v1/files/commit", tok.AccessToken, fmt.Sprintf(`{"upload_id":%q}`, up.UploadID))
			var res struct {
				Node struct {
					ID   string `json:"id"`
					Path string `json:"path"`
				} `json:"node"`
			}
			if err := json.Unmarshal(body, &res); err != nil || code != http.StatusCreated || res.Node.Path != "/docs/a.bin" {
				t.Fatalf("commit = %d %s", code, body)
			}

			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, _ = http.NewRequest(http.MethodGet, base+"/v1/files/"+res.Node.ID+"/content", nil)
			req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
			resp, err = noFollow.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("GET content = %d", resp.StatusCode)
			}
			resp, err = http.Get(resp.Header.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Equal(got, content) {
				t.Fatalf("download = %d, %d bytes; want the %d uploaded", resp.StatusCode, len(got), len(content))
			}

			p.Signal(syscall.SIGTERM)
			if code := p.Wait(10 * time.Second); code != 0 {
				t.Errorf("exit code = %d; logs: %v", code, p.Lines())
			}
			p.CheckOnlyJSON()
		})
	}
}
