package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"lukechampine.com/blake3"

	"github.com/bitvault/bitvault/service/internal/platform/processtest"
	"github.com/bitvault/bitvault/service/internal/testsupport/natstest"
	"github.com/bitvault/bitvault/service/internal/testsupport/pgtest"
)

// TestBinaryEvents commits files through the real binaries in each profile — lite (bitvaultd
// relays to its in-process bus and meters) and standard (bitvaultd relays to JetStream,
// bitvault-worker meters) — and checks the meter's counters: every version once.
func TestBinaryEvents(t *testing.T) {
	for _, profile := range []string{"lite", "standard"} {
		t.Run(profile, func(t *testing.T) {
			d := pgtest.New(t)
			bin := buildOnce(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			common := []string{"BITVAULT_DATABASE_URL=" + d.AppDSN, "BITVAULT_PROFILE=" + profile}
			if profile == "standard" {
				s := natstest.New(t)
				common = append(common, "BITVAULT_NATS_URL="+s.URL())
				worker := processtest.Start(t, processtest.Build(t, "../bitvault-worker"), baseEnv(t, common...)...)
				wbase := "http://" + worker.Addr(30*time.Second)
				waitReady(t, wbase, `"nats":{"status":"ok"}`)
				defer func() {
					worker.Signal(syscall.SIGTERM)
					if code := worker.Wait(10 * time.Second); code != 0 {
						t.Errorf("worker exit code = %d; logs: %v", code, worker.Lines())
					}
				}()
			}
			env := baseEnv(t, append(common, "BITVAULT_TOKEN_KEY="+tokenKey, "BITVAULT_BOOTSTRAP_TOKEN="+bootstrap,
				"BITVAULT_STORAGE=fs", "BITVAULT_HTTP_ADDR="+addr, "BITVAULT_PUBLIC_URL=http://"+addr)...)
			p := processtest.Start(t, bin, env...)
			base := "http://" + p.Addr(30*time.Second)
			waitReady(t, base, `"outbox":{"status":"ok","detail":"0 unpublished, oldest 0s"}`)
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
			const files = 5
			var bytesTotal int64
			for i := range files {
				content := bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1))
				bytesTotal += int64(len(content))
				uploadFile(t, base, tok.AccessToken, fmt.Sprintf("/f%d.bin", i), content)
			}
			super := pgtest.Pool(t, d.SuperDSN)
			deadline := time.Now().Add(30 * time.Second)
			for {
				var versions, written, events int64
				err := super.QueryRow(context.Background(), "SELECT coalesce(sum(versions_created), 0), coalesce(sum(bytes_written), 0), coalesce(sum(events), 0) FROM usage_counters").Scan(&versions, &written, &events)
				if err != nil {
					t.Fatal(err)
				}
				if versions == files && written == bytesTotal && events == files {
					break
				}
				if versions > files || time.Now().After(deadline) {
					t.Fatalf("usage: %d versions, %d bytes, %d events; want %d, %d, %d", versions, written, events, files, bytesTotal, files)
				}
				time.Sleep(50 * time.Millisecond)
			}
			// bitvaultd runs the object-store consumers in both profiles: the indexer indexes the
			// files (single-letter text).
			for {
				var indexed int
				err := super.QueryRow(context.Background(), "SELECT count(*) FROM node_content").Scan(&indexed)
				if err == nil && indexed == files {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d files indexed (%v), want %d", indexed, err, files)
				}
				time.Sleep(50 * time.Millisecond)
			}
			// The relay marks a batch published after publishing it: a consumer may have seen
			// the events before the mark commits, so wait for it.
			for {
				var unpublished int
				err := super.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE published_at IS NULL").Scan(&unpublished)
				if err == nil && unpublished == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d unpublished outbox rows (%v)", unpublished, err)
				}
				time.Sleep(50 * time.Millisecond)
			}
			p.Signal(syscall.SIGTERM)
			if code := p.Wait(10 * time.Second); code != 0 {
				t.Errorf("exit code = %d; logs: %v", code, p.Lines())
			}
			p.CheckOnlyJSON()
		})
	}
}

func waitReady(t *testing.T, base, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, body := processtest.Get(t, base+"/readyz")
		if code == http.StatusOK && strings.Contains(string(body), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s, want %s", code, body, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// uploadFile declares, uploads and commits content at path.
func uploadFile(t *testing.T, base, token, path string, content []byte) {
	t.Helper()
	sum := blake3.Sum256(content)
	code, body := post(t, base+"/v1/files", token, fmt.Sprintf(`{"path":%q,"size":%d,"blake3":%q}`, path, len(content), hex.EncodeToString(sum[:])))
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
		t.Fatalf("PUT = %d", resp.StatusCode)
	}
	if code, body := post(t, base+"/v1/files/commit", token, fmt.Sprintf(`{"upload_id":%q}`, up.UploadID)); code != http.StatusCreated {
		t.Fatalf("commit = %d %s", code, body)
	}
}
