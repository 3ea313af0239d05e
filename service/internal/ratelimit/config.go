package ratelimit

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/bitvault/bitvault/service/internal/platform/config"
)

// Environment variables read by LoadConfig. "Account" stands for a login account or a
// share link, whichever the password protects.
const (
	// EnvWindow is how long failures are counted and how long a lock lasts (default 15m).
	EnvWindow = "BITVAULT_BRUTEFORCE_WINDOW"
	// EnvPerAccountIP is the failures one client address may make against one account or
	// link per window (default 5).
	EnvPerAccountIP = "BITVAULT_BRUTEFORCE_PER_ACCOUNT_IP"
	// EnvPerAccount is the failures against one account or link from all addresses per
	// window (default 50): reaching it locks everyone out of it until the window passes.
	EnvPerAccount = "BITVAULT_BRUTEFORCE_PER_ACCOUNT"
	// EnvPerIP is the failures one client address may make against all the accounts and
	// links of a tenant per window (default 50).
	EnvPerIP = "BITVAULT_BRUTEFORCE_PER_IP"
	// EnvTrustedProxies lists the reverse proxies (comma-separated CIDRs or addresses, e.g.
	// the ingress controller's pod network) whose X-Forwarded-For bitvaultd believes when
	// they are the connection's peer (default: none, the peer is the client).
	EnvTrustedProxies = "BITVAULT_TRUSTED_PROXIES"
)

// Defaults of Config.
const (
	DefaultWindow       = 15 * time.Minute
	DefaultPerAccountIP = 5
	DefaultPerAccount   = 50
	DefaultPerIP        = 50
)

// Bounds of the settings.
const (
	MinWindow = 10 * time.Second
	MaxWindow = 24 * time.Hour
	MaxLimit  = 100000
)

// Config is the limits. Zero fields take the defaults.
type Config struct {
	Window       time.Duration
	PerAccountIP int
	PerAccount   int
	PerIP        int
	// TrustedProxies are the peers whose X-Forwarded-For names the client (see ClientIP).
	TrustedProxies []netip.Prefix
}

func (c Config) withDefaults() Config {
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.PerAccountIP == 0 {
		c.PerAccountIP = DefaultPerAccountIP
	}
	if c.PerAccount == 0 {
		c.PerAccount = DefaultPerAccount
	}
	if c.PerIP == 0 {
		c.PerIP = DefaultPerIP
	}
	return c
}

// validate checks a Config with its defaults filled in. The per-account ceiling may not be
// below the per-account-and-address limit: then the lockout that hits everyone would come
// first, which is the cheap denial of service the split exists to avoid.
func (c Config) validate() error {
	var errs []error
	if c.Window < MinWindow || c.Window > MaxWindow {
		errs = append(errs, fmt.Errorf("window %s: want between %s and %s", c.Window, MinWindow, MaxWindow))
	}
	for _, l := range []struct {
		name string
		n    int
	}{{"per account and address", c.PerAccountIP}, {"per account", c.PerAccount}, {"per address", c.PerIP}} {
		if l.n < 1 || l.n > MaxLimit {
			errs = append(errs, fmt.Errorf("limit %s %d: want between 1 and %d", l.name, l.n, MaxLimit))
		}
	}
	if c.PerAccount < c.PerAccountIP {
		errs = append(errs, fmt.Errorf("limit per account %d is below the limit per account and address %d", c.PerAccount, c.PerAccountIP))
	}
	return errors.Join(errs...)
}

// LoadConfig reads the limits through lookup; unset variables keep the defaults. The result
// is validated as New would.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	get := func(key string) string {
		v, _ := lookup(key)
		return strings.TrimSpace(v)
	}
	var c Config
	var errs []error
	if v := get(EnvWindow); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < MinWindow || d > MaxWindow {
			errs = append(errs, fmt.Errorf("%s=%q: want a duration between %s and %s", EnvWindow, v, MinWindow, MaxWindow))
		}
		c.Window = d
	}
	limit := func(key string, dst *int) {
		if v := get(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > MaxLimit {
				errs = append(errs, fmt.Errorf("%s=%q: want a number between 1 and %d", key, v, MaxLimit))
			}
			*dst = n
		}
	}
	limit(EnvPerAccountIP, &c.PerAccountIP)
	limit(EnvPerAccount, &c.PerAccount)
	limit(EnvPerIP, &c.PerIP)
	if v := get(EnvTrustedProxies); v != "" {
		proxies, err := config.ParsePrefixes(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s=%q: %w", EnvTrustedProxies, v, err))
		}
		c.TrustedProxies = proxies
	}
	if len(errs) == 0 {
		c = c.withDefaults()
		// Each setting is in its bounds: what is left is the ceiling below the lower limit.
		if err := c.validate(); err != nil {
			errs = append(errs, fmt.Errorf("%s, %s: %w", EnvPerAccount, EnvPerAccountIP, err))
		}
	}
	// The one wrapping: errors.Unwrap gives the joined errors, each naming its variable, for
	// callers (identity) that report them with their own.
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return c, nil
}
