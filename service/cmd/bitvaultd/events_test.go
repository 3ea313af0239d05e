package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

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
			addr := freeAddr(t)
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
			token := acmeOwner(t, base)
			const files = 5
			var bytesTotal int64
			for i := range files {
				content := bytes.Repeat([]byte{byte('a' + i)}, 1000*(i+1))
				bytesTotal += int64(len(content))
				uploadFile(t, base, token, fmt.Sprintf("/f%d.bin", i), content)
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
