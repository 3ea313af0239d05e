package webhooks

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/bitvault/bitvault/service/internal/platform/config"
)

// Environment variables read by LoadConfig.
const (
	// EnvAllowHTTP ("true") accepts http:// webhook URLs; default https only.
	EnvAllowHTTP = "BITVAULT_WEBHOOK_ALLOW_HTTP"
	// EnvAllowPrivate ("true") accepts private-network and loopback destinations (see
	// Policy.AllowPrivate), for on-prem receivers.
	EnvAllowPrivate = "BITVAULT_WEBHOOK_ALLOW_PRIVATE"
	// EnvAllowedCIDRs is a comma-separated list of networks (10.1.2.0/24, fd00:1::/64, or a
	// single address) accepted as destinations whatever their range.
	EnvAllowedCIDRs = "BITVAULT_WEBHOOK_ALLOWED_CIDRS"
	// EnvSecretKey is the master key of the secrets at rest (webhook signing secrets): at
	// least 32 random bytes, base64-encoded, identical on every replica. Optional: unset, the
	// key is derived from BITVAULT_TOKEN_KEY.
	EnvSecretKey = "BITVAULT_SECRET_KEY"
	// EnvSecretOldKeys is a comma-separated list of previous master keys (old
	// BITVAULT_SECRET_KEY values, or the old BITVAULT_TOKEN_KEY while secrets were derived
	// from it), used only to decrypt; rows are re-encrypted under the current key.
	EnvSecretOldKeys = "BITVAULT_SECRET_OLD_KEYS"
)

// LoadConfig reads the webhook settings through lookup; tokenKey (identity's
// BITVAULT_TOKEN_KEY) is the master key when BITVAULT_SECRET_KEY is unset. The schedule and
// timings keep their defaults. All problems are reported together; key values are never
// echoed.
func LoadConfig(lookup func(string) (string, bool), tokenKey []byte) (Config, error) {
	get := func(key string) string {
		v, _ := lookup(key)
		return strings.TrimSpace(v)
	}
	var cfg Config
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	var err error
	cfg.Destinations.AllowHTTP, err = parseBool(EnvAllowHTTP, get(EnvAllowHTTP))
	add(err)
	cfg.Destinations.AllowPrivate, err = parseBool(EnvAllowPrivate, get(EnvAllowPrivate))
	add(err)
	cfg.Destinations.AllowedCIDRs, err = parseCIDRs(get(EnvAllowedCIDRs))
	add(err)
	cfg.SecretKey = tokenKey
	if v := get(EnvSecretKey); v != "" {
		cfg.SecretKey, err = parseKey(EnvSecretKey, v)
		add(err)
	}
	for i, v := range splitList(get(EnvSecretOldKeys)) {
		k, err := parseKey(fmt.Sprintf("%s (entry %d)", EnvSecretOldKeys, i+1), v)
		add(err)
		cfg.OldSecretKeys = append(cfg.OldSecretKeys, k)
	}
	if len(cfg.SecretKey) == 0 {
		// The dispatcher runs in bitvaultd and, in the standard profile, in bitvault-worker:
		// both decrypt the secrets, so both need the key.
		errs = append(errs, fmt.Errorf("%s or %s is required: the webhook signing secrets are encrypted at rest", EnvSecretKey, "BITVAULT_TOKEN_KEY"))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

func parseBool(name, v string) (bool, error) {
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}

// parseCIDRs reads EnvAllowedCIDRs (config.ParsePrefixes).
func parseCIDRs(v string) ([]netip.Prefix, error) {
	p, err := config.ParsePrefixes(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvAllowedCIDRs, err)
	}
	return p, nil
}

func parseKey(name, v string) ([]byte, error) {
	k, err := config.DecodeBase64(v)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: not base64 (openssl rand -base64 32)", name)
	case len(k) < MinSecretKeyLen:
		return nil, fmt.Errorf("%s: %d bytes, want at least %d (openssl rand -base64 32)", name, len(k), MinSecretKeyLen)
	}
	return k, nil
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(v string) []string {
	var out []string
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
