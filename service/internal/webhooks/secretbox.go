package webhooks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Webhook signing secrets at rest.
//
// A signing secret must be usable (HMAC key), so it cannot be hashed; it is encrypted with
// AES-256-GCM instead, under a key derived (HKDF-SHA256) from a master key: BITVAULT_SECRET_KEY
// if set, else BITVAULT_TOKEN_KEY, so that no new mandatory setting is needed (the token key
// is already a required, replica-wide, random secret; the HKDF info string separates the
// two uses). The associated data binds a ciphertext to its row (tenant id and endpoint id):
// copied to another endpoint or tenant, it no longer decrypts.
//
// The stored value, in webhook_endpoints.secret (text), is
//
//	enc:v1:<key id, 8 hex>:<base64url(nonce ‖ ciphertext ‖ tag)>
//
// where the key id is derived from the master key too, so a value says which key opens it:
// rotating the master key (setting a new one, moving the old one to BITVAULT_SECRET_OLD_KEYS)
// keeps the old rows readable. Rows written before encryption existed hold the plaintext
// "whsec_…" and are read as such. Both kinds are re-encrypted under the active key by the
// dispatcher when it starts (ReencryptAll; keys only change with a restart), and by a sweep
// every hour after that, which catches the rows that replicas still on the old key sealed
// during a rolling rotation; never on the delivery or API paths. Migration 0009's generated
// column secret_key_id (NULL for plaintext) finds them.
//
// The value stays in the existing text column rather than a new bytea one: a migration
// could not encrypt the legacy rows anyway (no key in SQL), one column cannot hold both a
// plaintext and a ciphertext of the same secret by mistake, and the prefix tells the two
// forms apart without ambiguity (generated secrets always start with "whsec_").
//
// A rotation without failed deliveries on replicas not yet restarted has two steps: first
// give every replica the new key as an old key (BITVAULT_SECRET_OLD_KEYS=new), then make it
// the active one (BITVAULT_SECRET_KEY=new, BITVAULT_SECRET_OLD_KEYS=previous). A delivery
// whose secret cannot be decrypted is retried on the schedule, so a short overlap costs
// retries, not deliveries. Drop the previous key from BITVAULT_SECRET_OLD_KEYS only once no
// row is sealed under it any more (webhook_endpoints.secret_key_id), that is after the
// dispatcher has restarted, or swept, with every replica on the new key.

const (
	sealedPrefix = "enc:v1:"
	keyInfo      = "bitvault/webhook-secret/aes-256-gcm/v1"
	keyIDInfo    = "bitvault/webhook-secret/key-id/v1"
	aadPrefix    = "bitvault/webhook-secret/v1"
	// MinSecretKeyLen is the minimum length of a master key.
	MinSecretKeyLen = 32
)

// ErrSecretUnreadable is a stored secret that cannot be decrypted: unknown key, tampered
// value, or a value moved from another row.
var ErrSecretUnreadable = errors.New("webhook secret cannot be decrypted")

// legacySecret is the only plaintext form ever written.
var legacySecret = regexp.MustCompile(`^whsec_[0-9a-f]{64}$`)

// sealKey is one derived AES-256-GCM key and its id.
type sealKey struct {
	id   string
	aead cipher.AEAD
}

// keyring seals under the active key and opens under any configured key.
type keyring struct {
	active *sealKey
	byID   map[string]*sealKey
}

// deriveKey derives the AES key and its id from a master key.
func deriveKey(master []byte) (*sealKey, error) {
	if len(master) < MinSecretKeyLen {
		return nil, fmt.Errorf("secret key has %d bytes, want at least %d", len(master), MinSecretKeyLen)
	}
	key, err := hkdf.Key(sha256.New, master, nil, keyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("derive secret key: %w", err)
	}
	id, err := hkdf.Key(sha256.New, master, nil, keyIDInfo, 4)
	if err != nil {
		return nil, fmt.Errorf("derive secret key id: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	return &sealKey{id: hex.EncodeToString(id), aead: aead}, nil
}

// newKeyring derives the active key and the decrypt-only old ones.
func newKeyring(active []byte, old [][]byte) (*keyring, error) {
	k, err := deriveKey(active)
	if err != nil {
		return nil, err
	}
	kr := &keyring{active: k, byID: map[string]*sealKey{k.id: k}}
	for i, m := range old {
		o, err := deriveKey(m)
		if err != nil {
			return nil, fmt.Errorf("old secret key %d: %w", i+1, err)
		}
		if _, dup := kr.byID[o.id]; !dup {
			kr.byID[o.id] = o
		}
	}
	return kr, nil
}

// aad binds a sealed secret to its row.
func aad(tenant, endpoint string) []byte {
	return []byte(aadPrefix + "\x00" + tenant + "\x00" + endpoint)
}

// seal encrypts the secret of endpoint (of tenant) under the active key.
func (k *keyring) seal(tenant, endpoint, secret string) (string, error) {
	nonce := make([]byte, k.active.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal webhook secret: %w", err)
	}
	box := k.active.aead.Seal(nonce, nonce, []byte(secret), aad(tenant, endpoint))
	return sealedPrefix + k.active.id + ":" + base64.RawURLEncoding.EncodeToString(box), nil
}

// open returns the secret of a stored value; current is false when it should be re-sealed
// (legacy plaintext, or sealed under an old key).
func (k *keyring) open(tenant, endpoint, stored string) (secret string, current bool, err error) {
	rest, sealed := strings.CutPrefix(stored, sealedPrefix)
	if !sealed {
		if !legacySecret.MatchString(stored) {
			return "", false, fmt.Errorf("%w: neither sealed nor a legacy secret", ErrSecretUnreadable)
		}
		return stored, false, nil
	}
	id, enc, ok := strings.Cut(rest, ":")
	if !ok {
		return "", false, fmt.Errorf("%w: malformed value", ErrSecretUnreadable)
	}
	key := k.byID[id]
	if key == nil {
		return "", false, fmt.Errorf("%w: sealed under key id %s, which is not configured (add the previous key to %s)", ErrSecretUnreadable, id, EnvSecretOldKeys)
	}
	box, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(box) < key.aead.NonceSize()+key.aead.Overhead() {
		return "", false, fmt.Errorf("%w: malformed value", ErrSecretUnreadable)
	}
	n := key.aead.NonceSize()
	plain, err := key.aead.Open(nil, box[:n], box[n:], aad(tenant, endpoint))
	if err != nil {
		return "", false, fmt.Errorf("%w: authentication failed (tampered, or moved from another endpoint)", ErrSecretUnreadable)
	}
	return string(plain), key == k.active, nil
}

// ActiveKeyID is the id of the key new secrets are sealed under (logged at start, and
// visible in the stored values, to follow a rotation).
func (s *Service) ActiveKeyID() string { return s.keys.active.id }
