package retention

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/bitvault/bitvault/service/internal/bus"
	"github.com/bitvault/bitvault/service/internal/testsupport/natstest"
)

func TestValidate(t *testing.T) {
	js := JetStreamLimits()
	tests := []struct {
		name string
		cfg  Config
		// want are substrings of the error ("" in want[0]: no error).
		want []string
	}{
		{name: "defaults", cfg: Config{}},
		{name: "at the least values", cfg: Config{Outbox: 10 * time.Minute, Ledger: 8 * day, Webhooks: day, Interval: time.Minute, Batch: MaxBatch}},
		{name: "outbox below the duplicate window", cfg: Config{Outbox: 5 * time.Minute},
			want: []string{EnvOutboxRetention + "=5m0s", "duplicate window (10m0s", "set 10m0s or more"}},
		{name: "outbox below a longer duplicate window", cfg: Config{Outbox: time.Hour, Stream: StreamLimits{DedupeWindow: 2 * time.Hour, MaxAge: js.MaxAge}},
			want: []string{EnvOutboxRetention + "=1h0m0s", "set 2h0m0s or more"}},
		{name: "ledger equal to MaxAge", cfg: Config{Ledger: 7 * day},
			want: []string{EnvLedgerRetention + "=7d", "MaxAge (7d) plus a margin of 1d", "set 8d or more"}},
		{name: "ledger inside the margin", cfg: Config{Ledger: 7*day + time.Hour},
			want: []string{EnvLedgerRetention + "=169h0m0s", "set 8d or more"}},
		{name: "ledger against a longer MaxAge", cfg: Config{Stream: StreamLimits{DedupeWindow: js.DedupeWindow, MaxAge: 30 * day}},
			want: []string{EnvLedgerRetention + "=14d", "MaxAge (30d)", "set 31d or more"}},
		{name: "stream without MaxAge", cfg: Config{Stream: StreamLimits{DedupeWindow: js.DedupeWindow}},
			want: []string{EnvLedgerRetention, "no MaxAge", "give the stream a MaxAge"}},
		{name: "webhooks below a day", cfg: Config{Webhooks: time.Hour},
			want: []string{EnvWebhookRetention + "=1h0m0s", "want 1d or more"}},
		{name: "interval too short", cfg: Config{Interval: time.Second},
			want: []string{EnvInterval + "=1s", "want 1m0s or more"}},
		{name: "batch too large", cfg: Config{Batch: MaxBatch + 1},
			want: []string{EnvBatch + "=10001", "1 to 10000"}},
		{name: "batch negative", cfg: Config{Batch: -1}, want: []string{EnvBatch + "=-1"}},
		{name: "every error at once", cfg: Config{Outbox: time.Minute, Ledger: day, Webhooks: time.Minute},
			want: []string{EnvOutboxRetention, EnvLedgerRetention, EnvWebhookRetention}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want one with %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %q, want it to contain %q", err, w)
				}
			}
			if _, nerr := New(nil, tt.cfg, nil); nerr == nil {
				t.Error("New accepted the configuration")
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string
	}{
		{name: "defaults", want: Config{Outbox: DefaultOutbox, Ledger: DefaultLedger, Webhooks: DefaultWebhooks, Interval: DefaultInterval, Batch: DefaultBatch}},
		{name: "days and durations", env: map[string]string{EnvOutboxRetention: "3d", EnvLedgerRetention: " 240h ", EnvWebhookRetention: "90d", EnvInterval: "15m", EnvBatch: "500"},
			want: Config{Outbox: 3 * day, Ledger: 10 * day, Webhooks: 90 * day, Interval: 15 * time.Minute, Batch: 500}},
		{name: "empty is the default", env: map[string]string{EnvOutboxRetention: ""}, want: Config{Outbox: DefaultOutbox, Ledger: DefaultLedger, Webhooks: DefaultWebhooks, Interval: DefaultInterval, Batch: DefaultBatch}},
		{name: "not a duration", env: map[string]string{EnvLedgerRetention: "two weeks"}, wantErr: EnvLedgerRetention + `="two weeks": want a positive duration such as 14d`},
		{name: "fractional days", env: map[string]string{EnvOutboxRetention: "1.5d"}, wantErr: EnvOutboxRetention + `="1.5d"`},
		{name: "negative", env: map[string]string{EnvWebhookRetention: "-1h"}, wantErr: EnvWebhookRetention + `="-1h"`},
		{name: "zero", env: map[string]string{EnvInterval: "0s"}, wantErr: EnvInterval + `="0s"`},
		{name: "batch not a number", env: map[string]string{EnvBatch: "lots"}, wantErr: EnvBatch + `="lots"`},
		{name: "parsed but unsafe", env: map[string]string{EnvLedgerRetention: "7d"}, wantErr: "set 8d or more"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			got, err := LoadConfig(lookup)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Stream = JetStreamLimits()
			if got != tt.want {
				t.Errorf("config = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestJetStreamLimits reads the events stream bus.NewJetStream really creates: the limits the
// retentions are validated against must be its Duplicates and MaxAge (bus.StreamMaxAge, a
// literal of package bus).
func TestJetStreamLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := natstest.New(t)
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := bus.NewJetStream(ctx, nc, bus.Options{}); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, bus.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := StreamLimits{DedupeWindow: info.Config.Duplicates, MaxAge: info.Config.MaxAge}
	if want := JetStreamLimits(); got != want {
		t.Fatalf("stream %s has %+v, retention assumes %+v: update bus.StreamMaxAge (and the floors of migration 0010 if they no longer hold)", bus.StreamName, got, want)
	}
	if err := (Config{Stream: got}).Validate(); err != nil {
		t.Errorf("the defaults do not fit the real stream: %v", err)
	}
}
