package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

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
			addr := freeAddr(t)
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
			token := acmeOwner(t, base)

			content := bytes.Repeat([]byte("bitvault "), 10000)
			body := uploadFile(t, base, token, "/docs/a.bin", content)
			var res struct {
				Node struct {
					ID   string `json:"id"`
					Path string `json:"path"`
				} `json:"node"`
			}
			if err := json.Unmarshal(body, &res); err != nil || res.Node.Path != "/docs/a.bin" {
				t.Fatalf("commit = %s", body)
			}

			noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			req, _ := http.NewRequest(http.MethodGet, base+"/v1/files/"+res.Node.ID+"/content", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := noFollow.Do(req)
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
