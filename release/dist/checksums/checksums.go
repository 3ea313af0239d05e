// Package checksums writes and reads checksums.txt in sha256sum's format: one
// line per file, "<64 hex>  <name>" (two spaces: text mode), sorted by name, so
// that `sha256sum --check checksums.txt` (or `shasum -a 256 -c`) verifies the
// downloaded files.
package checksums

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// FileName is the conventional name of the file.
const FileName = "checksums.txt"

// Sum is one file's SHA-256.
type Sum struct {
	Name   string // file name, no directory
	SHA256 string // 64 lower-case hex digits
}

var hexRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Format renders sums sorted by name. Names must be unique plain file names.
func Format(sums []Sum) ([]byte, error) {
	sorted := slices.Clone(sums)
	slices.SortFunc(sorted, func(a, b Sum) int { return strings.Compare(a.Name, b.Name) })
	var buf bytes.Buffer
	for i, s := range sorted {
		if s.Name == "" || strings.ContainsAny(s.Name, "/\\\n\r") {
			return nil, fmt.Errorf("checksums: %q is not a plain file name", s.Name)
		}
		if !hexRE.MatchString(s.SHA256) {
			return nil, fmt.Errorf("checksums: %s: %q is not a lower-case SHA-256", s.Name, s.SHA256)
		}
		if i > 0 && sorted[i-1].Name == s.Name {
			return nil, fmt.Errorf("checksums: %s listed twice", s.Name)
		}
		fmt.Fprintf(&buf, "%s  %s\n", s.SHA256, s.Name)
	}
	return buf.Bytes(), nil
}

// Parse reads a checksums file (text "  " or binary " *" mode lines).
func Parse(data []byte) ([]Sum, error) {
	var out []Sum
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		sum, name, ok := strings.Cut(line, " ")
		name = strings.TrimPrefix(strings.TrimPrefix(name, " "), "*")
		if !ok || !hexRE.MatchString(sum) || name == "" {
			return nil, fmt.Errorf("checksums line %d: %q: want \"<sha256>  <file>\"", n, line)
		}
		out = append(out, Sum{Name: name, SHA256: sum})
	}
	return out, sc.Err()
}

// Lookup returns the sum recorded for name.
func Lookup(sums []Sum, name string) (string, bool) {
	for _, s := range sums {
		if s.Name == name {
			return s.SHA256, true
		}
	}
	return "", false
}
