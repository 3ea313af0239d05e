package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"

	attestsign "github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/internal/testsupport/registrytest"
)

func TestVerifyCommand(t *testing.T) {
	host := registrytest.Start(t)
	push := func(repo string) name.Digest {
		r, err := name.NewRepository(host + "/" + repo)
		if err != nil {
			t.Fatal(err)
		}
		return registrytest.Push(t, r, 1).Index
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
