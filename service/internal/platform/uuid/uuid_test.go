package uuid

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		ok       bool
	}{
		{"0A1B2C3D-4E5F-4a6b-8c7d-9e0f1a2b3c4d", "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", true},
		{"0a1b2c3d4e5f4a6b8c7d9e0f1a2b3c4d", "", false},
		{"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4g", "", false},
		{"", "", false},
		{"../../../../../../../../../etc/passwd", "", false},
	} {
		got, ok := Parse(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Parse(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestNew(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := New()
		if got, ok := Parse(id); !ok || got != id {
			t.Fatalf("New() = %q: not canonical (Parse: %q, %v)", id, got, ok)
		}
		if id[14] != '4' || !strings.ContainsRune("89ab", rune(id[19])) {
			t.Fatalf("New() = %q: want version 4, variant 10", id)
		}
		if seen[id] {
			t.Fatalf("New() repeated %q", id)
		}
		seen[id] = true
	}
}
