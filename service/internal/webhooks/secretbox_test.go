package webhooks

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

const (
	tenantA   = "aaaaaaaa-0000-4000-8000-000000000001"
	tenantB   = "bbbbbbbb-0000-4000-8000-000000000002"
	endpoint1 = "11111111-0000-4000-8000-000000000001"
	endpoint2 = "22222222-0000-4000-8000-000000000002"
)

var (
	key1 = bytes.Repeat([]byte{1}, 32)
	key2 = bytes.Repeat([]byte{2}, 32)
)

func mustKeyring(t *testing.T, active []byte, old ...[]byte) *keyring {
	t.Helper()
	k, err := newKeyring(active, old)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestWebhookSecretBox(t *testing.T) {
	secret := newSecret()
	k1 := mustKeyring(t, key1)
	sealed, err := k1.seal(tenantA, endpoint1, secret)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sealed, sealedPrefix+k1.active.id+":") || strings.Contains(sealed, secret) || strings.Contains(sealed, secret[6:]) {
		t.Fatalf("sealed %q: want enc:v1:<id>: and no trace of the secret", sealed)
	}
	if again, _ := k1.seal(tenantA, endpoint1, secret); again == sealed {
		t.Error("two seals are equal: the nonce must be random")
	}
	got, current, err := k1.open(tenantA, endpoint1, sealed)
	if err != nil || got != secret || !current {
		t.Fatalf("open = %q, %v, %v", got, current, err)
	}

	flip := func(s string) string {
		box, _ := base64.RawURLEncoding.DecodeString(s[strings.LastIndexByte(s, ':')+1:])
		box[len(box)-1] ^= 1
		return s[:strings.LastIndexByte(s, ':')+1] + base64.RawURLEncoding.EncodeToString(box)
	}
	failures := []struct {
		name, tenant, endpoint, stored, want string
		keys                                 *keyring
	}{
		{"tampered", tenantA, endpoint1, flip(sealed), "authentication failed", k1},
		{"moved to another endpoint", tenantA, endpoint2, sealed, "authentication failed", k1},
		{"moved to another tenant", tenantB, endpoint1, sealed, "authentication failed", k1},
		{"unknown key", tenantA, endpoint1, sealed, "not configured", mustKeyring(t, key2)},
		{"truncated", tenantA, endpoint1, sealed[:len(sealed)-30], "", k1},
		{"too short", tenantA, endpoint1, sealedPrefix + k1.active.id + ":AAAA", "malformed", k1},
		{"not base64", tenantA, endpoint1, sealedPrefix + k1.active.id + ":!!!", "malformed", k1},
		{"no key id", tenantA, endpoint1, sealedPrefix + "abc", "malformed", k1},
		{"arbitrary plaintext", tenantA, endpoint1, "hunter2", "neither sealed nor a legacy secret", k1},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.keys.open(tt.tenant, tt.endpoint, tt.stored)
			if !errors.Is(err, ErrSecretUnreadable) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("open = %v, want ErrSecretUnreadable mentioning %q", err, tt.want)
			}
		})
	}
}

