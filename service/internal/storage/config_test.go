package storage

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 32)))
	tests := []struct {
		name    string
		env     map[string]string
		want    string // Config.String()
		wantErr []string
	}{
		{name: "unset", env: nil, wantErr: []string{"BITVAULT_STORAGE is required"}},
		{name: "none", env: map[string]string{"BITVAULT_STORAGE": "none"}, want: "none"},
		{name: "unknown", env: map[string]string{"BITVAULT_STORAGE": "ftp"}, wantErr: []string{`BITVAULT_STORAGE="ftp"`}},
		{name: "s3", env: map[string]string{"BITVAULT_STORAGE": "s3", "BITVAULT_S3_ENDPOINT": "http://minio:9000", "BITVAULT_S3_BUCKET": "b",
			"BITVAULT_S3_ACCESS_KEY_ID": "k", "BITVAULT_S3_SECRET_ACCESS_KEY": "s"}, want: "s3 endpoint=http://minio:9000 bucket=b region=us-east-1"},
		{name: "s3 with AWS credentials", env: map[string]string{"BITVAULT_STORAGE": "S3", "BITVAULT_S3_BUCKET": "b", "BITVAULT_S3_REGION": "eu-west-3",
			"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, want: "s3 endpoint=aws bucket=b region=eu-west-3"},
		{name: "s3 incomplete", env: map[string]string{"BITVAULT_STORAGE": "s3", "BITVAULT_S3_ENDPOINT": "minio:9000", "BITVAULT_S3_VIRTUAL_HOSTED": "maybe", "BITVAULT_S3_SECRET_ACCESS_KEY": "very-secret"},
			wantErr: []string{"BITVAULT_S3_BUCKET is required", "BITVAULT_S3_ACCESS_KEY_ID", "BITVAULT_S3_VIRTUAL_HOSTED", "BITVAULT_S3_ENDPOINT"}},
		{name: "fs", env: map[string]string{"BITVAULT_STORAGE": "fs", "BITVAULT_PUBLIC_URL": "http://localhost:8080/"}, want: "fs dir=/data/objects public_url=http://localhost:8080"},
		{name: "fs with key and dir", env: map[string]string{"BITVAULT_STORAGE": "fs", "BITVAULT_PUBLIC_URL": "https://bv.example", "BITVAULT_STORAGE_DIR": "/srv/blobs", "BITVAULT_STORAGE_KEY": key},
			want: "fs dir=/srv/blobs public_url=https://bv.example"},
		{name: "fs incomplete", env: map[string]string{"BITVAULT_STORAGE": "fs", "BITVAULT_STORAGE_DIR": "rel", "BITVAULT_STORAGE_KEY": "c2hvcnQ="},
			wantErr: []string{"BITVAULT_PUBLIC_URL is required", "BITVAULT_STORAGE_DIR", "BITVAULT_STORAGE_KEY"}},
		{name: "fs bad URL", env: map[string]string{"BITVAULT_STORAGE": "fs", "BITVAULT_PUBLIC_URL": "localhost:8080"}, wantErr: []string{"BITVAULT_PUBLIC_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			c, err := LoadConfig(lookup, "/data", []byte("token key"))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, config %s", c)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "very-secret") {
					t.Errorf("error %q leaks the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.String() != tt.want {
				t.Errorf("config = %s, want %s", c, tt.want)
			}
			if c.Backend == BackendFS && len(c.FSKey) < MinFSKeyLen {
				t.Errorf("fs key of %d bytes", len(c.FSKey))
			}
		})
	}
}

func TestOpenFS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "objects")
	s, err := Open(Config{Backend: BackendFS, FSDir: dir, PublicURL: "http://localhost:8080", FSKey: make([]byte, 32)})
	if err != nil || s.Backend() != "fs" {
		t.Fatalf("Open = %v, %v", s, err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("directory not created: %v", err)
	}
	if s, err := Open(Config{Backend: BackendNone}); s != nil || err != nil {
		t.Errorf("Open(none) = %v, %v; want nil, nil", s, err)
	}
}
