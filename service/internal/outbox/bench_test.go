package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bitvault/bitvault/service/internal/consumers"
	"github.com/bitvault/bitvault/service/internal/outbox"
	"github.com/bitvault/bitvault/service/internal/testsupport/natstest"
)

// Run with: go test ./internal/outbox -run '^$' -bench . -benchtime 1x
// Each iteration relays benchEvents events of benchTenants tenants from a prepared outbox.
const (
	benchTenants = 10
	benchEvents  = 10000
)

func benchSetup(b *testing.B) *env {
	e := setup(b, benchTenants)
	for _, tn := range e.tenants {
		for first := 0; first < benchEvents/benchTenants; first += 500 {
			e.commit(b, tn, first, 500)
		}
	}
	return e
}

// BenchmarkRelay: outbox → JetStream with 1 and 3 relays.
func BenchmarkRelay(b *testing.B) {
	for _, relays := range []int{1, 3} {
		b.Run(fmt.Sprintf("relays=%d", relays), func(b *testing.B) {
			var total time.Duration
			for range b.N {
				b.StopTimer()
				e := benchSetup(b)
				bs := jetstreamBus(b, natstest.New(b))
				b.StartTimer()
				start := time.Now()
				var stops []func()
				for range relays {
					r := &outbox.Relay{Pool: e.app, Bus: bs, Batch: 256, Interval: 2 * time.Millisecond}
					stops = append(stops, run(b, r.Run))
				}
				e.waitDrained(b)
				total += time.Since(start)
				for _, s := range stops {
					s()
				}
			}
			b.ReportMetric(float64(benchEvents*b.N)/total.Seconds(), "events/s")
		})
	}
}

// BenchmarkPipeline: outbox → relay → JetStream → meter (one consumer), until every
// tenant's counters are complete.
func BenchmarkPipeline(b *testing.B) {
	var total time.Duration
	for range b.N {
		b.StopTimer()
		e := benchSetup(b)
		bs := jetstreamBus(b, natstest.New(b))
		b.StartTimer()
		start := time.Now()
		stopR := run(b, (&outbox.Relay{Pool: e.app, Bus: bs, Batch: 256, Interval: 2 * time.Millisecond}).Run)
		stopC := run(b, func(ctx context.Context) error { return consumers.Run(ctx, bs, e.app, nil, nil) })
		e.waitUsage(b, benchEvents/benchTenants)
		total += time.Since(start)
		stopC()
		stopR()
	}
	b.ReportMetric(float64(benchEvents*b.N)/total.Seconds(), "events/s")
}
