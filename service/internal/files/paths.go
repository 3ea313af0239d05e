package files

import (
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Name and path limits.
const (
	MaxNameLen = 255  // bytes, after NFC normalization
	MaxDepth   = 64   // path segments
	maxPathLen = 4096 // bytes
)

// normalizeName NFC-normalizes a name and validates it.
func normalizeName(name string) (string, error) {
	if !utf8.ValidString(name) {
		return "", invalid("name %q is not valid UTF-8", name)
	}
	n := norm.NFC.String(name)
	switch {
	case n == "":
		return "", invalid("name must not be empty")
	case len(n) > MaxNameLen:
		return "", invalid("name %q is longer than %d bytes", n, MaxNameLen)
	case n == "." || n == "..":
		return "", invalid("name must not be %q", n)
	case strings.ContainsRune(n, '/'):
		return "", invalid("name %q must not contain '/'", n)
	case strings.ContainsRune(n, 0):
		return "", invalid("name must not contain NUL")
	}
	return n, nil
}

// splitPath turns "/a/b/c.txt" into its normalized names; leading and trailing '/' are
// ignored, empty segments ("a//b") are not.
func splitPath(p string) ([]string, error) {
	if len(p) > maxPathLen {
		return nil, invalid("path longer than %d bytes", maxPathLen)
	}
	trimmed := strings.Trim(p, "/")
	if trimmed == "" {
		return nil, invalid("path %q names no file or folder", p)
	}
	segs := strings.Split(trimmed, "/")
	if len(segs) > MaxDepth {
		return nil, invalid("path %q is deeper than %d", p, MaxDepth)
	}
	for i, seg := range segs {
		n, err := normalizeName(seg)
		if err != nil {
			return nil, invalid("path %q: %s", p, strings.TrimPrefix(err.Error(), "invalid_argument: "))
		}
		segs[i] = n
	}
	return segs, nil
}

// joinPath is the canonical form of a path: "/" + names joined by '/'.
func joinPath(segs []string) string { return "/" + strings.Join(segs, "/") }

// conflictedName is the name a conflicted copy of name gets at t: the suffix goes before the
// extension, "report (conflicted copy 2026-11-26 201530).txt"; attempt > 1 adds a counter.
func conflictedName(name string, t time.Time, attempt int) string {
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	if base == "" { // ".bashrc": the whole name is the base
		base, ext = name, ""
	}
	suffix := " (conflicted copy " + t.UTC().Format("2006-01-02 150405")
	if attempt > 1 {
		suffix += fmt.Sprintf(" %d", attempt)
	}
	suffix += ")"
	// Keep within MaxNameLen by shortening the base (on a rune boundary).
	for len(base)+len(suffix)+len(ext) > MaxNameLen && base != "" {
		_, size := utf8.DecodeLastRuneInString(base)
		base = base[:len(base)-size]
	}
	if len(base)+len(suffix)+len(ext) > MaxNameLen {
		ext = ""
	}
	return base + suffix + ext
}

// parseUUID accepts the canonical 36-character form (any case) and returns it lower-case.
func parseUUID(s string) (string, bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return "", false
	}
	var b [16]byte
	if _, err := hex.Decode(b[:], []byte(s[0:8]+s[9:13]+s[14:18]+s[19:23]+s[24:36])); err != nil {
		return "", false
	}
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], true
}

// parseHash accepts 64 hex digits (any case) and returns them lower-case.
func parseHash(field, s string) (string, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return "", invalid("%s: want 64 hexadecimal digits (32 bytes)", field)
	}
	return hex.EncodeToString(b), nil
}
