// Package uuid makes and parses the UUIDs of API paths, bodies and rows.
package uuid

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns a random (version 4, RFC 9562) UUID in the canonical lower-case form.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:])  // never fails (crypto/rand)
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10
	return Format(b)
}

// Parse accepts the canonical 36-character form (any case) and returns it lower-case; ok is
// false for anything else.
func Parse(s string) (string, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return "", false
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(s[0:8]+s[9:13]+s[14:18]+s[19:23]+s[24:36])); err != nil {
		return "", false
	}
	return Format(b), true
}

// Format writes b in the canonical lower-case form.
func Format(b [16]byte) string {
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
