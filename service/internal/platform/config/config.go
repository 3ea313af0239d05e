// Package config loads the process settings shared by every BitVault binary from environment variables and validates them at start.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Environment variable names.
const (
	EnvHTTPAddr        = "BITVAULT_HTTP_ADDR"
	EnvLogLevel        = "BITVAULT_LOG_LEVEL"
	EnvShutdownTimeout = "BITVAULT_SHUTDOWN_TIMEOUT"
	EnvDrainDelay      = "BITVAULT_DRAIN_DELAY"
	EnvDataDir         = "BITVAULT_DATA_DIR"
)

// Defaults applied when a variable is unset or empty.
const (
	DefaultHTTPAddr        = ":8080"
	DefaultLogLevel        = "info"
	DefaultShutdownTimeout = 15 * time.Second
	// DefaultDrainDelay is how long the process keeps serving after SIGTERM with /readyz
	// answering 503, so that load balancers and Kubernetes endpoints stop routing to it
	// before the listener closes.
	DefaultDrainDelay = 5 * time.Second
	// DefaultDataDir is the only writable path: the images run on a read-only root
	// filesystem with /tmp mounted as an emptyDir.
	DefaultDataDir = "/tmp"
)

// Config is the validated process configuration.
type Config struct {
	// HTTPAddr is the listen address of the HTTP server (health, readiness, API).
	HTTPAddr string
	// LogLevel is the minimum level of the JSON logs.
	LogLevel slog.Level
	// ShutdownTimeout bounds http.Server.Shutdown after the drain delay.
	ShutdownTimeout time.Duration
	// DrainDelay is the time between SIGTERM (readiness turns 503) and closing the listener.
	DrainDelay time.Duration
	// DataDir is the one directory the process may write to.
	DataDir string
}

// Defaults says which defaults differ per binary.
type Defaults struct {
	// HTTPAddr overrides DefaultHTTPAddr when not empty (the worker listens on :8081).
	HTTPAddr string
}

// FromEnv reads the configuration from the process environment.
func FromEnv(d Defaults) (Config, error) {
	return Load(os.LookupEnv, d)
}

// Load reads the configuration through lookup (os.LookupEnv in production) and validates it.
// All problems are reported together, each naming its variable.
func Load(lookup func(string) (string, bool), d Defaults) (Config, error) {
	get := func(key string) string {
		v, _ := lookup(key)
		return strings.TrimSpace(v)
	}
	cfg := Config{
		HTTPAddr:        DefaultHTTPAddr,
		ShutdownTimeout: DefaultShutdownTimeout,
		DrainDelay:      DefaultDrainDelay,
		DataDir:         DefaultDataDir,
	}
	if d.HTTPAddr != "" {
		cfg.HTTPAddr = d.HTTPAddr
	}
	var errs []error

	if v := get(EnvHTTPAddr); v != "" {
		cfg.HTTPAddr = v
	}
	if err := validateAddr(cfg.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("%s=%q: %w", EnvHTTPAddr, cfg.HTTPAddr, err))
	}

	level := DefaultLogLevel
	if v := get(EnvLogLevel); v != "" {
		level = v
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(level)); err != nil {
		errs = append(errs, fmt.Errorf("%s=%q: want debug, info, warn or error", EnvLogLevel, level))
	}

	var err error
	if cfg.ShutdownTimeout, err = duration(get(EnvShutdownTimeout), DefaultShutdownTimeout, false); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvShutdownTimeout, err))
	}
	if cfg.DrainDelay, err = duration(get(EnvDrainDelay), DefaultDrainDelay, true); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", EnvDrainDelay, err))
	}

	if v := get(EnvDataDir); v != "" {
		cfg.DataDir = v
	}
	if !filepath.IsAbs(cfg.DataDir) {
		errs = append(errs, fmt.Errorf("%s=%q: must be an absolute path", EnvDataDir, cfg.DataDir))
	} else {
		cfg.DataDir = filepath.Clean(cfg.DataDir)
	}

	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

// duration parses a Go duration ("15s", "1m") or a plain number of seconds.
func duration(v string, def time.Duration, allowZero bool) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, serr := strconv.ParseUint(v, 10, 32)
		if serr != nil {
			return 0, fmt.Errorf("%q is not a duration (use e.g. 15s or 1m)", v)
		}
		d = time.Duration(secs) * time.Second
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("%q must not be negative", v)
	case d == 0 && !allowZero:
		return 0, fmt.Errorf("%q must be greater than zero", v)
	}
	return d, nil
}

// validateAddr accepts host:port with a numeric port (host may be empty).
func validateAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, e.g. :8080: %w", err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number between 0 and 65535", port)
	}
	return nil
}

// DecodeBase64 decodes a key or secret given in the environment: standard or URL-safe
// base64, padded or not (whatever the tool that generated it wrote).
func DecodeBase64(s string) ([]byte, error) {
	var firstErr error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		b, err := enc.DecodeString(s)
		if err == nil {
			return b, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// ParsePrefixes reads a comma-separated list of networks given in the environment (trusted
// proxies, allowed destinations): CIDRs, masked (10.1.2.3/16 is 10.1.0.0/16), or bare
// addresses, which stand for themselves (/32, /128; an IPv4-mapped IPv6 address is its IPv4
// one). Blank entries are skipped; an address with an IPv6 zone is refused, since a prefix
// has none. Errors quote the entry but not the variable, which the caller names.
func ParsePrefixes(v string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("%q is not a CIDR (e.g. 10.1.2.0/24) or an address", s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
