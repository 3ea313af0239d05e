package verify_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bitvault/bitvault/attest/blob"
	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/release"
	"github.com/bitvault/bitvault/release/config"
	"github.com/bitvault/bitvault/release/sign"
	"github.com/bitvault/bitvault/release/verify"
)

// TestVerifyCLI: the verify stage checks the CLI's bundles under the release's
// policy: a signed archive passes; one changed after signing, one signed by
// another signer, or one without a bundle is refused, named, and the release
// not recorded.
func TestVerifyCLI(t *testing.T) {
	ctx := context.Background()
	r := release.New(&config.Config{Project: "bv"}, t.TempDir(), release.Options{DryRun: true})
	s, err := attestsign.NewEphemeral(filepath.Join(r.Dist, "sign"))
	if err != nil {
		t.Fatal(err)
	}
	policy, _ := json.Marshal(s.Policy())
	if err := os.WriteFile(sign.PolicyPath(r), policy, 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(rel string, data []byte) {
		p := filepath.Join(r.Dist, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	signed := func(rel string, data []byte, by attestsign.Signer) string {
		write(rel, data)
		b, err := blob.Sign(ctx, by, data)
		if err != nil {
			t.Fatal(err)
		}
		write(rel+blob.Extension, b)
		h := sha256.Sum256(data)
		return hex.EncodeToString(h[:])
	}
	archive := []byte("bitvault archive")
	sum := signed("cli/bitvault_1.2.3_linux_amd64.tar.gz", archive, s)
	signed("cli/checksums.txt", []byte(sum+"  bitvault_1.2.3_linux_amd64.tar.gz\n"), s)
	r.Record.CLI = &release.CLIRecord{Name: "bitvault", Version: "1.2.3",
		Archives: []release.CLIArchiveRecord{{Target: "linux/amd64", File: "cli/bitvault_1.2.3_linux_amd64.tar.gz", SHA256: sum,
			Bundle: "cli/bitvault_1.2.3_linux_amd64.tar.gz" + blob.Extension}},
		Checksums: "cli/checksums.txt", ChecksumsBundle: "cli/checksums.txt" + blob.Extension}

	if err := (verify.Stage{}).Run(ctx, r); err != nil || !r.Record.CLI.Verified {
		t.Fatalf("verify: %v (verified %v)", err, r.Record.CLI.Verified)
	}
	other, err := attestsign.NewEphemeral(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func()
		want string
	}{
		{"changed after signing", func() { write("cli/bitvault_1.2.3_linux_amd64.tar.gz", []byte("bitvault archivE")) }, "the record says sha256:" + sum},
		{"changed and re-recorded", func() { r.Record.CLI.Archives[0].SHA256 = signed("cli/x", []byte("bitvault archivE"), other) }, "file does not match its signature"},
		{"another signer", func() {
			signed("cli/bitvault_1.2.3_linux_amd64.tar.gz", archive, other)
			r.Record.CLI.Archives[0].SHA256 = sum
		}, "untrusted CA"},
		{"no bundle", func() { os.Remove(filepath.Join(r.Dist, "cli/checksums.txt"+blob.Extension)) }, "cli/checksums.txt: no bundle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.edit()
			err := (verify.Stage{}).Run(ctx, r)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "not recorded") || r.Record.CLI.Verified {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}
