package retention

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/bitvault/bitvault/service/internal/bus"
)

// Environment variables. Durations are Go durations ("90m", "168h") or whole days ("14d").
const (
	EnvOutboxRetention  = "BITVAULT_OUTBOX_RETENTION"
	EnvLedgerRetention  = "BITVAULT_LEDGER_RETENTION"
	EnvWebhookRetention = "BITVAULT_WEBHOOK_RETENTION"
	EnvInterval         = "BITVAULT_RETENTION_INTERVAL"
	EnvBatch            = "BITVAULT_RETENTION_BATCH"
)

const day = 24 * time.Hour

// Defaults.
const (
	DefaultOutbox   = 7 * day
	DefaultLedger   = 14 * day
	DefaultWebhooks = 30 * day
	DefaultInterval = time.Hour
	DefaultBatch    = 1000
)

// Bounds. The floors are those the purge functions of migration 0010 enforce themselves
// (they cannot trust the caller), so a configuration that passes Validate never hits them.
const (
	// LedgerMargin is the least a ledger row outlives the stream's MaxAge (see the package
	// doc: a relay re-send after an outage, clock skew).
	LedgerMargin = day
	// MaxBatch bounds a statement's deletions, as the functions do.
	MaxBatch    = 10000
	MinInterval = time.Minute

	floorOutbox   = 10 * time.Minute
	floorLedger   = 7 * day
	floorWebhooks = day
)

// StreamLimits are the event stream's settings the retentions depend on.
type StreamLimits struct {
	// DedupeWindow is the stream's duplicate window (JetStream Duplicates).
	DedupeWindow time.Duration
	// MaxAge is how long the stream keeps a message (0: forever).
	MaxAge time.Duration
}

// JetStreamLimits are the limits of the events stream bus.NewJetStream creates. The lite
// profile's in-memory bus redelivers within a process's life only, but a deployment may move
// from lite to standard with its ledger, so the same limits apply to both.
func JetStreamLimits() StreamLimits {
	return StreamLimits{DedupeWindow: bus.DedupeWindow, MaxAge: bus.StreamMaxAge}
}

// Config is the retention configuration. Zero fields take the defaults (Stream:
// JetStreamLimits).
type Config struct {
	// Outbox is how long sent outbox rows are kept (after published_at).
	Outbox time.Duration
	// Ledger is how long processed_events rows are kept (after processed_at).
	Ledger time.Duration
	// Webhooks is how long delivered and dead webhook deliveries are kept (after created_at).
	Webhooks time.Duration
	// Interval is the period of Run's sweeps.
	Interval time.Duration
	// Batch is the most rows one statement deletes.
	Batch int
	// Stream are the bus limits validated against.
	Stream StreamLimits
}

func (c Config) withDefaults() Config {
	set := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	set(&c.Outbox, DefaultOutbox)
	set(&c.Ledger, DefaultLedger)
	set(&c.Webhooks, DefaultWebhooks)
	set(&c.Interval, DefaultInterval)
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.Stream == (StreamLimits{}) {
		c.Stream = JetStreamLimits()
	}
	return c
}

// Validate checks c (defaults applied) against the stream limits and the bounds; each error
// names the variable, the reason and the least value accepted.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if least := max(c.Stream.DedupeWindow, floorOutbox); c.Outbox < least {
		errs = append(errs, fmt.Errorf("%s=%s is shorter than the event stream's duplicate window (%s, JetStream Duplicates; floor %s): a sent outbox row must be kept at least that long; set %s or more (default %s)",
			EnvOutboxRetention, format(c.Outbox), format(c.Stream.DedupeWindow), format(floorOutbox), format(least), format(DefaultOutbox)))
	}
	if err := c.validateLedger(); err != nil {
		errs = append(errs, err)
	}
	if c.Webhooks < floorWebhooks {
		errs = append(errs, fmt.Errorf("%s=%s: want %s or more (default %s)", EnvWebhookRetention, format(c.Webhooks), format(floorWebhooks), format(DefaultWebhooks)))
	}
	if c.Interval < MinInterval {
		errs = append(errs, fmt.Errorf("%s=%s: want %s or more (default %s)", EnvInterval, format(c.Interval), format(MinInterval), format(DefaultInterval)))
	}
	if c.Batch < 1 || c.Batch > MaxBatch {
		errs = append(errs, fmt.Errorf("%s=%d: want 1 to %d rows per statement (default %d)", EnvBatch, c.Batch, MaxBatch, DefaultBatch))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("retention: %w", err)
	}
	return nil
}

// validateLedger: a ledger row must outlive every redelivery of its event, i.e. the stream's
// MaxAge plus LedgerMargin.
func (c Config) validateLedger() error {
	if c.Stream.MaxAge <= 0 {
		return fmt.Errorf("%s=%s: the event stream has no MaxAge, so an event may be redelivered at any age and no ledger retention is safe; give the stream a MaxAge (service/internal/bus) first",
			EnvLedgerRetention, format(c.Ledger))
	}
	if least := max(c.Stream.MaxAge+LedgerMargin, floorLedger); c.Ledger < least {
		return fmt.Errorf("%s=%s is not past the event stream's MaxAge (%s) plus a margin of %s: an event can be redelivered while the stream holds it, and its ledger row must still be there; set %s or more (default %s)",
			EnvLedgerRetention, format(c.Ledger), format(c.Stream.MaxAge), format(LedgerMargin), format(least), format(DefaultLedger))
	}
	return nil
}

// LoadConfig reads the configuration from the environment (lookup: os.LookupEnv) and
// validates it against JetStreamLimits.
func LoadConfig(lookup func(string) (string, bool)) (Config, error) {
	var c Config
	var errs []error
	for _, v := range []struct {
		env string
		dst *time.Duration
	}{
		{EnvOutboxRetention, &c.Outbox}, {EnvLedgerRetention, &c.Ledger},
		{EnvWebhookRetention, &c.Webhooks}, {EnvInterval, &c.Interval},
	} {
		if err := lookupDuration(lookup, v.env, v.dst); err != nil {
			errs = append(errs, err)
		}
	}
	if s, ok := lookup(EnvBatch); ok && strings.TrimSpace(s) != "" {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q: want a number of rows from 1 to %d", EnvBatch, s, MaxBatch))
		}
		c.Batch = n
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("retention: %w", err)
	}
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// lookupDuration parses env into dst when it is set and not empty.
func lookupDuration(lookup func(string) (string, bool), env string, dst *time.Duration) error {
	s, ok := lookup(env)
	if s = strings.TrimSpace(s); !ok || s == "" {
		return nil
	}
	d, err := parseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("%s=%q: want a positive duration such as 14d, 36h or 90m", env, s)
	}
	*dst = d
	return nil
}

// parseDuration accepts whole days ("14d") besides time.ParseDuration's forms: retentions are
// counted in days, which time.ParseDuration does not know.
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("bad number of days %q", s)
		}
		return time.Duration(n) * day, nil
	}
	return time.ParseDuration(s)
}

// format prints whole days as such ("14d"), anything else as time.Duration does.
func format(d time.Duration) string {
	if d > 0 && d%day == 0 {
		return strconv.FormatInt(int64(d/day), 10) + "d"
	}
	return d.String()
}