// A new active key still opens the values of the old one (flagged for re-sealing), and a
// legacy plaintext is read as is (flagged too).
func TestWebhookKeyringRotation(t *testing.T) {
	secret := newSecret()
	sealed1, err := mustKeyring(t, key1).seal(tenantA, endpoint1, secret)
	if err != nil {
		t.Fatal(err)
	}
	rotated := mustKeyring(t, key2, key1)
	got, current, err := rotated.open(tenantA, endpoint1, sealed1)
	if err != nil || got != secret || current {
		t.Fatalf("old-key value: %q, current %v, %v (want readable, not current)", got, current, err)
	}
	sealed2, err := rotated.seal(tenantA, endpoint1, got)
	if err != nil {
		t.Fatal(err)
	}
	if got, current, err := mustKeyring(t, key2).open(tenantA, endpoint1, sealed2); err != nil || got != secret || !current {
		t.Fatalf("re-sealed value under the new key alone: %q, %v, %v", got, current, err)
	}
	if got, current, err := rotated.open(tenantA, endpoint1, secret); err != nil || got != secret || current {
		t.Fatalf("legacy plaintext: %q, %v, %v", got, current, err)
	}
	if mustKeyring(t, key1).active.id == rotated.active.id {
		t.Fatal("two keys, one id")
	}
	if _, err := newKeyring(key1[:31], nil); err == nil {
		t.Error("a 31-byte key was accepted")
	}
	if _, err := newKeyring(key1, [][]byte{key2[:8]}); err == nil || !strings.Contains(err.Error(), "old secret key 1") {
		t.Errorf("short old key: %v", err)
	}
}

func TestWebhookLoadConfig(t *testing.T) {
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	env := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	t.Run("defaults derive from the token key", func(t *testing.T) {
		cfg, err := LoadConfig(env(nil), key1)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(cfg.SecretKey, key1) || cfg.Destinations.AllowHTTP || cfg.Destinations.AllowPrivate || cfg.Destinations.AllowedCIDRs != nil {
			t.Fatalf("%+v", cfg)
		}
	})
	t.Run("everything set", func(t *testing.T) {
		cfg, err := LoadConfig(env(map[string]string{
			EnvAllowHTTP: "true", EnvAllowPrivate: "1", EnvAllowedCIDRs: " 10.1.2.3/16, 169.254.169.254 ,fd00::/8,",
			EnvSecretKey: b64(key2), EnvSecretOldKeys: b64(key1) + ", " + base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{3}, 40)),
		}), key1)
		if err != nil {
			t.Fatal(err)
		}
		p := cfg.Destinations
		if !p.AllowHTTP || !p.AllowPrivate || len(p.AllowedCIDRs) != 3 || p.AllowedCIDRs[0].String() != "10.1.0.0/16" || p.AllowedCIDRs[1].String() != "169.254.169.254/32" {
			t.Fatalf("%+v", p)
		}
		if !bytes.Equal(cfg.SecretKey, key2) || len(cfg.OldSecretKeys) != 2 || !bytes.Equal(cfg.OldSecretKeys[0], key1) {
			t.Fatalf("keys: %d old", len(cfg.OldSecretKeys))
		}
	})
	errs := []struct {
		name  string
		env   map[string]string
		token []byte
		want  []string
	}{
		{"bad bool", map[string]string{EnvAllowHTTP: "yes please"}, key1, []string{EnvAllowHTTP}},
		{"bad cidr", map[string]string{EnvAllowedCIDRs: "10.0.0.0/33"}, key1, []string{EnvAllowedCIDRs, "10.0.0.0/33"}},
		{"short secret key", map[string]string{EnvSecretKey: b64(key1[:16])}, key1, []string{EnvSecretKey, "16 bytes"}},
		{"secret key not base64", map[string]string{EnvSecretKey: "%%%"}, key1, []string{EnvSecretKey, "base64"}},
		{"bad old key", map[string]string{EnvSecretOldKeys: b64(key1) + ",abc"}, key1, []string{EnvSecretOldKeys, "entry 2"}},
		{"no key at all", nil, nil, []string{EnvSecretKey, "BITVAULT_TOKEN_KEY"}},
		{"all at once", map[string]string{EnvAllowPrivate: "x", EnvAllowedCIDRs: "x", EnvSecretKey: "x"}, key1, []string{EnvAllowPrivate, EnvAllowedCIDRs, EnvSecretKey}},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(env(tt.env), tt.token)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v: does not mention %q", err, w)
				}
			}
			if v := tt.env[EnvSecretKey]; len(v) > 3 && strings.Contains(err.Error(), v) {
				t.Errorf("the error echoes the key")
			}
		})
	}
}
