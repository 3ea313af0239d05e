package files

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/storage"
)

func TestPlanParts(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name           string
		size, partSize int64
		want           MultipartInfo
		last           int64
	}{
		{"exact", 10 * mib, 5 * mib, MultipartInfo{5 * mib, 2}, 5 * mib},
		{"remainder", 11 * mib, 5 * mib, MultipartInfo{5 * mib, 3}, mib},
		{"one part", 3, 5 * mib, MultipartInfo{5 * mib, 1}, 3},
		// 5 GiB in 16 MiB parts is 320 parts: no growth.
		{"5 GiB", 5 << 30, 16 * mib, MultipartInfo{16 * mib, 320}, 16 * mib},
		// 10,000 parts of 5 MiB hold 48.8 GiB: a 100 GiB file needs 11 MiB parts.
		{"huge", 100 << 30, 5 * mib, MultipartInfo{11 * mib, 9310}, 100<<30 - 9309*11*mib},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := planParts(tt.size, tt.partSize)
			if got != tt.want {
				t.Fatalf("planParts(%d, %d) = %+v, want %+v", tt.size, tt.partSize, got, tt.want)
			}
			if got.Parts > storage.MaxParts {
				t.Errorf("%d parts, more than %d", got.Parts, storage.MaxParts)
			}
			if last := got.size(got.Parts, tt.size); last != tt.last || last <= 0 {
				t.Errorf("last part %d bytes, want %d", last, tt.last)
			}
		})
	}
}

func TestNumberRanges(t *testing.T) {
	tests := []struct {
		in   []int
		want string
	}{
		{[]int{2}, "2"},
		{[]int{1, 2, 3}, "1-3"},
		{[]int{2, 5, 6, 7, 9}, "2, 5-7, 9"},
	}
	for _, tt := range tests {
		if got := numberRanges(tt.in); got != tt.want {
			t.Errorf("numberRanges(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheckPartNumbers(t *testing.T) {
	tests := []struct {
		name    string
		in      []int
		want    []int
		wantErr bool
	}{
		{"sorted and deduplicated", []int{3, 1, 3}, []int{1, 3}, false},
		{"empty", nil, nil, true},
		{"zero", []int{0}, nil, true},
		{"beyond the last part", []int{4}, nil, true},
		{"too many", make([]int, MaxPartsPerRequest+1), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkPartNumbers(tt.in, 3)
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Errorf("checkPartNumbers(%v) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestLoadConfigMultipart(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{"defaults", nil, Config{}, ""},
		{"set", map[string]string{EnvMultipartThreshold: "10485760", EnvMultipartPartSize: "5242880", EnvMultipartTTL: "48h"},
			Config{MultipartThreshold: 10 << 20, PartSize: 5 << 20, MultipartTTL: 48 * time.Hour}, ""},
		{"off", map[string]string{EnvMultipartThreshold: "0"}, Config{MultipartThreshold: MultipartOff}, ""},
		{"part too small", map[string]string{EnvMultipartPartSize: "1048576"}, Config{}, EnvMultipartPartSize},
		{"bad threshold", map[string]string{EnvMultipartThreshold: "big"}, Config{}, EnvMultipartThreshold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadConfig(func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || c.MultipartThreshold != tt.want.MultipartThreshold || c.PartSize != tt.want.PartSize || c.MultipartTTL != tt.want.MultipartTTL {
				t.Errorf("LoadConfig = %+v, %v; want %+v", c, err, tt.want)
			}
		})
	}
}
