package identity

import (
	"fmt"
	"strings"

	"github.com/bitvault/bitvault/service/internal/platform/config"
)

// LoadTokenKey reads BITVAULT_TOKEN_KEY alone, for processes that derive other keys from it
// without authenticating anyone (bitvault-worker): nil when it is unset, an error (naming
// the variable, never echoing it) when it is set but not a valid key. Unlike LoadConfig, it
// reads none of the other identity settings.
func LoadTokenKey(lookup func(string) (string, bool)) ([]byte, error) {
	v, _ := lookup(EnvTokenKey)
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	key, err := config.DecodeBase64(v)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: not base64 (openssl rand -base64 32)", EnvTokenKey)
	case len(key) < MinTokenKeyLen:
		return nil, fmt.Errorf("%s: %d bytes, want at least %d (openssl rand -base64 32)", EnvTokenKey, len(key), MinTokenKeyLen)
	}
	return key, nil
}
