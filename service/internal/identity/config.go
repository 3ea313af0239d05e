package identity

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bitvault/bitvault/service/internal/ratelimit"
)

// Environment variables read by LoadConfig.
const (
	// EnvTokenKey is the access-token signing key: at least 32 random bytes, base64-encoded
	// (e.g. 'openssl rand -base64 32'), identical on every replica. Required.
	EnvTokenKey = "BITVAULT_TOKEN_KEY"
	// EnvBootstrapToken, if set (at least 32 characters), enables POST /v1/tenants for
	// callers presenting it as bearer token. Unset, the endpoint answers 404 and tenants are
	// created with 'bitvaultd admin create-tenant'.
	EnvBootstrapToken = "BITVAULT_BOOTSTRAP_TOKEN"
)

// MinBootstrapTokenLen is the minimum length of BITVAULT_BOOTSTRAP_TOKEN.
const MinBootstrapTokenLen = 32

// LoadConfig reads the identity settings through lookup, the brute-force limits of login
// (ratelimit.LoadConfig's variables) included; the durations keep their defaults.
// Errors name the variable and never echo its value.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	get := func(key string) string {
		v, _ := lookup(key)
		return strings.TrimSpace(v)
	}
	var cfg Config
	var errs []error
	switch key, err := LoadTokenKey(lookup); {
	case err != nil:
		errs = append(errs, err)
	case key == nil:
		errs = append(errs, fmt.Errorf("%s is required: at least %d random bytes, base64-encoded (openssl rand -base64 32)", EnvTokenKey, MinTokenKeyLen))
	default:
		cfg.TokenKey = key
	}
	if v := get(EnvBootstrapToken); v != "" {
		if len(v) < MinBootstrapTokenLen {
			errs = append(errs, fmt.Errorf("%s: %d characters, want at least %d (openssl rand -base64 32)", EnvBootstrapToken, len(v), MinBootstrapTokenLen))
		}
		cfg.BootstrapToken = v
	}
	limits, err := ratelimit.LoadConfig(lookup)
	if err != nil {
		errs = append(errs, errors.Unwrap(err))
	}
	cfg.Limits = limits
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}
