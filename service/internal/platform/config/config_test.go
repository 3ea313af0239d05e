package config

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		defaults Defaults
		want     Config
	}{
		{
			name: "defaults",
			want: Config{HTTPAddr: ":8080", LogLevel: slog.LevelInfo, ShutdownTimeout: 15 * time.Second, DrainDelay: 5 * time.Second, DataDir: "/tmp"},
		},
		{
			name:     "binary default address",
			defaults: Defaults{HTTPAddr: ":8081"},
			want:     Config{HTTPAddr: ":8081", LogLevel: slog.LevelInfo, ShutdownTimeout: 15 * time.Second, DrainDelay: 5 * time.Second, DataDir: "/tmp"},
		},
		{
			name: "overrides",
			env: map[string]string{
				EnvHTTPAddr: "127.0.0.1:9000", EnvLogLevel: "DEBUG", EnvShutdownTimeout: "1m",
				EnvDrainDelay: "0", EnvDataDir: "/var/tmp/bv/",
			},
			defaults: Defaults{HTTPAddr: ":8081"},
			want:     Config{HTTPAddr: "127.0.0.1:9000", LogLevel: slog.LevelDebug, ShutdownTimeout: time.Minute, DrainDelay: 0, DataDir: "/var/tmp/bv"},
		},
		{
			name: "plain seconds and blanks",
			env:  map[string]string{EnvShutdownTimeout: "30", EnvDrainDelay: " 2s ", EnvLogLevel: "", EnvDataDir: "  "},
			want: Config{HTTPAddr: ":8080", LogLevel: slog.LevelInfo, ShutdownTimeout: 30 * time.Second, DrainDelay: 2 * time.Second, DataDir: "/tmp"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(env(tt.env), tt.defaults)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got != tt.want {
				t.Errorf("Load = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want []string // substrings of the error
	}{
		{"address without port", map[string]string{EnvHTTPAddr: "localhost"}, []string{EnvHTTPAddr, "host:port"}},
		{"address bad port", map[string]string{EnvHTTPAddr: ":http-alt"}, []string{EnvHTTPAddr, "port"}},
		{"address port too big", map[string]string{EnvHTTPAddr: ":70000"}, []string{EnvHTTPAddr}},
		{"log level", map[string]string{EnvLogLevel: "verbose"}, []string{EnvLogLevel, "debug, info, warn or error"}},
		{"shutdown not a duration", map[string]string{EnvShutdownTimeout: "soon"}, []string{EnvShutdownTimeout, "not a duration"}},
		{"shutdown zero", map[string]string{EnvShutdownTimeout: "0s"}, []string{EnvShutdownTimeout, "greater than zero"}},
		{"drain negative", map[string]string{EnvDrainDelay: "-1s"}, []string{EnvDrainDelay, "negative"}},
		{"data dir relative", map[string]string{EnvDataDir: "tmp"}, []string{EnvDataDir, "absolute"}},
		{
			"all problems at once",
			map[string]string{EnvHTTPAddr: "x", EnvLogLevel: "x", EnvShutdownTimeout: "x", EnvDrainDelay: "x", EnvDataDir: "x"},
			[]string{EnvHTTPAddr, EnvLogLevel, EnvShutdownTimeout, EnvDrainDelay, EnvDataDir},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env(tt.env), Defaults{})
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	tests := []struct {
		in, want string // want: the prefixes joined by ",", or "error"
	}{
		{"", ""},
		{" 10.1.2.3/16, 192.0.2.1 ,,fd00::1/8", "10.1.0.0/16,192.0.2.1/32,fd00::/8"},
		{"2001:db8::1", "2001:db8::1/128"},
		{"::ffff:198.51.100.1", "198.51.100.1/32"},
		{"10.0.0.0/33", "error"},
		{"10.0.0.0/8,ingress", "error"},
		{"fe80::1%eth0", "error"},
		{"fe80::%eth0/64", "error"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePrefixes(tt.in)
			if tt.want == "error" {
				if err == nil || !strings.Contains(err.Error(), "is not a CIDR") {
					t.Fatalf("ParsePrefixes(%q) = %v, %v; want an error", tt.in, got, err)
				}
				return
			}
			var s []string
			for _, p := range got {
				s = append(s, p.String())
			}
			if err != nil || strings.Join(s, ",") != tt.want {
				t.Fatalf("ParsePrefixes(%q) = %v, %v; want %s", tt.in, s, err, tt.want)
			}
		})
	}
}
