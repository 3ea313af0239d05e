package backend

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// TestLoadConfig: both binaries read the same settings from the same environment; the
// filesystem store's signing key and the webhook secrets' key fall back on the token key.
func TestLoadConfig(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("k"), 32))
	s3 := []string{"BITVAULT_STORAGE=s3", "BITVAULT_S3_BUCKET=b", "BITVAULT_S3_ACCESS_KEY_ID=a", "BITVAULT_S3_SECRET_ACCESS_KEY=s"}
	fs := []string{"BITVAULT_STORAGE=fs", "BITVAULT_PUBLIC_URL=http://localhost:8080"}
	tests := []struct {
		name    string
		env     []string
		wantErr string
	}{
		{"s3", append([]string{"BITVAULT_TOKEN_KEY=" + key}, s3...), ""},
		{"fs, keys from the token key", append([]string{"BITVAULT_TOKEN_KEY=" + key}, fs...), ""},
		{"none, explicit secrets key", []string{"BITVAULT_STORAGE=none", "BITVAULT_SECRET_KEY=" + key}, ""},
		{"fs without any key", fs, "BITVAULT_STORAGE_KEY"},
		{"bad token key", append([]string{"BITVAULT_TOKEN_KEY=short"}, s3...), "BITVAULT_TOKEN_KEY"},
		// Only the token key is read: the identity settings the worker never uses (bootstrap
		// token, login limits) cannot fail it.
		{"other identity settings ignored", append([]string{"BITVAULT_TOKEN_KEY=" + key, "BITVAULT_BOOTSTRAP_TOKEN=short", "BITVAULT_BRUTEFORCE_PER_IP=lots"}, s3...), ""},
		{"no storage", []string{"BITVAULT_TOKEN_KEY=" + key}, "BITVAULT_STORAGE is required"},
		{"bad blob grace", append([]string{"BITVAULT_TOKEN_KEY=" + key, "BITVAULT_BLOB_GRACE=soon"}, s3...), "BITVAULT_BLOB_GRACE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for _, kv := range tt.env {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			c, err := LoadConfig(lookup, t.TempDir())
			switch {
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case len(c.Webhooks.SecretKey) == 0:
				t.Error("no webhook secrets key")
			case c.Storage.Backend == "fs" && len(c.Storage.FSKey) == 0:
				t.Error("no fs signing key")
			}
		})
	}
}
