package identity

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// PasswordParams is the argon2id cost.
type PasswordParams struct {
	// Memory in KiB.
	Memory  uint32
	Time    uint32
	Threads uint8
	SaltLen uint32
	KeyLen  uint32
}

// DefaultPasswordParams is OWASP's argon2id baseline: 19 MiB, 2 iterations, 1 lane, with a
// 16-byte salt and a 32-byte hash.
var DefaultPasswordParams = PasswordParams{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// Password length limits (bytes). The maximum bounds the work an attacker can ask for.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

func (p PasswordParams) validate() error {
	if p.Memory < 8*uint32(p.Threads) || p.Time < 1 || p.Threads < 1 || p.SaltLen < 16 || p.KeyLen < 16 {
		return fmt.Errorf("argon2id parameters %+v too weak (memory >= 8*threads KiB, time >= 1, threads >= 1, salt >= 16, key >= 16)", p)
	}
	return nil
}

var b64 = base64.RawStdEncoding

// hashPassword returns the PHC string $argon2id$v=19$m=...,t=...,p=...$salt$hash.
func hashPassword(password string, p PasswordParams) (string, error) {
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

var errBadHash = errors.New("malformed argon2id hash")

// verifyPassword checks password against a PHC string made by hashPassword (with whatever
// parameters it records), comparing in constant time.
func verifyPassword(password, encoded string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return false, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, errBadHash
	}
	var p PasswordParams
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || n != 3 {
		return false, errBadHash
	}
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, errBadHash
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil {
		return false, errBadHash
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(want))
	// Refuse parameters that would make verification trivial or absurdly expensive.
	if p.validate() != nil || p.Memory > 1<<22 || p.Time > 64 {
		return false, errBadHash
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// checkPassword enforces the length limits of a new password.
func checkPassword(password string) error {
	switch {
	case utf8.RuneCountInString(password) < MinPasswordLen:
		return invalid("password must have at least %d characters", MinPasswordLen)
	case len(password) > MaxPasswordLen:
		return invalid("password must have at most %d bytes", MaxPasswordLen)
	}
	return nil
}
