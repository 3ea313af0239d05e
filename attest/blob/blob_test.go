package blob_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign"

	"github.com/bitvault/bitvault/attest/blob"
	"github.com/bitvault/bitvault/attest/sign"
	"github.com/bitvault/bitvault/attest/sign/keyless"
	"github.com/bitvault/bitvault/internal/retry"
	"github.com/bitvault/bitvault/internal/testsupport/sigstoretest"
)

var workflow = sigstoretest.Workflow{
	Repository: "bitvault/bitvault", Ref: "refs/tags/v1.2.3", SHA: strings.Repeat("ab", 20),
	WorkflowPath: ".github/workflows/release.yml", EventName: "push", RunID: "4242",
}

const shipped = `^https://github\.com/bitvault/bitvault/\.github/workflows/release\.yml@refs/tags/v[0-9]+\.[0-9]+\.[0-9]+$`

func keylessSigner(t *testing.T, ss *sigstoretest.Sigstore) *keyless.Signer {
	t.Helper()
	ss.Env(t)
	s, err := keyless.FromEnv(context.Background(), keyless.Config{
		FulcioURL: ss.FulcioURL, RekorURL: ss.RekorURL, TrustedRoot: ss.TrustedRoot(), IgnoreSCT: true,
		Retry: retry.Policy{Attempts: 2, Base: time.Millisecond, Max: time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keylessPolicy(ss *sigstoretest.Sigstore) sign.Policy {
	return sign.Policy{TrustedRoot: ss.TrustedRoot(), IdentityRegexp: shipped, Issuer: sigstoretest.GitHubIssuer, IgnoreSCT: true}
}

func ephemeral(t *testing.T) sign.Signer {
	t.Helper()
	s, err := sign.NewEphemeral(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keySigner(t *testing.T) (sign.Signer, []byte) {
	t.Helper()
	pass := func(bool) ([]byte, error) { return []byte("pw"), nil }
	kb, err := cosign.GenerateKeyPair(pass)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cosign.key")
	if err := os.WriteFile(p, kb.PrivateBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := sign.NewKey(context.Background(), p, pass)
	if err != nil {
		t.Fatal(err)
	}
	return s, kb.PublicBytes
}

// unlogged hides a keyless signer's transparency log.
type unlogged struct{ s *keyless.Signer }

func (u unlogged) Sign(ctx context.Context, p []byte) (*sign.Signature, error) {
	return u.s.Sign(ctx, p)
}
func (u unlogged) Identity() string    { return u.s.Identity() }
func (u unlogged) Policy() sign.Policy { return u.s.Policy() }

var archive = []byte("pretend this is bitvault_1.2.3_linux_amd64.tar.gz\n")

func TestSignVerify(t *testing.T) {
	ctx := context.Background()
	ss := sigstoretest.New(t, workflow)
	ks := keylessSigner(t, ss)
	es := ephemeral(t)
	key, pub := keySigner(t)

	for _, tc := range []struct {
		name     string
		s        sign.Signer
		p        sign.Policy
		identity string
		logged   bool
	}{
		{"dry-run CA", es, es.Policy(), sign.DryRunIdentity, false},
		{"keyless", ks, keylessPolicy(ss), workflow.Identity(), true},
		{"keyless, the signer's own policy", ks, ks.Policy(), workflow.Identity(), true},
		{"key", key, sign.Policy{PublicKey: pub, IgnoreTlog: true}, "key", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ss.Entries()
			b, err := blob.Sign(ctx, tc.s, archive)
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := json.Unmarshal(b, &doc); err != nil || doc["mediaType"] != blob.MediaType {
				t.Fatalf("bundle mediaType %v (%v)", doc["mediaType"], err)
			}
			if !bytes.HasSuffix(b, []byte("}\n")) || bytes.Contains(b, []byte("  \"")) == false {
				t.Errorf("bundle is not indented JSON with a trailing newline:\n%s", b)
			}
			if logged := ss.Entries() - before; (logged == 1) != tc.logged {
				t.Errorf("%d new Rekor entries, want logged=%v", logged, tc.logged)
			}
			v, err := blob.Verify(ctx, bytes.NewReader(archive), b, tc.p)
			if err != nil {
				t.Fatal(err)
			}
			if v.Identity != tc.identity || (tc.logged != (v.LogIndex >= 0)) {
				t.Errorf("verified %+v, want identity %s, logged %v", v, tc.identity, tc.logged)
			}
		})
	}
}

// TestVerifyRejects: each refusal names its reason.
func TestVerifyRejects(t *testing.T) {
	ctx := context.Background()
	ss := sigstoretest.New(t, workflow)
	other := sigstoretest.New(t, workflow)
	ks := keylessSigner(t, ss)
	signed, err := blob.Sign(ctx, ks, archive)
	if err != nil {
		t.Fatal(err)
	}
	notLogged, err := blob.Sign(ctx, unlogged{ks}, archive)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := blob.Sign(ctx, keylessSigner(t, other), archive)
	if err != nil {
		t.Fatal(err)
	}
	es := ephemeral(t)
	dry, err := blob.Sign(ctx, es, archive)
	if err != nil {
		t.Fatal(err)
	}
	// Another integrated time: the signed entry timestamp no longer matches.
	tamperedSET := regexp.MustCompile(`"integratedTime": "\d+"`).ReplaceAll(signed, []byte(`"integratedTime": "1700000000"`))
	if bytes.Equal(tamperedSET, signed) {
		t.Fatalf("no integratedTime in the bundle:\n%s", signed)
	}

	p := keylessPolicy(ss)
	with := func(edit func(*sign.Policy)) sign.Policy { q := p; edit(&q); return q }
	tampered := append(bytes.Clone(archive), '!')
	for _, tc := range []struct {
		name   string
		data   []byte
		bundle []byte
		p      sign.Policy
		want   error
	}{
		{"tampered file", tampered, signed, p, blob.ErrTampered},
		{"another file's bundle", []byte("another file"), signed, p, blob.ErrTampered},
		{"wrong workflow", archive, signed, with(func(p *sign.Policy) {
			p.IdentityRegexp, p.Identity = "", strings.Replace(workflow.Identity(), "release.yml", "ci.yml", 1)
		}), sign.ErrWrongIdentity},
		{"wrong ref", archive, signed, with(func(p *sign.Policy) { p.IdentityRegexp = `@refs/tags/v9\.` }), sign.ErrWrongIdentity},
		{"wrong issuer", archive, signed, with(func(p *sign.Policy) { p.Issuer = "https://accounts.google.com" }), sign.ErrWrongIssuer},
		{"another CA and log", archive, foreign, p, sign.ErrUntrustedCA},
		{"not logged", archive, notLogged, p, sign.ErrNoTlogEntry},
		{"log entry edited", archive, tamperedSET, p, sign.ErrTlog},
		{"dry-run bundle under the release policy", archive, dry, p, sign.ErrUntrustedCA},
		{"release bundle under the dry-run policy", archive, signed, es.Policy(), sign.ErrUntrustedCA},
		{"dry-run tampered", tampered, dry, es.Policy(), blob.ErrTampered},
		{"not a bundle", archive, []byte(`{"base64Signature":"AAAA"}`), p, blob.ErrBundle},
		{"policy trusting any identity", archive, signed, with(func(p *sign.Policy) { p.IdentityRegexp = "" }), sign.ErrPolicy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := blob.Verify(ctx, bytes.NewReader(tc.data), tc.bundle, tc.p)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// TestTrustedRoot: what TrustedRoot writes for cosign applies the same policy here.
func TestTrustedRoot(t *testing.T) {
	ctx := context.Background()
	es := ephemeral(t)
	b, err := blob.Sign(ctx, es, archive)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := blob.TrustedRoot(es.Policy(), b)
	if err != nil {
		t.Fatal(err)
	}
	p := sign.Policy{TrustedRoot: tr, Identity: sign.DryRunIdentity, Issuer: sign.DryRunIssuer, IgnoreSCT: true}
	// A trusted root means the log is checked: the dry-run bundle has no entry.
	if _, err := blob.Verify(ctx, bytes.NewReader(archive), b, p); !errors.Is(err, sign.ErrNoTlogEntry) {
		t.Fatalf("err = %v, want %v", err, sign.ErrNoTlogEntry)
	}
	ss := sigstoretest.New(t, workflow)
	got, err := blob.TrustedRoot(keylessPolicy(ss), b)
	if err != nil || !bytes.Equal(got, ss.TrustedRoot()) {
		t.Errorf("keyless: TrustedRoot is not the policy's own (%v)", err)
	}
}
