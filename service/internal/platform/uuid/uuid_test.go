package uuid

import "testing"

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
