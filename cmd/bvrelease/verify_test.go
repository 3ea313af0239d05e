package main

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	attestsign "github.com/bitvault/bitvault/attest/sign"
)

func TestVerifyCommand(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	push := func(repo string) name.Digest {
		idx, err := random.Index(128, 1, 1)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := idx.Digest()
		ref, err := name.NewDigest(host + "/" + repo + "@" + d.String())
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(ref, idx); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	signed, unsigned := push("signed"), push("unsigned")
	dir := t.TempDir()
	s, err := attestsign.NewEphemeral(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := attestsign.SignImage(context.Background(), signed, s); err != nil {
		t.Fatal(err)
	}
	roots := filepath.Join(dir, attestsign.RootFile)
	trust := []string{"--ca-roots", roots, "--certificate-identity", attestsign.DryRunIdentity, "--certificate-oidc-issuer", attestsign.DryRunIssuer}
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"signed", append([]string{"verify", signed.String()}, trust...), 0, []string{"ok    " + signed.String(), attestsign.DryRunIdentity}},
		{"unsigned", append([]string{"verify", signed.String(), unsigned.String()}, trust...), exitFailed, []string{"ok    " + signed.String(), "FAIL  " + unsigned.String(), "1 of 2"}},
		{"wrong identity", []string{"verify", signed.String(), "--ca-roots", roots, "--certificate-identity", "https://github.com/bitvault/bitvault/.github/workflows/release.yml@refs/tags/v1.0.0", "--certificate-oidc-issuer", attestsign.DryRunIssuer}, exitFailed, []string{"FAIL", "identity"}},
		{"json", append([]string{"verify", signed.String(), "-o", "json"}, trust...), 0, []string{`"verified": true`}},
		{"nobody trusted", []string{"verify", signed.String()}, exitUsage, []string{"--ca-roots"}},
		{"tag, not digest", append([]string{"verify", host + "/signed:v1"}, trust...), exitUsage, []string{"IMAGE@sha256"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, code := run(t, t.TempDir(), tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
