package s3test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestMain(m *testing.M) {
	os.Exit(Main(m.Run))
}

// TestNew: each test gets its own empty, working bucket on the one server.
func TestNew(t *testing.T) {
	ctx := context.Background()
	a, b := New(t), New(t)
	if a.Name == b.Name || a.Endpoint != b.Endpoint {
		t.Fatalf("buckets %+v and %+v: want two names on one server", a, b)
	}
	sa, sb := a.Store(t), b.Store(t)
	for _, s := range []interface{ Ping(context.Context) error }{sa, sb} {
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := sa.Put(ctx, "k", bytes.NewReader([]byte("v")), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := sb.Stat(ctx, "k"); err == nil {
		t.Error("an object of one bucket is visible in the other")
	}
}

func TestFindBinary(t *testing.T) {
	t.Setenv(EnvBinary, "/opt/versitygw")
	if p, err := FindBinary(); err != nil || p != "/opt/versitygw" {
		t.Errorf("with $%s: %q, %v", EnvBinary, p, err)
	}
	t.Setenv(EnvBinary, "")
	dir := t.TempDir()
	t.Setenv("BITVAULT_TOOLS_DIR", dir)
	t.Setenv("PATH", t.TempDir())
	if _, err := FindBinary(); err == nil {
		t.Error("found a binary in an empty tools dir and PATH")
	}
	bin := filepath.Join(dir, "versitygw-"+Version, "versitygw")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := FindBinary(); err != nil || p != bin {
		t.Errorf("from the tools dir: %q, %v; want %s", p, err, bin)
	}
}

// TestVersionPinned keeps Version equal to the pin in the repository's tools/versitygw/go.mod
// (which scripts/tools.sh builds); skipped when the service module is used on its own.
func TestVersionPinned(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "tools", "versitygw", "go.mod"))
	if err != nil {
		t.Skipf("skipping: no tools/versitygw/go.mod next to the service module: %v", err)
	}
	if want := "github.com/versity/versitygw " + Version; !bytes.Contains(b, []byte(want)) {
		t.Errorf("tools/versitygw/go.mod does not require %s:\n%s", want, b)
	}
}
